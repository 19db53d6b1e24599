"""The catch-up sweep (docs/behaviour.md §6): apply `oasis_events` from the offset, batch by batch.

Each batch is one statement in its own transaction (`ledger_sweep_batch` in sql/): it
reads the next events in commit order below the snapshot horizon, decodes them, records the
unreadable ones, folds the rest into the ledger and advances the offset. No event crosses into
Python. This module takes the advisory lock, loops until caught up or out of time, isolates an
event Postgres refuses, and writes the ledger_sync event.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger import ledger_rejections, logs, oasis_events, projection_offsets
from ledger.counters import Counters
from ledger.db import Database, Refused, Session
from ledger.timefmt import iso

LOCK = "SELECT pg_try_advisory_lock(hashtextextended('vtid-ledger-sweep:' || current_schema(), 0))"
UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('vtid-ledger-sweep:' || current_schema(), 0))"
BATCH = """
SELECT read_count, processed, created, updated, stale, skipped, errors, last_event_id,
    last_event_time
FROM ledger_sweep_batch(:batch_size)"""
REJECT_NEXT = "SELECT ledger_sweep_reject_next(:reason) AS event_id"

log = logs.get("ledger.sweep")


class SweepRunning(RuntimeError):
    """Another sweep holds the lock."""


@dataclass(slots=True)
class SweepResult:
    counters: Counters = field(default_factory=Counters)
    last_event_id: str | None = None
    last_event_time: datetime | None = None
    more: bool = False
    busy: bool = False
    batches: int = 0

    def add(self, batch: Batch) -> None:
        self.counters.merge(batch.counters)
        self.batches += 1
        if batch.last_event_id is not None:
            self.last_event_id, self.last_event_time = batch.last_event_id, batch.last_event_time

    def as_dict(self) -> dict[str, Any]:
        """The seed document's sync result, plus stale and more."""
        return {
            **self.counters.as_dict(),
            "last_event_id": self.last_event_id,
            "last_event_time": iso(self.last_event_time),
            "more": self.more,
        }


@dataclass(frozen=True, slots=True)
class Batch:
    read: int
    counters: Counters
    last_event_id: str | None = None
    last_event_time: datetime | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Batch:
        names = ("processed", "created", "updated", "stale", "skipped", "errors")
        counters = Counters(**{name: int(row[name]) for name in names})
        return cls(int(row["read_count"]), counters, row["last_event_id"], row["last_event_time"])


def apply_batch(session: Session, batch_size: int) -> Batch:
    """One batch, one statement, one transaction. An event Postgres refuses (a value too large
    for an index, say) fails its whole batch; then the same events are applied one at a time,
    and the one refused is recorded and passed, so it can never stall the sweep."""
    try:
        [row] = session.call(BATCH, batch_size=batch_size)
        return Batch.of(row)
    except Refused:
        pass
    total = Counters()
    last: Batch | None = None
    read = 0
    for _ in range(batch_size):
        try:
            [row] = session.call(BATCH, batch_size=1)
            one = Batch.of(row)
        except Refused as exc:
            reason = f"database refused the event: {exc.reason}"
            [refused] = session.call(REJECT_NEXT, reason=reason)
            # No `rejected` count here: the batch's "events rejected" line counts this event
            # too, and the log-based metric sums that field, so each event counts once.
            log.warning("event rejected", extra={"reason": reason, **refused, "source": "sweep"})
            one = Batch(1, Counters(processed=1, errors=1))
        if one.read == 0:
            break
        read += one.read
        total.merge(one.counters)
        last = one if one.last_event_id is not None else last
    return Batch(
        read, total, last.last_event_id if last else None, last.last_event_time if last else None
    )


def _sync_event(session: Session, result: SweepResult) -> None:
    c = result.counters
    metadata = {
        "processed": c.processed,
        "updated": c.updated,
        "created": c.created,
        "errors": c.errors,
        "skipped": c.skipped,
        "lastEventId": result.last_event_id,
        "lastEventTime": iso(result.last_event_time),
        "vtid": None,
    }
    session.run(
        oasis_events.INSERT_SYNC,
        id=f"ledger-sync-{uuid.uuid4()}",
        status="warning" if c.errors else "success",
        notes=c.notes,
        metadata=json.dumps(metadata),
    )


def _run(
    session: Session,
    batch_size: int,
    budget_s: float,
    on_batch: Callable[[SweepResult], None] | None,
    clock: Callable[[], float],
) -> SweepResult:
    result = SweepResult()
    deadline = clock() + budget_s
    while True:
        batch = apply_batch(session, batch_size)
        if batch.read == 0:
            break
        result.add(batch)
        if batch.counters.errors:
            # Recorded inside the batch statement (or one by one when Postgres refused one);
            # the reasons are in the table. `rejected` is what the log-based metric sums.
            log.warning(
                "events rejected",
                extra={"rejected": batch.counters.errors, "source": "sweep",
                       "see": "python -m ledger rejections, or table ledger_rejections"},
            )  # fmt: skip
        if on_batch is not None:
            on_batch(result)
        if batch.read < batch_size:
            break
        if clock() >= deadline:
            result.more = oasis_events.any_readable(session, projection_offsets.position(session))
            break
    if result.counters.processed:
        _sync_event(session, result)
    projection_offsets.mark_ok(session)
    pruned = ledger_rejections.prune(session)
    if pruned:
        log.info("old rejections pruned", extra={"count": pruned})
    return result


def sweep(
    db: Database,
    *,
    batch_size: int | None = None,
    budget_s: float | None = None,
    on_batch: Callable[[SweepResult], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SweepResult:
    """Run one sweep, unless one is already running (then return at once with busy=True)."""
    size = batch_size or db.settings.sweep_batch_size
    budget = budget_s if budget_s is not None else db.settings.sweep_time_budget_s

    def work(session: Session) -> SweepResult:
        if not session.scalar(LOCK):
            return SweepResult(busy=True)
        try:
            return _run(session, size, budget, on_batch, clock)
        finally:
            with suppress(Exception):
                session.run(UNLOCK)

    try:
        result = db.run(work)  # a pooled connection that died is replaced, and the sweep rerun
    except Exception as exc:
        error = str(exc)
        log.error("sweep failed", extra={"error": error})
        with suppress(Exception):
            db.run(lambda s: projection_offsets.mark_failed(s, error))
        raise
    if not result.busy:
        log.info("sweep finished", extra={"result": result.as_dict(), **_lag(db)})
    return result


def _lag(db: Database) -> dict[str, Any]:
    """What is left after the sweep, for the log-based lag metric and its alert (terraform/)."""
    from ledger.writer_status import sweep_lag

    try:
        backlog, lag = db.run(sweep_lag)
    except Exception as exc:  # noqa: BLE001 - the sweep is done; a missing figure is not fatal
        log.warning("sweep lag unknown", extra={"error": str(exc)})
        return {}
    return {"backlog": backlog, "lag_seconds": lag}


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
