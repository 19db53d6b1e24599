-- The sweep (docs/behaviour.md §5): the log read in commit order from the stored position,
-- a batch a statement, the ledger and the position written in the same transaction.

-- The projector's position: the last (transaction id, sequence) it has read.
CREATE OR REPLACE FUNCTION ledger_sweep_position() RETURNS TABLE (tx_id xid8, seq bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT coalesce(position_tx_id, '0'::xid8), coalesce(position_seq, 0)
FROM projection_offsets WHERE projector_name = 'vtid_ledger_writer'
$$;

-- One batch: the next `batch_size` events after the position and below the horizon (every
-- transaction that could still commit an event there has ended: pg_snapshot_xmin), decoded,
-- rejected or folded, the outcome of each counted, and the position advanced past them.
--
-- One statement of about 100 lines: the steps hand each other up to 50,000 rows, and data-
-- modifying steps (the rejections, the position) run only as parts of one WITH. Plain SQL, so
-- it is planned at every call, which costs less than a batch (and sees current statistics).
-- Nested loops and merge joins are off as in ledger_fold, as a guard (at 200,000 events the
-- planner chose hash joins without it: the same rate within noise); work_mem keeps a 50,000-
-- event batch's hashes in memory (with 4 MB: 24,600 against 26,300 events/s, and the backend's
-- peak 343 against 523 MB); JIT would compile every call.
CREATE OR REPLACE FUNCTION ledger_sweep_batch(batch_size integer)
RETURNS TABLE (read_count bigint, processed bigint, created bigint, updated bigint,
    stale bigint, skipped bigint, errors bigint, last_event_id text,
    last_event_time timestamptz)
LANGUAGE sql
SET enable_nestloop = off SET enable_mergejoin = off SET jit = off SET work_mem = '256MB'
AS $$
WITH batch AS MATERIALIZED (
    SELECT next.*
    FROM ledger_sweep_position() AS position,
    LATERAL (
        SELECT o.tx_id, o.seq, decoded AS event,
            decoded.reason IS NULL AND decoded.service = 'oasis-projector'
                AND decoded.type IS NOT DISTINCT FROM 'ledger_sync' AS own,
            CASE WHEN decoded.reason IS NOT NULL THEN ledger_row_json(o) END AS raw
        FROM oasis_events AS o, LATERAL ledger_decode_row(o) AS decoded
        WHERE (o.tx_id, o.seq) > (position.tx_id, position.seq)
          AND o.tx_id < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY o.tx_id, o.seq
        LIMIT batch_size) AS next
),
rejected AS (
    SELECT ledger_reject('sweep', (b.event).reason, convert_to(b.raw::text, 'UTF8'),
        (b.event).id)
    FROM batch AS b WHERE (b.event).reason IS NOT NULL
),
foldable AS MATERIALIZED (
    SELECT (b.event).task_vtid AS vtid, (b.event).key AS key, b.event
    FROM batch AS b
    WHERE (b.event).reason IS NULL AND NOT b.own AND (b.event).task_vtid IS NOT NULL
),
rows_before AS MATERIALIZED (  -- the rows as they were before this batch
    SELECT l.vtid, ledger_row_newest(l) AS newest, l.fold_founding AS founding,
        coalesce(l.fold_owners, '{}') AS owners
    FROM vtid_ledger AS l WHERE l.vtid IN (SELECT f.vtid FROM foldable AS f)
),
written AS MATERIALIZED (
    SELECT w.vtid
    FROM ledger_apply_events(ARRAY(SELECT f.event FROM foldable AS f)) AS w
),
oldest AS (
    SELECT f.vtid, min(f.key) AS key FROM foldable AS f GROUP BY f.vtid
),
outcomes AS (
    SELECT count(*) FILTER (WHERE result.outcome = 'created') AS created,
        count(*) FILTER (WHERE result.outcome = 'updated') AS updated,
        count(*) FILTER (WHERE result.outcome = 'stale') AS stale
    FROM foldable AS f
    JOIN oldest ON oldest.vtid = f.vtid
    LEFT JOIN rows_before AS before ON before.vtid = f.vtid
    LEFT JOIN written ON written.vtid = f.vtid,
    LATERAL ledger_event_outcome(event_key => f.key,
        event_full_key => f.key || ledger_event_digest(f.event),
        event_metadata => (f.event).metadata, oldest_key => oldest.key,
        had_row => before.vtid IS NOT NULL, before_newest => before.newest,
        before_founding => before.founding, before_owners => before.owners,
        written => written.vtid IS NOT NULL) AS result
),
counts AS (
    SELECT totals.read_count, totals.processed, o.created, o.updated, o.stale, totals.skipped,
        totals.errors
    FROM outcomes AS o, (
        SELECT count(*) AS read_count, count(*) FILTER (WHERE NOT b.own) AS processed,
            count(*) FILTER (WHERE (b.event).reason IS NULL AND NOT b.own
                AND (b.event).task_vtid IS NULL) AS skipped,
            count(*) FILTER (WHERE (b.event).reason IS NOT NULL) AS errors
        FROM batch AS b) AS totals
),
last_event AS (  -- the last event processed in commit order
    SELECT (b.event).id AS id, (b.event).created_at AS created_at FROM batch AS b
    WHERE (b.event).reason IS NULL AND NOT b.own
    ORDER BY b.tx_id DESC, b.seq DESC LIMIT 1
),
advanced AS (
    UPDATE projection_offsets AS p SET
        position_tx_id = last.tx_id, position_seq = last.seq,
        events_processed = p.events_processed + c.processed,
        created = p.created + c.created, updated = p.updated + c.updated,
        skipped = p.skipped + c.skipped, errors = p.errors + c.errors,
        last_event_id = coalesce((SELECT id FROM last_event), p.last_event_id),
        last_event_time = coalesce((SELECT created_at FROM last_event), p.last_event_time),
        last_processed_at = CASE WHEN c.processed > 0 THEN now() ELSE p.last_processed_at END
    FROM (SELECT b.tx_id, b.seq FROM batch AS b ORDER BY b.tx_id DESC, b.seq DESC LIMIT 1)
        AS last, counts AS c
    WHERE p.projector_name = 'vtid_ledger_writer'
    RETURNING 1
)
SELECT c.read_count, c.processed, c.created, c.updated, c.stale, c.skipped, c.errors,
    e.id, e.created_at
FROM counts AS c LEFT JOIN last_event AS e ON true
-- A data-modifying WITH step runs even when nothing reads it, but a plain one (rejected) runs
-- only if read: reading both here makes every step run, whatever the planner prefers.
WHERE (SELECT count(*) FROM advanced) + (SELECT count(*) FROM rejected) >= 0
$$;

-- An event Postgres refused to decode (the batch failed on it), recorded and passed: the
-- sweep's way past one bad row without stopping (ledger/sweep.py).
CREATE OR REPLACE FUNCTION ledger_sweep_reject_next(reason text) RETURNS text
LANGUAGE sql AS $$
WITH next AS (
    SELECT next.*
    FROM ledger_sweep_position() AS position,
    LATERAL (SELECT o.tx_id, o.seq, o.id::text AS id, ledger_row_json(o) AS row
        FROM oasis_events AS o
        WHERE (o.tx_id, o.seq) > (position.tx_id, position.seq)
          AND o.tx_id < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY o.tx_id, o.seq LIMIT 1) AS next
),
recorded AS (
    SELECT ledger_reject('sweep', reason, convert_to(next.row::text, 'UTF8'), next.id)
    FROM next
),
advanced AS (
    UPDATE projection_offsets AS p SET position_tx_id = next.tx_id, position_seq = next.seq,
        events_processed = p.events_processed + 1, errors = p.errors + 1,
        last_processed_at = now()
    FROM next WHERE p.projector_name = 'vtid_ledger_writer'
    RETURNING 1
)
SELECT next.id FROM next
-- As in ledger_sweep_batch: makes both steps run.
WHERE (SELECT count(*) FROM recorded) + (SELECT count(*) FROM advanced) >= 0
$$;
