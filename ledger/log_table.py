"""The `oasis_events` table: reading it in commit order, and writing events to it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.db import Session
from ledger.events import PROJECTOR_SERVICE, SYNC_TYPE, Event
from ledger.offsets import Position

# Text casts: the platform's table may use other types (a uuid id, say). A created_at that
# Python cannot hold (infinity, years outside 1-9999) comes back as text, so decoding rejects
# that one event instead of the whole read failing on every sweep.
_COLUMNS = (
    "id::text AS id, "
    "CASE WHEN created_at >= '0001-01-01 00:00:00+00' AND created_at < '10000-01-01 00:00:00+00' "
    "THEN created_at END AS created_at, created_at::text AS created_at_text, "
    "vtid::text AS vtid, topic::text AS topic, event::text AS event, service::text AS service, "
    "source::text AS source, status::text AS status, message::text AS message, "
    "notes::text AS notes, metadata, tenant::text AS tenant, layer::text AS layer, "
    "module::text AS module, kind::text AS kind, title::text AS title, ref::text AS ref"
)
_OWN = f"(topic = '{SYNC_TYPE}' AND service = '{PROJECTOR_SERVICE}')"
_AFTER = "(tx_id, seq) > (CAST(:tx_id AS xid8), :seq)"
# Below the snapshot's xmin every transaction has ended: nothing can still appear there.
_HORIZON = "tx_id < pg_snapshot_xmin(pg_current_snapshot())"

# Positions travel as text (pg8000 has no xid8 type) under names no column has, so ORDER BY
# always sorts the xid8 columns themselves: sorted as text, '1000' < '998' and events are lost.
READ_BATCH = f"""
SELECT tx_id::text AS position_tx_id, seq AS position_seq, {_COLUMNS} FROM oasis_events
WHERE {_AFTER} AND {_HORIZON}
ORDER BY oasis_events.tx_id, oasis_events.seq LIMIT :limit"""

ANY_READABLE = f"SELECT EXISTS (SELECT 1 FROM oasis_events WHERE {_AFTER} AND {_HORIZON})"

BACKLOG = f"""
SELECT count(*) AS backlog,
       count(*) FILTER (WHERE NOT {_HORIZON}) AS held_back,
       min(created_at) AS oldest
FROM oasis_events WHERE {_AFTER} AND NOT {_OWN}"""

ALL_EVENTS = f"""
SELECT {_COLUMNS} FROM oasis_events WHERE NOT {_OWN}
ORDER BY oasis_events.tx_id, oasis_events.seq"""

# The type goes into both topic and event, the service into both service and source: the
# platform's readers use either name (the seed document's ledger_sync example uses event).
INSERT = """
INSERT INTO oasis_events (id, created_at, vtid, topic, event, service, source, status, message,
    notes, metadata, tenant, layer, module, kind, title, ref)
VALUES (:id, :created_at, :vtid, :type, :type, :service, :service, :status, :message, :notes,
    CAST(:metadata AS jsonb), :tenant, :layer, :module, :kind, :title, :ref)
ON CONFLICT (id) DO NOTHING
RETURNING id"""

RECENT_SYNCS = f"""
SELECT id::text AS id, status, notes, metadata, created_at FROM oasis_events
WHERE {_OWN} ORDER BY created_at DESC LIMIT :limit"""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """A row of oasis_events as read: its place in commit order and its raw columns."""

    position: Position
    raw: dict[str, Any]


def read_batch(session: Session, after: Position, limit: int) -> list[LoggedEvent]:
    rows = session.rows(READ_BATCH, tx_id=str(after.tx_id), seq=after.seq, limit=limit)
    return [
        LoggedEvent(
            Position(int(row.pop("position_tx_id")), int(row.pop("position_seq"))), _raw(row)
        )
        for row in rows
    ]


def _raw(row: dict[str, Any]) -> dict[str, Any]:
    text = row.pop("created_at_text")
    if row["created_at"] is None:
        row["created_at"] = text
    return row


def any_readable(session: Session, after: Position) -> bool:
    return bool(session.scalar(ANY_READABLE, tx_id=str(after.tx_id), seq=after.seq))


def backlog(session: Session, after: Position) -> dict[str, Any]:
    row = session.one(BACKLOG, tx_id=str(after.tx_id), seq=after.seq)
    assert row is not None
    return row


def all_events(session: Session) -> list[dict[str, Any]]:
    return [_raw(row) for row in session.rows(ALL_EVENTS)]


def insert(session: Session, event: Event) -> bool:
    """Store an event; False when an event with its id is already stored."""
    inserted = session.run(
        INSERT,
        id=event.id,
        created_at=event.created_at,
        vtid=event.vtid,
        type=event.type,
        service=event.service,
        status=event.status,
        message=event.message,
        notes=event.notes,
        metadata=json.dumps(dict(event.metadata)),
        tenant=event.tenant,
        layer=event.layer,
        module=event.module,
        kind=event.kind,
        title=event.title,
        ref=event.ref,
    )
    return bool(inserted)


def recent_syncs(session: Session, limit: int = 5) -> list[dict[str, Any]]:
    return session.rows(RECENT_SYNCS, limit=limit)


def raw_json(raw: Mapping[str, Any]) -> bytes:
    return json.dumps(raw, default=str).encode("utf-8", "backslashreplace")
