-- [from 20251209_hardening.sql]
-- The sweep's batch (see 20251208_one_edge.sql), deciding future times by when each event was
-- stored.
CREATE OR REPLACE FUNCTION ledger_sweep_batch(batch_size integer)
RETURNS TABLE (read_count bigint, processed bigint, created bigint, updated bigint,
    stale bigint, skipped bigint, errors bigint, last_event_id text,
    last_event_time timestamptz)
LANGUAGE sql
SET enable_nestloop = off SET enable_mergejoin = off SET jit = off SET work_mem = '256MB'
AS $$
WITH position AS (
    SELECT coalesce(position_tx_id, '0'::xid8) AS tx_id, coalesce(position_seq, 0) AS seq
    FROM projection_offsets WHERE projector_name = 'vtid_ledger_writer'
),
decoded AS MATERIALIZED (
    SELECT o.tx_id, d.*,
        d.reason IS NULL AND d.service = 'oasis-projector'
            AND d.type IS NOT DISTINCT FROM 'ledger_sync' AS own,
        CASE WHEN d.reason IS NOT NULL THEN jsonb_build_object('id', o.id,
            'created_at', ledger_time_text(o.created_at), 'vtid', o.vtid, 'topic', o.topic, 'event', o.event,
            'service', o.service, 'source', o.source, 'status', o.status, 'message', o.message,
            'notes', o.notes, 'metadata', o.metadata, 'tenant', o.tenant, 'layer', o.layer,
            'module', o.module, 'kind', o.kind, 'title', o.title, 'ref', o.ref) END AS raw
    FROM position AS p,
    LATERAL (
        SELECT * FROM oasis_events AS o
        WHERE (o.tx_id, o.seq) > (p.tx_id, p.seq)
          AND o.tx_id < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY o.tx_id, o.seq
        LIMIT batch_size) AS o,
    LATERAL ledger_decode_row(o.seq, o.id::text, o.created_at, o.vtid::text, o.topic::text,
        o.event::text, o.service::text, o.source::text, o.status::text, o.message::text,
        o.notes::text, o.metadata, o.tenant::text, o.layer::text, o.module::text,
        o.kind::text, o.title::text, o.ref::text, o.stored_at) AS d
),
rejected AS (
    SELECT ledger_reject('sweep', d.reason, convert_to(d.raw::text, 'UTF8'), d.id)
    FROM decoded AS d WHERE d.reason IS NOT NULL
),
good AS MATERIALIZED (
    SELECT * FROM decoded WHERE reason IS NULL AND NOT own AND task_vtid IS NOT NULL
),
cur AS MATERIALIZED (  -- the rows as they were before this batch
    SELECT l.vtid, ledger_row_newest(l) AS newest, l.fold_founding AS founding,
        coalesce(l.fold_owners, '{}') AS owners
    FROM vtid_ledger AS l WHERE l.vtid IN (SELECT task_vtid FROM good)
),
written AS MATERIALIZED (
    SELECT w.* FROM ledger_apply_events((
        SELECT array_agg(ROW(g.seq, g.id, g.created_at, g.type, g.service, g.status, g.vtid,
            g.message, g.title, g.ref, g.layer, g.module, g.kind, g.tenant, g.notes, g.metadata,
            g.reason, g.task_vtid, g.mapped_status, g.key)::ledger_event)
        FROM good AS g)) AS w
),
oldest AS (
    SELECT task_vtid, min(key) AS key FROM good GROUP BY task_vtid
),
outcomes AS (
    SELECT count(*) FILTER (WHERE q.o = 'created') AS created,
        count(*) FILTER (WHERE q.o = 'updated') AS updated,
        count(*) FILTER (WHERE q.o = 'stale') AS stale
    FROM (
        SELECT CASE
            WHEN w.vtid IS NULL THEN 'stale'  -- the batch did not change this row
            WHEN c.vtid IS NULL THEN CASE WHEN g.key = o.key THEN 'created' ELSE 'updated' END
            WHEN k.key > coalesce(c.newest COLLATE "C", '') THEN 'updated'
            WHEN c.founding IS NOT NULL AND g.key = o.key AND k.key < c.founding THEN 'updated'
            -- older than its row (rare): does it set a register with a newer event?
            WHEN EXISTS (
                SELECT 1 FROM (
                    SELECT jsonb_object_keys(ledger_meta_registers(g.metadata))
                    UNION ALL
                    SELECT n FROM unnest(ARRAY[
                        CASE WHEN ledger_meta_text(g.metadata, 'description', 'summary')
                            IS NOT NULL THEN 'description' END,
                        CASE WHEN ledger_meta_text(g.metadata, 'taskFamily', 'task_family')
                            IS NOT NULL THEN 'task_family' END,
                        CASE WHEN ledger_meta_text(g.metadata, 'taskType', 'task_type')
                            IS NOT NULL THEN 'task_type' END,
                        CASE WHEN ledger_meta_text(g.metadata, 'assignedTo', 'assigned_to',
                            'assignee') IS NOT NULL THEN 'assigned_to' END]) AS n
                ) AS r(name)
                WHERE r.name IS NOT NULL
                  AND g.key || ledger_digest(g.type, g.service, g.status, g.vtid, g.message,
                      g.title, g.ref, g.layer, g.module, g.kind, g.tenant, g.notes, g.metadata)
                      > coalesce((c.owners ->> r.name) COLLATE "C", ''))
                THEN 'updated'
            ELSE 'stale'
        END AS o
        FROM good AS g
        JOIN oldest AS o ON o.task_vtid = g.task_vtid
        LEFT JOIN cur AS c ON c.vtid = g.task_vtid
        LEFT JOIN written AS w ON w.vtid = g.task_vtid
        -- The key with its digest where the row's newest or founding event has the same
        -- (time, priority, id): only the digest tells which of the two is newer. Keys are
        -- prefix-free, so elsewhere the digest cannot change a comparison.
        CROSS JOIN LATERAL (SELECT CASE
            WHEN starts_with(c.newest, g.key) OR starts_with(c.founding, g.key)
                THEN g.key || ledger_digest(g.type, g.service, g.status, g.vtid, g.message,
                    g.title, g.ref, g.layer, g.module, g.kind, g.tenant, g.notes, g.metadata)
            ELSE g.key END COLLATE "C" AS key) AS k
    ) AS q
),
counts AS (
    SELECT d.read_count, d.processed, o.created, o.updated, o.stale, d.skipped, d.errors,
        (SELECT count(*) FROM rejected) AS recorded
    FROM outcomes AS o, (
        SELECT count(*) AS read_count, count(*) FILTER (WHERE NOT own) AS processed,
            count(*) FILTER (WHERE reason IS NULL AND NOT own AND task_vtid IS NULL) AS skipped,
            count(*) FILTER (WHERE reason IS NOT NULL) AS errors
        FROM decoded) AS d
),
last_event AS (  -- the last event processed in commit order
    SELECT id, created_at FROM decoded WHERE reason IS NULL AND NOT own
    ORDER BY tx_id DESC, seq DESC LIMIT 1
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
    FROM (SELECT tx_id, seq FROM decoded ORDER BY tx_id DESC, seq DESC LIMIT 1) AS last,
        counts AS c
    WHERE p.projector_name = 'vtid_ledger_writer'
    RETURNING 1
)
SELECT c.read_count, c.processed, c.created, c.updated, c.stale, c.skipped, c.errors,
    e.id, e.created_at
FROM counts AS c LEFT JOIN last_event AS e ON true
WHERE (SELECT count(*) FROM advanced) >= 0
$$;

-- [from 20251208_one_edge.sql]
-- An event Postgres refused, recorded and passed (see 20251205_sweep_batch.sql); its time written
-- whatever the session's TimeZone.
CREATE OR REPLACE FUNCTION ledger_sweep_reject_next(reason text) RETURNS text
LANGUAGE sql AS $$
WITH p AS (
    SELECT coalesce(position_tx_id, '0'::xid8) AS tx_id, coalesce(position_seq, 0) AS seq
    FROM projection_offsets WHERE projector_name = 'vtid_ledger_writer'
),
next AS (
    SELECT o.tx_id, o.seq, o.id::text AS id, to_jsonb(o) - 'tx_id' - 'seq'
        || jsonb_build_object('created_at', ledger_time_text(o.created_at)) AS row
    FROM p, LATERAL (SELECT * FROM oasis_events AS o
        WHERE (o.tx_id, o.seq) > (p.tx_id, p.seq)
          AND o.tx_id < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY o.tx_id, o.seq LIMIT 1) AS o
),
recorded AS (
    SELECT ledger_reject('sweep', reason, convert_to(row::text, 'UTF8'), id) FROM next
),
advanced AS (
    UPDATE projection_offsets AS p SET position_tx_id = n.tx_id, position_seq = n.seq,
        events_processed = p.events_processed + 1, errors = p.errors + 1,
        last_processed_at = now()
    FROM next AS n WHERE p.projector_name = 'vtid_ledger_writer'
    RETURNING 1
)
SELECT n.id FROM next AS n
WHERE (SELECT count(*) FROM recorded) + (SELECT count(*) FROM advanced) >= 0
$$;
