"""The `oasis_events` table: positions in commit order, what is left to sweep, the writer's own
`ledger_sync` events, ingest, and the log streamed for verify."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.db import Session
from ledger.events import PROJECTOR_SERVICE, SYNC_TYPE


@dataclass(frozen=True, slots=True)
class Position:
    """Where the sweep is in commit order: (transaction id, sequence) of the last event read.
    An int, so that nothing can compare positions as text ('1000' < '998')."""

    tx_id: int = 0
    seq: int = 0


_OWN = f"(topic = '{SYNC_TYPE}' AND service = '{PROJECTOR_SERVICE}')"
_AFTER = "(tx_id, seq) > (CAST(:tx_id AS xid8), :seq)"
# Below the snapshot's xmin every transaction has ended: nothing can still appear there.
_HORIZON = "tx_id < pg_snapshot_xmin(pg_current_snapshot())"

ANY_READABLE = f"SELECT EXISTS (SELECT 1 FROM oasis_events WHERE {_AFTER} AND {_HORIZON})"

BACKLOG = f"""
SELECT count(*) AS backlog,
       count(*) FILTER (WHERE NOT {_HORIZON}) AS held_back,
       min(stored_at) AS oldest
FROM oasis_events WHERE {_AFTER} AND NOT {_OWN}"""

# The seed document's ledger_sync event: type in topic and event, service in service and source.
INSERT_SYNC = """
INSERT INTO oasis_events (id, created_at, topic, event, service, source, tenant, status,
    message, notes, metadata)
VALUES (:id, now(), 'ledger_sync', 'ledger_sync', 'oasis-projector', 'oasis-projector',
    'system', :status, :notes, :notes, CAST(:metadata AS jsonb))"""

RECENT_SYNCS = f"""
SELECT id::text AS id, status, notes, metadata, created_at FROM oasis_events
WHERE {_OWN} ORDER BY tx_id DESC, seq DESC LIMIT :limit"""

INGEST = """
SELECT outcome, event_id, reason, wire, event_type
FROM ledger_ingest_request(:payload, :received_at, :caller)"""

# Many events in one statement (one transaction): NDJSON ingest stores thousands a second.
INGEST_MANY = """
SELECT r.outcome, r.event_id, r.reason, r.wire, r.event_type
FROM unnest(CAST(:payloads AS text[])) WITH ORDINALITY AS p(payload, n),
LATERAL ledger_ingest_request(p.payload, :received_at, :caller) AS r
ORDER BY p.n"""

# verify: every event with what Postgres's rules make of it (its VTID, or why it is rejected),
# and its raw columns for the Python reference to decode on its own. Grouped by that VTID,
# ordered as Python orders strings (COLLATE "C"), so verify holds one VTID at a time.
# created_at comes as text as well when Python cannot hold it (infinity, years past 9999).
STREAM = f"""
SELECT d.task_vtid AS sql_vtid, d.reason AS sql_reason, o.id::text AS id,
    CASE WHEN o.created_at >= '0001-01-01 00:00:00+00' AND o.created_at < '10000-01-01 00:00:00+00'
        THEN o.created_at END AS created_at, o.created_at::text AS created_at_text,
    o.vtid::text AS vtid, o.topic::text AS topic, o.event::text AS event,
    o.service::text AS service, o.source::text AS source, o.status::text AS status,
    o.message::text AS message, o.notes::text AS notes, o.metadata::text AS metadata,
    o.tenant::text AS tenant, o.layer::text AS layer, o.module::text AS module,
    o.kind::text AS kind, o.title::text AS title, o.ref::text AS ref, o.stored_at,
    (o.tx_id, o.seq) > (SELECT coalesce(p.position_tx_id, '0'::xid8), coalesce(p.position_seq, 0)
        FROM projection_offsets AS p WHERE p.projector_name = 'vtid_ledger_writer') AS unswept
FROM oasis_events AS o,
LATERAL ledger_decode_row(o) AS d
WHERE NOT (d.reason IS NULL AND d.service = '{PROJECTOR_SERVICE}'
           AND d.type IS NOT DISTINCT FROM '{SYNC_TYPE}')
ORDER BY d.task_vtid COLLATE "C" NULLS LAST, o.tx_id, o.seq"""

# The same for one task: its events found through the index on each row's VTID by the rules.
STREAM_FOR_VTID = STREAM.replace(
    "WHERE NOT (",
    "WHERE ledger_row_vtid(o.vtid::text, o.metadata, o.ref::text, o.message::text) = :vtid\n"
    "  AND NOT (",
)

# explain: how many events of the log Postgres's rules give this VTID, found through the index
# on each row's VTID (the decoder decides whether each is read).
COUNT_FOR_VTID = f"""
SELECT count(*) FROM oasis_events AS o,
LATERAL ledger_decode_row(o) AS d
WHERE ledger_row_vtid(o.vtid::text, o.metadata, o.ref::text, o.message::text) = :vtid
  AND d.task_vtid = :vtid AND d.reason IS NULL
  AND NOT (d.service = '{PROJECTOR_SERVICE}' AND d.type IS NOT DISTINCT FROM '{SYNC_TYPE}')"""


def any_readable(session: Session, after: Position) -> bool:
    return bool(session.scalar(ANY_READABLE, tx_id=str(after.tx_id), seq=after.seq))


def backlog(session: Session, after: Position) -> dict[str, Any]:
    row = session.one(BACKLOG, tx_id=str(after.tx_id), seq=after.seq)
    assert row is not None
    return row


def recent_syncs(session: Session, limit: int = 5) -> list[dict[str, Any]]:
    return session.rows(RECENT_SYNCS, limit=limit)
