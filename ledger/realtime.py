"""The real-time path (docs/behaviour.md §5): apply published events, several per statement.

The edge stays here: unwrap the push, base64, strict JSON, the size limit. Then the event joins
the process's group commit (`group_commit`): deliveries that arrive while a statement is in
flight are applied together by the next one, `ledger_apply_batch` (sql/), which decodes
each event, records the unreadable, folds the rest per VTID with the sweep's batch fold into
one conditional UPSERT of each row, counts, and answers each delivery. A delivery that finds a
connection free goes at once, alone (`ledger_apply_event`).

The retry contract is functions-framework's: returning acknowledges, raising makes Pub/Sub
redeliver. Only transient failures raise; a bad message is recorded and acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ledger import group_commit, ledger_rejections, logs
from ledger.counters import Outcome
from ledger.db import Database, Refused, Session
from ledger.events import Rejected, edge_text
from ledger.pubsub_message import BadMessage, Message, delivery_attempt, unwrap

APPLY = """
SELECT outcome, vtid, event_id, reason
FROM ledger_apply_event(:payload, :message_id, CAST(:publish_time AS timestamptz),
    CAST(:delivery_attempt AS integer))"""

log = logs.get("ledger.realtime")
SOURCE = "pubsub"  # as ledger_rejections.source names this path


def _event_id(data: bytes) -> str | None:
    """The id of an event that is refused, when one can be read, so the record names it."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    event_id = value.get("id") if isinstance(value, dict) else None
    return event_id if isinstance(event_id, str) else None


def _reject(db: Database, reason: str, raw: bytes, message_id: str | None) -> Outcome:
    event_id = _event_id(raw)
    db.run(lambda s: ledger_rejections.record_pushed(s, reason, raw, event_id, message_id))
    log.warning(
        "event rejected",
        extra={
            "reason": reason,
            "event_id": event_id,
            "message_id": message_id,
            "source": SOURCE,
            "rejected": 1,
        },
    )
    return Outcome.REJECTED


def apply(session: Session, message: Message, payload: str) -> dict[str, Any]:
    [row] = session.call(
        APPLY,
        payload=payload,
        message_id=message.message_id,
        publish_time=message.publish_time,
        delivery_attempt=message.delivery_attempt,
    )
    return row


def handle_message(db: Database, message: Message) -> Outcome:
    try:
        payload = edge_text(message.data)
    except Rejected as exc:
        return _reject(db, exc.reason, message.data, message.message_id)
    try:
        row = group_commit.for_database(db).apply(message, payload)
    except Refused as exc:
        row = {"outcome": "refused", "reason": exc.reason}
    if row["outcome"] == "refused":  # Postgres refused this event itself (its batch went on)
        return _reject(
            db, f"database refused the event: {row['reason']}", message.data, message.message_id
        )
    outcome = Outcome(row["outcome"])
    fields = {"event_id": row["event_id"], "vtid": row["vtid"], "outcome": outcome.value}
    if outcome is Outcome.REJECTED:
        log.warning(
            "event rejected",
            extra={**fields, "reason": row["reason"], "source": SOURCE, "rejected": 1},
        )
    else:
        log.info("event applied", extra=fields)
    return outcome


def handle_cloud_event(
    db: Database, data: Any, attributes: Mapping[str, Any], request_body: Any = None
) -> Outcome:
    """Entry for `main.oasis_event`: Eventarc messagePublished events and raw push envelopes
    (`request_body`, the push as it arrived, carries what the CloudEvent conversion drops)."""
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
        reason, raw = exc.reason, exc.raw
        db.run(lambda s: ledger_rejections.record_pushed(s, reason, raw, None, None))
        log.warning("message rejected", extra={"reason": reason, "source": SOURCE, "rejected": 1})
        return Outcome.REJECTED
    attempt = message.delivery_attempt or delivery_attempt(request_body)
    return handle_message(db, replace(message, delivery_attempt=attempt))
