"""`POST /api/v1/events/ingest`: store an event in oasis_events, then publish it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger import log_table, logs, rejections
from ledger.db import Database, Session, describe, is_permanent
from ledger.events import Event, Rejected, decode
from ledger.jsonout import iso
from ledger.vtid import is_valid, normalise

SOURCE = "ingest"
log = logs.get("ledger.ingest")


@dataclass(frozen=True, slots=True)
class Ingested:
    event: Event
    stored: bool
    message_id: str | None


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def prepare(body: Any) -> Event:
    """Decode an ingest body: the seed document's names or SPEC §2's, id and time defaulted.

    An ingest caller means one task, so what the sweep would skip silently is refused here: the
    five fields of the seed document's body are required and the VTID must be valid."""
    if not isinstance(body, Mapping):
        raise Rejected(f"body must be a JSON object, got {type(body).__name__}")
    raw = dict(body)
    if raw.get("id") in (None, ""):  # absent, like every other field that is null or ""
        raw["id"] = str(uuid.uuid4())
    event = decode(raw, default_time=datetime.now(UTC))
    source = next((raw[n] for n in ("source", "service") if isinstance(raw.get(n), str)), None)
    for name, value in [
        ("vtid", event.vtid),
        ("type is required (or topic, event)", event.type),
        ("source is required (or service)", source),
        ("status", event.status),
        ("message", event.message),
    ]:
        if _blank(value):
            reason = name if " " in name else f"{name} is required"
            raise Rejected(reason, event.id)
    assert event.vtid is not None
    if not is_valid(normalise(event.vtid)):
        raise Rejected(
            f"vtid {event.vtid!r} is not a valid VTID (like VTID-0521 or DEV-OASIS-0010)", event.id
        )
    return event


def record_rejection(db: Database, raw: bytes, exc: Rejected) -> None:
    def work(session: Session) -> None:
        rejections.record(session, source=SOURCE, reason=exc.reason, raw=raw, event_id=exc.event_id)

    db.run(work)


def wire_form(event: Event) -> dict[str, Any]:
    """The event as it is published: SPEC §2 names, so the event function reads it as stored."""
    return {
        "id": event.id,
        "created_at": iso(event.created_at),
        "topic": event.type,
        "service": event.service,
        "status": event.status,
        "vtid": event.vtid,
        "message": event.message,
        "title": event.title,
        "ref": event.ref,
        "layer": event.layer,
        "module": event.module,
        "kind": event.kind,
        "tenant": event.tenant,
        "notes": event.notes,
        "metadata": dict(event.metadata),
    }


def ingest(db: Database, event: Event, topic_path: str | None) -> Ingested:
    """Store first, so a failed publish loses nothing: the sweep still applies the event.
    Raises Rejected when Postgres refuses the event's data (an id too large to index, say)."""
    try:
        stored = db.run(lambda session: log_table.insert(session, event))
    except Exception as exc:
        if not is_permanent(exc):
            raise
        raise Rejected(f"database refused the event: {describe(exc)}", event.id) from None
    message_id = None
    if topic_path is not None and stored:
        from ledger import publisher

        try:
            attributes = {"type": event.type or "", "event_id": event.id}
            message_id = publisher.publish(topic_path, wire_form(event), attributes)
        except Exception as exc:  # noqa: BLE001 - stored already; the sweep will apply it
            log.warning("publish failed; the sweep will apply the event", extra={"error": str(exc)})
    return Ingested(event, stored, message_id)
