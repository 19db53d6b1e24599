"""The ledger's SQL: reading fold states, the real-time conditional UPSERT, and the sweep's
set-based batch statements. Every statement is a named constant with bound parameters."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from ledger import fold
from ledger.db import Session
from ledger.events import Event
from ledger.outcome import Outcome

_ROW_COLUMNS = (
    "status, service, environment, last_event_id, last_event_at, description, task_family, "
    "task_type, assigned_to, tenant, metadata"
)
_RECORD_TYPE = (
    "vtid text, status text, service text, environment text, last_event_id text, "
    "last_event_at timestamptz, description text, task_family text, task_type text, "
    "assigned_to text, tenant text, metadata jsonb, fold_state jsonb"
)

READ_ONE = f"SELECT vtid, fold_state, revision, {_ROW_COLUMNS} FROM vtid_ledger WHERE vtid = :vtid"

LOCK_MANY = f"""
SELECT vtid, fold_state, revision, {_ROW_COLUMNS} FROM vtid_ledger
WHERE vtid = ANY(:vtids) ORDER BY vtid FOR UPDATE"""

# The real-time path's one conditional UPSERT: it inserts a new row, or updates the row only if
# nobody changed it since it was read (compare-and-set on revision). No row back: read again.
UPSERT_IF_UNCHANGED = f"""
INSERT INTO vtid_ledger AS l (vtid, {_ROW_COLUMNS}, fold_state, revision, created_at, updated_at)
SELECT r.vtid, r.status, r.service, r.environment, r.last_event_id, r.last_event_at,
       r.description, r.task_family, r.task_type, r.assigned_to, r.tenant, r.metadata,
       r.fold_state, 1, now(), now()
FROM jsonb_to_record(CAST(:row AS jsonb)) AS r({_RECORD_TYPE})
ON CONFLICT (vtid) DO UPDATE SET
    status = EXCLUDED.status, service = EXCLUDED.service, environment = EXCLUDED.environment,
    last_event_id = EXCLUDED.last_event_id, last_event_at = EXCLUDED.last_event_at,
    description = EXCLUDED.description, task_family = EXCLUDED.task_family,
    task_type = EXCLUDED.task_type, assigned_to = EXCLUDED.assigned_to,
    tenant = EXCLUDED.tenant, metadata = EXCLUDED.metadata, fold_state = EXCLUDED.fold_state,
    revision = l.revision + 1, updated_at = now()
WHERE l.revision = :expected
RETURNING vtid"""

INSERT_NEW = f"""
INSERT INTO vtid_ledger (vtid, {_ROW_COLUMNS}, fold_state, revision, created_at, updated_at)
SELECT r.vtid, r.status, r.service, r.environment, r.last_event_id, r.last_event_at,
       r.description, r.task_family, r.task_type, r.assigned_to, r.tenant, r.metadata,
       r.fold_state, 1, now(), now()
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_RECORD_TYPE})
ORDER BY r.vtid
ON CONFLICT (vtid) DO NOTHING
RETURNING vtid"""

UPDATE_MANY = f"""
UPDATE vtid_ledger AS l SET
    status = r.status, service = r.service, environment = r.environment,
    last_event_id = r.last_event_id, last_event_at = r.last_event_at,
    description = r.description, task_family = r.task_family, task_type = r.task_type,
    assigned_to = r.assigned_to, tenant = r.tenant, metadata = r.metadata,
    fold_state = r.fold_state, revision = l.revision + 1, updated_at = now()
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_RECORD_TYPE})
WHERE l.vtid = r.vtid"""


@dataclass(frozen=True, slots=True)
class Current:
    """What the ledger holds for one VTID: nothing, a folded state, or a pre-existing row."""

    vtid: str
    revision: int | None = None
    state: fold.State | None = None
    base: fold.Base | None = None

    @property
    def exists(self) -> bool:
        return self.revision is not None

    def absorb(self, events: Iterable[Event]) -> tuple[fold.State | None, list[Outcome]]:
        """Fold `events` in, in the order given; what each one did (SPEC §5 counters)."""
        state, outcomes = self.state, []
        for event in events:
            if state is None:
                state = fold.with_base(fold.apply(None, event), self.base)
                outcomes.append(Outcome.UPDATED if self.exists else Outcome.CREATED)
                continue
            new = fold.apply(state, event)
            outcomes.append(Outcome.STALE if new == state else Outcome.UPDATED)
            state = new
        return state, outcomes


def current_of(row: Mapping[str, Any]) -> Current:
    raw_state = row["fold_state"]
    if raw_state is not None:
        return Current(row["vtid"], row["revision"], state=fold.from_json(raw_state))
    metadata = row["metadata"] if isinstance(row["metadata"], dict) else {}
    last_at = row["last_event_at"]
    if last_at is not None and last_at.tzinfo is None:  # a platform column without time zone
        last_at = last_at.replace(tzinfo=UTC)
    base = fold.Base(
        status=row["status"],
        service=row["service"],
        environment=row["environment"],
        last_event_id=row["last_event_id"],
        last_event_at=last_at,
        description=row["description"],
        task_family=row["task_family"],
        task_type=row["task_type"],
        assigned_to=row["assigned_to"],
        tenant=row["tenant"],
        metadata=metadata,
    )
    return Current(row["vtid"], row["revision"], base=base)


def row_record(vtid: str, state: fold.State) -> dict[str, Any]:
    row = fold.render(state)
    return {
        "vtid": vtid,
        "status": row.status,
        "service": row.service,
        "environment": row.environment,
        "last_event_id": row.last_event_id,
        "last_event_at": row.last_event_at.isoformat() if row.last_event_at else None,
        "description": row.description,
        "task_family": row.task_family,
        "task_type": row.task_type,
        "assigned_to": row.assigned_to,
        "tenant": row.tenant,
        "metadata": dict(row.metadata),
        "fold_state": fold.to_json(state),
    }


def read(session: Session, vtid: str) -> Current:
    row = session.one(READ_ONE, vtid=vtid)
    return Current(vtid) if row is None else current_of(row)


def upsert_if_unchanged(
    session: Session, vtid: str, state: fold.State, expected: int | None
) -> bool:
    """True when written; False when the row changed (or appeared) since it was read."""
    record = json.dumps(row_record(vtid, state))
    return bool(session.run(UPSERT_IF_UNCHANGED, row=record, expected=expected))


def lock_many(session: Session, vtids: Iterable[str]) -> dict[str, Current]:
    rows = session.rows(LOCK_MANY, vtids=sorted(vtids))
    return {row["vtid"]: current_of(row) for row in rows}


def insert_new(session: Session, states: Mapping[str, fold.State]) -> set[str]:
    """Insert rows for VTIDs that have none; return those inserted (the rest exist already)."""
    if not states:
        return set()
    rows = json.dumps([row_record(vtid, states[vtid]) for vtid in sorted(states)])
    return {r[0] for r in session.run(INSERT_NEW, rows=rows)}


def update_many(session: Session, states: Mapping[str, fold.State]) -> None:
    if states:
        rows = json.dumps([row_record(vtid, states[vtid]) for vtid in sorted(states)])
        session.run(UPDATE_MANY, rows=rows)
