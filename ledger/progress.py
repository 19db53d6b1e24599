"""The real-time path's counters (projector `vtid_ledger_sync`), sharded across rows."""

from __future__ import annotations

import random
from datetime import datetime

from ledger.db import Session
from ledger.outcome import Counters

PROJECTOR = "vtid_ledger_sync"
SHARDS = 16

COUNT = """
INSERT INTO projector_progress AS p (projector_name, shard, events_processed, created, updated,
    skipped, errors, last_processed_at, last_event_time)
VALUES (:name, :shard, :processed, :created, :updated, :skipped, :errors, now(), :event_time)
ON CONFLICT (projector_name, shard) DO UPDATE SET
    events_processed = p.events_processed + EXCLUDED.events_processed,
    created = p.created + EXCLUDED.created,
    updated = p.updated + EXCLUDED.updated,
    skipped = p.skipped + EXCLUDED.skipped,
    errors = p.errors + EXCLUDED.errors,
    last_processed_at = now(),
    last_event_time = GREATEST(p.last_event_time, EXCLUDED.last_event_time)"""

TOTALS = """
SELECT coalesce(sum(events_processed), 0)::bigint AS events_processed,
       coalesce(sum(created), 0)::bigint AS created, coalesce(sum(updated), 0)::bigint AS updated,
       coalesce(sum(skipped), 0)::bigint AS skipped, coalesce(sum(errors), 0)::bigint AS errors,
       max(last_processed_at) AS last_processed_at, max(last_event_time) AS last_event_time
FROM projector_progress WHERE projector_name = :name"""


def count(session: Session, counters: Counters, event_time: datetime | None) -> None:
    """Add to a random shard: concurrent instances rarely meet on one row."""
    if counters.processed == 0:
        return
    session.run(
        COUNT,
        name=PROJECTOR,
        shard=random.randrange(SHARDS),  # noqa: S311 - spreading load, not security
        processed=counters.processed,
        created=counters.created,
        updated=counters.updated,
        skipped=counters.skipped,
        errors=counters.errors,
        event_time=event_time,
    )
