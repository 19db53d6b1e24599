"""The real-time path's counters (projector `vtid_ledger_sync`) in `projector_progress`: one row
per shard, each connection counting into its own (ledger_count_realtime), so concurrent
instances do not queue on one row."""

from __future__ import annotations

PROJECTOR = "vtid_ledger_sync"

TOTALS = """
SELECT coalesce(sum(events_processed), 0)::bigint AS events_processed,
       coalesce(sum(created), 0)::bigint AS created, coalesce(sum(updated), 0)::bigint AS updated,
       coalesce(sum(skipped), 0)::bigint AS skipped, coalesce(sum(errors), 0)::bigint AS errors,
       -- Every event counted is created, updated, stale, skipped or rejected: stale is the rest
       -- (the table keeps no column of its own for it).
       coalesce(sum(events_processed - created - updated - skipped - errors), 0)::bigint
           AS stale,
       coalesce(sum(redelivered), 0)::bigint AS redelivered,
       coalesce(sum(delivery_lag_seconds_sum), 0)::float8 AS delivery_lag_seconds_sum,
       coalesce(sum(delivery_lag_count), 0)::bigint AS delivery_lag_count,
       (array_agg(last_delivery_lag_seconds ORDER BY last_processed_at DESC NULLS LAST)
           FILTER (WHERE last_delivery_lag_seconds IS NOT NULL))[1] AS last_delivery_lag_seconds,
       max(last_processed_at) AS last_processed_at, max(last_event_time) AS last_event_time,
       ledger_delivery_lag_bounds() AS delivery_lag_bounds,
       -- per bound, summed over the shards (a shard counted before the buckets has none)
       ARRAY(SELECT coalesce(sum(q.delivery_lag_buckets[b.i]), 0)::bigint
             FROM generate_subscripts(ledger_delivery_lag_bounds(), 1) AS b(i)
             LEFT JOIN projector_progress AS q ON q.projector_name = :name
             GROUP BY b.i ORDER BY b.i) AS delivery_lag_buckets
FROM projector_progress WHERE projector_name = :name"""
