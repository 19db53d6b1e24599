"""The catch-up sweep (SPEC §7): apply `oasis_events` from the stored offset, set-based.

Events are read in commit order, keyed by (inserting transaction id, sequence), and only below
the snapshot's xmin, where every transaction has ended: an event whose transaction commits late
is still ahead of the offset when it becomes readable. Each batch's ledger changes and the
offset advance commit in one transaction.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger import fold, log_table, logs, offsets, rejections, store
from ledger.db import Database, Session, describe, is_permanent
from ledger.events import PROJECTOR_SERVICE, SYNC_TYPE, Event, Rejected, decode
from ledger.jsonout import iso
from ledger.outcome import Counters, Outcome
from ledger.vtid import of_event

SOURCE = "sweep"
LOCK = "SELECT pg_try_advisory_lock(hashtextextended('vtid-ledger-sweep:' || current_schema(), 0))"
UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('vtid-ledger-sweep:' || current_schema(), 0))"

log = logs.get("ledger.sweep")


@dataclass(slots=True)
class SweepResult:
    counters: Counters = field(default_factory=Counters)
    last_event_id: str | None = None
    last_event_time: datetime | None = None
    more: bool = False
    busy: bool = False
    batches: int = 0


@dataclass(frozen=True, slots=True)
class BatchResult:
    counters: Counters
    last: Event | None


def apply_batch(session: Session, batch: list[log_table.LoggedEvent]) -> BatchResult:
    """Apply one batch set-based: a handful of statements whatever its size."""
    counters = Counters()
    by_vtid: dict[str, list[Event]] = defaultdict(list)
    last: Event | None = None
    for item in batch:
        try:
            event = decode(item.raw)
        except Rejected as exc:
            raw = log_table.raw_json(item.raw)
            rejections.record(
                session, source=SOURCE, reason=exc.reason, raw=raw, event_id=exc.event_id
            )
            counters.add(Outcome.REJECTED)
            continue
        if event.is_own_sync:
            continue
        last = event
        vtid = of_event(event)
        if vtid is None:
            counters.add(Outcome.SKIPPED)
        else:
            by_vtid[vtid].append(event)

    current = store.lock_many(session, by_vtid)
    fresh = {v: store.Current(v).absorb(evs) for v, evs in by_vtid.items() if v not in current}
    inserted = store.insert_new(session, {v: st for v, (st, _) in fresh.items() if st is not None})
    if len(inserted) < len(fresh):
        # A real-time writer created some of these rows since we looked: merge into those.
        current.update(store.lock_many(session, set(fresh) - inserted))

    changed: dict[str, fold.State] = {}
    for vtid, events in by_vtid.items():
        if vtid in inserted:
            outcomes = fresh[vtid][1]
        else:
            state, outcomes = current[vtid].absorb(events)
            if state is not None and any(o is not Outcome.STALE for o in outcomes):
                changed[vtid] = state
        for outcome in outcomes:
            counters.add(outcome)
    store.update_many(session, changed)
    return BatchResult(counters, last)


def apply_isolating(session: Session, batch: list[log_table.LoggedEvent]) -> BatchResult:
    """Apply a batch; if Postgres refuses some event's data, apply the batch again one event at a
    time and reject just the refused ones, so one poison event cannot stall the sweep forever."""
    try:
        with session.savepoint():
            return apply_batch(session, batch)
    except Exception as exc:
        if not is_permanent(exc):
            raise
    counters, last = Counters(), None
    for item in batch:
        try:
            with session.savepoint():
                one = apply_batch(session, [item])
        except Exception as exc:
            if not is_permanent(exc):
                raise
            raw, event_id = log_table.raw_json(item.raw), item.raw.get("id")
            reason = f"database refused the event: {describe(exc)}"
            rejections.record(session, source=SOURCE, reason=reason, raw=raw, event_id=event_id)
            counters.add(Outcome.REJECTED)
            continue
        counters.merge(one.counters)
        last = one.last or last
    return BatchResult(counters, last)


def _sync_event(result: SweepResult) -> Event:
    c = result.counters
    notes = (
        f"Processed {c.processed} events: {c.updated} updated, {c.created} created, "
        f"{c.errors} errors"
    )
    return decode(
        {
            "id": f"ledger-sync-{uuid.uuid4()}",
            "created_at": datetime.now(UTC).isoformat(),
            "topic": SYNC_TYPE,
            "service": PROJECTOR_SERVICE,
            "tenant": "system",
            "status": "warning" if c.errors else "success",
            "message": notes,
            "notes": notes,
            "metadata": {
                "processed": c.processed,
                "updated": c.updated,
                "created": c.created,
                "errors": c.errors,
                "skipped": c.skipped,
                "lastEventId": result.last_event_id,
                "lastEventTime": iso(result.last_event_time),
                "vtid": None,
            },
        }
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
        with session.transaction():
            position = offsets.position(offsets.read(session))
            batch = log_table.read_batch(session, position, batch_size)
            if not batch:
                break
            applied = apply_isolating(session, batch)
            last = applied.last
            offsets.advance(
                session,
                batch[-1].position,
                applied.counters,
                last.id if last else None,
                last.created_at if last else None,
            )
        result.counters.merge(applied.counters)
        result.batches += 1
        if last is not None:
            result.last_event_id, result.last_event_time = last.id, last.created_at
        if on_batch is not None:
            on_batch(result)
        if len(batch) < batch_size:
            break
        if clock() >= deadline:
            position = batch[-1].position
            result.more = log_table.any_readable(session, position)
            break
    with session.transaction():
        if result.counters.processed:
            log_table.insert(session, _sync_event(result))
        offsets.mark_ok(session)
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
        if result.busy:
            return result
    except Exception as exc:
        error = str(exc)
        log.error("sweep failed", extra={"error": error})
        with suppress(Exception):
            db.run(lambda s: offsets.mark_failed(s, error))
        raise
    c = result.counters
    counts = {
        "processed": c.processed,
        "created": c.created,
        "updated": c.updated,
        "errors": c.errors,
        "skipped": c.skipped,
        "more": result.more,
    }
    log.info("sweep finished", extra={"result": counts})
    return result
