"""Explain a row: each column and metadata key of a task's row, with the event that set it.

The fold's state in the row says it already: fold_newest and fold_founding are the keys of the
newest and founding events, fold_owners the key of the event that set each register. A key is
the event's time, priority and id (ledger_key in sql/); the event is looked up in the log
by that id for its type. This answers "why is this task blocked?" without SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger import oasis_events
from ledger.db import Session
from ledger.fold import WRITER_KEYS
from ledger.json_text import raw
from ledger.timefmt import iso

ROW = """
SELECT vtid, status, service, environment, last_event_id, last_event_at, description,
    task_family, task_type, assigned_to, tenant, fold_newest, fold_founding,
    fold_owners FROM vtid_ledger WHERE vtid = :vtid"""

# Each metadata key with its value as jsonb's text, passed into the answer as it is stored.
METADATA = """
SELECT m.key, m.value::text AS value
FROM vtid_ledger AS l,
LATERAL jsonb_each(CASE WHEN jsonb_typeof(l.metadata) = 'object' THEN l.metadata END) AS m
WHERE l.vtid = :vtid
ORDER BY length(m.key), m.key COLLATE "C"
"""

EVENTS = """
SELECT id::text AS id, created_at, coalesce(nullif(topic::text, ''), nullif(event::text, ''))
    AS type,
    ledger_meta_text(ledger_metadata_object(metadata), 'environment', 'env') IS NOT NULL
        AS names_environment
FROM oasis_events WHERE id::text = ANY(CAST(:ids AS text[]))"""

NEWEST_COLUMNS = ("status", "service", "environment", "last_event_id", "last_event_at")
FOUNDING_COLUMNS = ("description", "task_family", "task_type")


def parse_key(key: str) -> dict[str, Any]:
    """A fold key back into what it orders by: time, priority, id (and the digest)."""
    stamp = datetime.strptime(key[:20], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
    escaped, _, digest = key[21:].partition("\x01\x01")
    return {
        "id": escaped.replace("\x01\x02", "\x01"),
        "created_at": iso(stamp),
        "priority": int(key[20]),
        "digest": digest,
    }


def explain(session: Session, vtid: str) -> dict[str, Any] | None:
    row = session.one(ROW, vtid=vtid)
    if row is None:
        return None
    owners: dict[str, str] = row["fold_owners"] or {}
    made_elsewhere = row["fold_founding"] is None
    keys = [k for k in (row["fold_newest"], row["fold_founding"], *owners.values()) if k]
    parsed = {key: parse_key(key) for key in keys if not key.endswith("~")}
    ids = sorted({p["id"] for p in parsed.values()})
    logged = {e["id"]: e for e in session.rows(EVENTS, ids=ids)}

    def event(key: str | None) -> dict[str, Any] | None:
        if key is None or key not in parsed:
            return None
        p = parsed[key]
        found = logged.get(p["id"])
        return {
            "id": p["id"],
            "type": found["type"] if found else None,
            "created_at": p["created_at"],
            "in_log": found is not None,
        }

    kept: dict[str, Any] = {"set_by": "kept from the row another system made"}
    newest = event(row["fold_newest"])
    founding = event(row["fold_founding"])

    def by_newest() -> dict[str, Any]:
        return {"set_by": "newest event", "event": newest} if newest else kept

    columns: dict[str, Any] = {}
    for name in NEWEST_COLUMNS:
        columns[name] = {"value": iso(row[name]) if name == "last_event_at" else row[name]}
        columns[name].update(by_newest())
    newest_logged = logged.get(newest["id"]) if newest else None
    if newest_logged is not None and not newest_logged["names_environment"]:
        columns["environment"]["set_by"] = "default: the newest event names no environment"
    source: dict[str, Any]
    for name in (*FOUNDING_COLUMNS, "assigned_to", "tenant"):
        if name in owners:
            source = {"set_by": "explicitly, in its metadata", "event": event(owners[name])}
        elif made_elsewhere:
            source = kept
        elif name == "assigned_to":
            source = {"set_by": "no event set it"}
        else:
            source = {"set_by": "founding event", "event": founding}
        columns[name] = {"value": row[name], **source}
    metadata: dict[str, Any] = {}
    stored = {m["key"]: raw(m["value"]) for m in session.rows(METADATA, vtid=vtid)}
    for name, value in stored.items():
        if name in owners:
            source = {"set_by": "newest event carrying it", "event": event(owners[name])}
        elif name in WRITER_KEYS and not made_elsewhere:
            source = {
                "set_by": "the writer",
                "event": newest if name == "lastEventType" else founding,
            }
        else:
            source = kept
        metadata[name] = {"value": value, **source}
    return {
        "vtid": vtid,
        "made_by": "another system" if made_elsewhere else "the writer",
        "newest_event": newest,
        "founding_event": founding,
        "events_in_log": count_events(session, vtid),
        "columns": columns,
        "metadata": metadata,
    }


def count_events(session: Session, vtid: str) -> int:
    return int(session.scalar(oasis_events.COUNT_FOR_VTID, vtid=vtid))
