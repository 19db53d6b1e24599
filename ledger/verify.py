"""`verify` and `rebuild`: the ledger checked against, and rebuilt from, the whole log."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger import fold, log_table, offsets, store
from ledger.db import Database, Session
from ledger.events import Event, Rejected, decode
from ledger.sweep import LOCK, UNLOCK, SweepResult, sweep
from ledger.vtid import of_event

COLUMNS = tuple(fold.Row.__slots__)

ROWS = f"SELECT vtid, fold_state, revision, {', '.join(COLUMNS)} FROM vtid_ledger"

# A row created by another system goes back to what it was; rows the writer made are removed.
RESTORE_BASES = """
UPDATE vtid_ledger SET
    status = fold_state->'base'->>'status', service = fold_state->'base'->>'service',
    environment = fold_state->'base'->>'environment',
    last_event_id = fold_state->'base'->>'last_event_id',
    last_event_at = CAST(fold_state->'base'->>'last_event_at' AS timestamptz),
    description = fold_state->'base'->>'description',
    task_family = fold_state->'base'->>'task_family',
    task_type = fold_state->'base'->>'task_type',
    assigned_to = fold_state->'base'->>'assigned_to', tenant = fold_state->'base'->>'tenant',
    metadata = fold_state->'base'->'metadata',
    fold_state = NULL, revision = revision + 1, updated_at = now()
WHERE jsonb_typeof(fold_state->'base') = 'object'"""
DELETE_FOLDED = "DELETE FROM vtid_ledger WHERE fold_state IS NOT NULL"


@dataclass(frozen=True, slots=True)
class Drift:
    vtid: str
    problem: str
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)


def _events_by_vtid(session: Session) -> dict[str, list[Event]]:
    by_vtid: dict[str, list[Event]] = defaultdict(list)
    for raw in log_table.all_events(session):
        try:
            event = decode(raw)
        except Rejected:
            continue
        vtid = None if event.is_own_sync else of_event(event)
        if vtid is not None:
            by_vtid[vtid].append(event)
    return by_vtid


def verify(session: Session) -> list[Drift]:
    """Fold the whole log independently of the writers and compare every row."""
    by_vtid = _events_by_vtid(session)
    rows = {r["vtid"]: r for r in session.rows(ROWS)}
    drifts: list[Drift] = []
    for vtid in sorted(set(by_vtid) | set(rows)):
        row, events = rows.get(vtid), by_vtid.get(vtid, [])
        if not events:
            if row is not None and row["fold_state"] is not None:
                drifts.append(Drift(vtid, "row has no events in the log"))
            continue
        if row is None:
            drifts.append(Drift(vtid, "row is missing"))
            continue
        current = store.current_of(row)
        base = current.state.base if current.state is not None else current.base
        state = fold.fold_events(events, base)
        assert state is not None
        expected = fold.render(state)
        differs = {
            name: {"ledger": row[name], "log": getattr(expected, name)}
            for name in COLUMNS
            if row[name] != getattr(expected, name)
        }
        if differs:
            drifts.append(Drift(vtid, "row differs from the fold of its events", differs))
    return drifts


class SweepRunning(RuntimeError):
    pass


def reset_for_rebuild(db: Database) -> None:
    """Empty the ledger of what the writer made and rewind the offset, under the sweep's lock."""

    def work(session: Session) -> None:
        if not session.scalar(LOCK):
            raise SweepRunning("a sweep is running; try again when it finishes")
        try:
            with session.transaction():
                session.run(RESTORE_BASES)
                session.run(DELETE_FOLDED)
                offsets.reset(session)
        finally:
            session.run(UNLOCK)

    db.run(work)


def sweep_until_caught_up(
    db: Database, on_batch: Callable[[SweepResult], None] | None = None
) -> SweepResult:
    """Sweep again while a sweep's budget ran out with events left; totals across sweeps."""
    total = SweepResult()
    while True:
        result = sweep(db, on_batch=on_batch)
        if result.busy:
            raise SweepRunning("a sweep is already running; try again when it finishes")
        total.counters.merge(result.counters)
        total.batches += result.batches
        if result.last_event_id is not None:
            total.last_event_id, total.last_event_time = (
                result.last_event_id,
                result.last_event_time,
            )
        if not result.more:
            return total
