-- The catch-up sweep's batch (SPEC §7) as one statement: read the next events in commit order
-- below the snapshot horizon, decode them, record rejections, fold them into the ledger,
-- count each event's outcome and advance the offset, all in the caller's one transaction.
--
-- Outcomes are per event, as if the batch's events were applied one at a time in commit order:
-- created (the first event of a VTID without a row), updated (newer than everything before it,
-- older than the founding event of a row the writer made, or setting a register with a newer
-- event than before), else stale. A VTID whose row the batch did not change has only stale
-- events. Registers are checked only for events neither newest nor oldest so far (rare).
CREATE OR REPLACE FUNCTION ledger_sweep_batch(batch_size integer)
RETURNS TABLE (read_count bigint, processed bigint, created bigint, updated bigint,
    stale bigint, skipped bigint, errors bigint, last_event_id text,
    last_event_time timestamptz)
LANGUAGE sql SET enable_nestloop = off SET jit = off SET work_mem = '256MB' AS $$
WITH position AS (
    SELECT coalesce(position_tx_id, '0'::xid8) AS tx_id, coalesce(position_seq, 0) AS seq
    FROM projection_offsets WHERE projector_name = 'vtid_ledger_writer'
),
decoded AS MATERIALIZED (
    SELECT o.tx_id, d.*,
        d.reason IS NULL AND d.service = 'oasis-projector'
            AND d.type IS NOT DISTINCT FROM 'ledger_sync' AS own,
        CASE WHEN d.reason IS NOT NULL THEN jsonb_build_object('id', o.id,
            'created_at', o.created_at, 'vtid', o.vtid, 'topic', o.topic, 'event', o.event,
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
        o.kind::text, o.title::text, o.ref::text) AS d
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
first_look AS MATERIALIZED (
    SELECT s.task_vtid, s.tx_id, s.seq, s.key, s.owners, s.written,
        CASE
            WHEN NOT s.written THEN 'stale'  -- the batch did not change this row
            WHEN s.stored IS NULL AND s.events_before = 0 THEN 'created'
            WHEN s.key > coalesce(greatest(s.newest COLLATE "C", s.newest_before), '')
                THEN 'updated'
            WHEN (s.stored IS NULL OR s.founding IS NOT NULL)
                 AND s.key < least(s.founding, s.founding_before) THEN 'updated'
        END AS outcome
    FROM (
        SELECT g.task_vtid, g.tx_id, g.seq, g.key, c.vtid AS stored, c.newest,
            c.founding, c.owners, w.vtid IS NOT NULL AS written,
            max(g.key) OVER before AS newest_before, min(g.key) OVER before AS founding_before,
            count(*) OVER before AS events_before
        FROM good AS g
        LEFT JOIN cur AS c ON c.vtid = g.task_vtid
        LEFT JOIN written AS w ON w.vtid = g.task_vtid
        WINDOW before AS (PARTITION BY g.task_vtid ORDER BY g.tx_id, g.seq
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    ) AS s
),
carried AS (  -- every register the events of VTIDs with undecided events set
    SELECT f.task_vtid, f.tx_id, f.seq, f.key, f.owners, n.name
    FROM first_look AS f
    JOIN good AS g ON g.tx_id = f.tx_id AND g.seq = f.seq,
    LATERAL (
        SELECT jsonb_object_keys(ledger_meta_registers(g.metadata))
        UNION ALL
        SELECT c FROM unnest(ARRAY[
            CASE WHEN ledger_meta_text(g.metadata, 'description', 'summary') IS NOT NULL
                THEN 'description' END,
            CASE WHEN ledger_meta_text(g.metadata, 'taskFamily', 'task_family') IS NOT NULL
                THEN 'task_family' END,
            CASE WHEN ledger_meta_text(g.metadata, 'taskType', 'task_type') IS NOT NULL
                THEN 'task_type' END,
            CASE WHEN ledger_meta_text(g.metadata, 'assignedTo', 'assigned_to', 'assignee')
                IS NOT NULL THEN 'assigned_to' END]) AS c
        WHERE c IS NOT NULL) AS n(name)
    WHERE f.task_vtid IN (SELECT task_vtid FROM first_look WHERE outcome IS NULL)
      AND (SELECT bool_or(outcome IS NULL) FROM first_look)  -- once: usually none undecided
),
register_wins AS (
    SELECT DISTINCT task_vtid, tx_id, seq FROM (
        SELECT c.*, max(c.key) OVER (PARTITION BY c.task_vtid, c.name ORDER BY c.tx_id, c.seq
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS owner_before
        FROM carried AS c) AS c
    WHERE c.key > coalesce(greatest(c.owner_before, (c.owners ->> c.name) COLLATE "C"), '')
),
outcomes AS (
    SELECT count(*) FILTER (WHERE o = 'created') AS created,
        count(*) FILTER (WHERE o = 'updated') AS updated,
        count(*) FILTER (WHERE o = 'stale') AS stale
    FROM (
        SELECT coalesce(f.outcome, CASE WHEN r.seq IS NOT NULL THEN 'updated' ELSE 'stale' END)
            AS o
        FROM first_look AS f
        LEFT JOIN register_wins AS r
            ON r.task_vtid = f.task_vtid AND r.tx_id = f.tx_id AND r.seq = f.seq
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

-- When Postgres refuses an event the decoder accepted (a value too large for an index, say),
-- the sweep applies that batch again one event at a time and, for the one refused, records it
-- with the reason and moves the offset past it: one poison event never stalls the sweep.
CREATE OR REPLACE FUNCTION ledger_sweep_reject_next(reason text) RETURNS text
LANGUAGE sql AS $$
WITH p AS (
    SELECT coalesce(position_tx_id, '0'::xid8) AS tx_id, coalesce(position_seq, 0) AS seq
    FROM projection_offsets WHERE projector_name = 'vtid_ledger_writer'
),
next AS (
    SELECT o.tx_id, o.seq, o.id::text AS id, to_jsonb(o) - 'tx_id' - 'seq' AS row
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
