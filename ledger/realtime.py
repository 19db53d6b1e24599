"""The real-time path (SPEC §6): apply one published event with one conditional UPSERT.

The retry contract is functions-framework's: returning acknowledges, raising makes Pub/Sub
redeliver. Only transient failures raise; a bad message is recorded and acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ledger import logs, progress, rejections, store
from ledger.db import Database, Session, Transient, describe, is_permanent
from ledger.events import Event, Rejected, decode_bytes
from ledger.outcome import Counters, Outcome
from ledger.pubsub_message import BadMessage, Message, unwrap
from ledger.vtid import of_event

SOURCE = "pubsub"
_MAX_CAS_ATTEMPTS = 20

log = logs.get("ledger.realtime")


class _Conflict(Exception):
    """The row changed between read and write; read again."""


def _counted(session: Session, outcome: Outcome, event_time: datetime | None) -> None:
    counters = Counters()
    counters.add(outcome)
    progress.count(session, counters, event_time)


def apply_event(session: Session, event: Event) -> Outcome:
    """Apply one event in one transaction; the row always equals the fold of what it has seen."""
    if event.is_own_sync:
        return Outcome.IGNORED
    vtid = of_event(event)
    if vtid is None:
        with session.transaction():
            _counted(session, Outcome.SKIPPED, event.created_at)
        return Outcome.SKIPPED
    for _ in range(_MAX_CAS_ATTEMPTS):
        try:
            with session.transaction():
                current = store.read(session, vtid)
                new, [outcome] = current.absorb([event])
                if outcome is not Outcome.STALE:
                    assert new is not None
                    if not store.upsert_if_unchanged(session, vtid, new, current.revision):
                        raise _Conflict
                _counted(session, outcome, event.created_at)
            return outcome
        except _Conflict:
            continue
    raise Transient(f"{vtid}: row kept changing under {_MAX_CAS_ATTEMPTS} attempts")


def _reject(
    db: Database, reason: str, raw: bytes, event_id: str | None, message_id: str | None
) -> Outcome:
    def work(session: Session) -> None:
        with session.transaction():
            rejections.record(
                session,
                source=SOURCE,
                reason=reason,
                raw=raw,
                event_id=event_id,
                message_id=message_id,
            )
            _counted(session, Outcome.REJECTED, None)

    db.run(work)
    log.warning(
        "event rejected", extra={"reason": reason, "event_id": event_id, "message_id": message_id}
    )
    return Outcome.REJECTED


def handle_message(db: Database, message: Message) -> Outcome:
    try:
        event = decode_bytes(message.data, default_time=message.publish_time)
    except Rejected as exc:
        return _reject(db, exc.reason, message.data, exc.event_id, message.message_id)
    try:
        outcome = db.run(lambda session: apply_event(session, event))
    except Exception as exc:
        if not is_permanent(exc):
            raise
        reason = f"database refused the event: {describe(exc)}"
        return _reject(db, reason, message.data, event.id, message.message_id)
    log.info(
        "event applied",
        extra={"event_id": event.id, "vtid": of_event(event), "outcome": outcome.value},
    )
    return outcome


def handle_cloud_event(db: Database, data: Any, attributes: Mapping[str, Any]) -> Outcome:
    """Entry for `main.oasis_event`: Eventarc messagePublished events and raw push envelopes."""
    fallback = attributes.get("time")
    fallback_time = None
    if isinstance(fallback, str):
        try:
            fallback_time = datetime.fromisoformat(fallback.replace("Z", "+00:00"))
        except ValueError:
            fallback_time = None
    try:
        message = unwrap(data, fallback_time or datetime.now(UTC))
    except BadMessage as exc:
        return _reject(db, exc.reason, exc.raw, None, None)
    return handle_message(db, message)
