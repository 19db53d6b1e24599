-- Rebuild (docs/operations.md): the ledger folded again from the log beside the live table,
-- then made equal to it in one transaction; or one task's row.

-- The tasks whose rows older rules than the current ones folded (made by the writer, or
-- another system's rows events have reached), and how many there are.
CREATE OR REPLACE FUNCTION ledger_outdated_vtids() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
SELECT vtid FROM vtid_ledger
WHERE (fold_founding IS NOT NULL OR fold_base IS NOT NULL)
  AND fold_rules IS DISTINCT FROM ledger_rules_version()
$$;

CREATE OR REPLACE FUNCTION ledger_outdated_rows() RETURNS bigint
LANGUAGE sql STABLE AS $$
SELECT count(*) FROM ledger_outdated_vtids()
$$;

-- The rebuild's shadow: one ledger_state per task, in a temporary table of the session that
-- rebuilds (it vanishes with it). Rows other systems made go in first, as they were before any
-- event; `only_vtid` limits it to one task.
CREATE OR REPLACE FUNCTION ledger_rebuild_begin(only_vtid text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    seeded bigint;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS ledger_rebuild_state OF ledger_state (PRIMARY KEY (vtid));
    TRUNCATE pg_temp.ledger_rebuild_state;
    INSERT INTO pg_temp.ledger_rebuild_state
    SELECT l.vtid,
        CASE WHEN b IS NULL THEN l.status ELSE b ->> 'status' END,
        CASE WHEN b IS NULL THEN l.service ELSE b ->> 'service' END,
        CASE WHEN b IS NULL THEN l.environment ELSE b ->> 'environment' END,
        CASE WHEN b IS NULL THEN l.last_event_id ELSE b ->> 'last_event_id' END,
        CASE WHEN b IS NULL THEN l.last_event_at
            ELSE CAST(b ->> 'last_event_at' AS timestamptz) END,
        CASE WHEN b IS NULL THEN l.description ELSE b ->> 'description' END,
        CASE WHEN b IS NULL THEN l.task_family ELSE b ->> 'task_family' END,
        CASE WHEN b IS NULL THEN l.task_type ELSE b ->> 'task_type' END,
        CASE WHEN b IS NULL THEN l.assigned_to ELSE b ->> 'assigned_to' END,
        CASE WHEN b IS NULL THEN l.tenant ELSE b ->> 'tenant' END,
        CASE WHEN b IS NULL THEN l.metadata
            WHEN jsonb_typeof(b -> 'metadata') = 'null' THEN NULL ELSE b -> 'metadata' END,
        NULL, NULL, NULL, NULL
    FROM vtid_ledger AS l, LATERAL (SELECT l.fold_base AS b) AS base
    WHERE l.fold_founding IS NULL AND (only_vtid IS NULL OR l.vtid = only_vtid);
    GET DIAGNOSTICS seeded = ROW_COUNT;
    RETURN seeded;
END
$$;

-- Fold decoded events into the shadow: one state per task (ledger_fold), merged with what the
-- shadow holds (ledger_merge, as ledger_write merges into a row), capped.
CREATE OR REPLACE FUNCTION ledger_rebuild_fold(events ledger_event[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pg_temp.ledger_rebuild_state AS r
    SELECT c.* FROM ledger_fold(events) AS f, LATERAL ledger_cap_registers(f) AS c
    ON CONFLICT (vtid) DO UPDATE SET
        (status, service, environment, last_event_id, last_event_at, description, task_family,
         task_type, assigned_to, tenant, metadata, fold_newest, fold_founding, fold_owners,
         fold_base) =
        (SELECT m.status, m.service, m.environment, m.last_event_id, m.last_event_at,
            m.description, m.task_family, m.task_type, m.assigned_to, m.tenant, m.metadata,
            m.fold_newest, m.fold_founding, m.fold_owners, m.fold_base
         FROM ledger_cap_registers(ledger_merge(ledger_state_row(r::ledger_state),
            ledger_state_row(EXCLUDED::ledger_state))) AS m);
END
$$;

-- The log's next batch after a position, in commit order below the snapshot horizon, folded
-- into the shadow; returns how many were read and the position reached.
CREATE OR REPLACE FUNCTION ledger_rebuild_batch(after_tx xid8, after_seq bigint,
    batch_size integer)
RETURNS TABLE (read_count bigint, last_tx xid8, last_seq bigint)
LANGUAGE plpgsql
SET enable_nestloop = off SET enable_mergejoin = off SET jit = off SET work_mem = '256MB'
AS $$
DECLARE
    events ledger_event[];
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS ledger_rebuild_read (tx_id xid8, seq bigint, e ledger_event)
        ON COMMIT DELETE ROWS;
    DELETE FROM pg_temp.ledger_rebuild_read;
    INSERT INTO pg_temp.ledger_rebuild_read
    SELECT o.tx_id, o.seq, d
    FROM oasis_events AS o, LATERAL ledger_decode_row(o) AS d
    WHERE (o.tx_id, o.seq) > (after_tx, after_seq)
      AND o.tx_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY o.tx_id, o.seq LIMIT batch_size;
    events := ARRAY(SELECT r.e FROM pg_temp.ledger_rebuild_read AS r
        WHERE (r.e).reason IS NULL AND (r.e).task_vtid IS NOT NULL
          AND NOT ((r.e).service = 'oasis-projector'
                   AND (r.e).type IS NOT DISTINCT FROM 'ledger_sync'));
    PERFORM ledger_rebuild_fold(events);
    RETURN QUERY SELECT count(*), (array_agg(r.tx_id ORDER BY r.tx_id DESC, r.seq DESC))[1],
        (array_agg(r.seq ORDER BY r.tx_id DESC, r.seq DESC))[1]
    FROM pg_temp.ledger_rebuild_read AS r;
END
$$;

-- One task's events, found through the log's index on their VTID, folded into the shadow.
CREATE OR REPLACE FUNCTION ledger_rebuild_task(task text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    events ledger_event[];
BEGIN
    events := ARRAY(
        SELECT d FROM oasis_events AS o,
        LATERAL ledger_decode_row(o) AS d
        WHERE ledger_row_vtid(o.vtid::text, o.metadata, o.ref::text, o.message::text) = task
          AND d.reason IS NULL AND d.task_vtid = task
          AND NOT (d.service = 'oasis-projector' AND d.type IS NOT DISTINCT FROM 'ledger_sync'));
    PERFORM ledger_rebuild_fold(events);
    RETURN cardinality(events);
END
$$;

-- The last step of a rebuild, in the caller's one transaction: make the live table equal to
-- the shadow. Rows that differ are updated, missing ones inserted, rows the writer made that
-- the log no longer supports deleted; a row another system made that the shadow does not hold
-- (made while the rebuild ran) is left alone. Only UPDATE, INSERT and DELETE: the table keeps
-- its identity (OID, grants, indexes, views, triggers, publications). Rows folded from events
-- take the current rules version. `only_vtid` limits all of it to one task.
CREATE OR REPLACE FUNCTION ledger_rebuild_apply(only_vtid text DEFAULT NULL)
RETURNS TABLE (inserted bigint, updated bigint, deleted bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n_inserted bigint;
    n_updated bigint;
    n_deleted bigint;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS ledger_rebuild_rows ON COMMIT DROP AS
    SELECT s.*, CASE WHEN s.fold_founding IS NOT NULL OR s.fold_base IS NOT NULL
        THEN ledger_rules_version() END AS fold_rules
    FROM pg_temp.ledger_rebuild_state AS s WHERE only_vtid IS NULL OR s.vtid = only_vtid;

    UPDATE vtid_ledger AS m SET
        (status, service, environment, last_event_id, last_event_at, description, task_family,
         task_type, assigned_to, tenant, metadata, fold_newest, fold_founding, fold_owners,
         fold_base, fold_rules, updated_at) =
        (s.status, s.service, s.environment, s.last_event_id, s.last_event_at, s.description,
         s.task_family, s.task_type, s.assigned_to, s.tenant, s.metadata, s.fold_newest,
         s.fold_founding, s.fold_owners, s.fold_base, s.fold_rules, now())
    FROM pg_temp.ledger_rebuild_rows AS s
    WHERE m.vtid = s.vtid
      AND (m.status, m.service, m.environment, m.last_event_id, m.last_event_at,
           m.description, m.task_family, m.task_type, m.assigned_to, m.tenant, m.metadata,
           m.fold_newest, m.fold_founding, m.fold_owners, m.fold_base, m.fold_rules)
          IS DISTINCT FROM
          (s.status, s.service, s.environment, s.last_event_id, s.last_event_at,
           s.description, s.task_family, s.task_type, s.assigned_to, s.tenant, s.metadata,
           s.fold_newest, s.fold_founding, s.fold_owners, s.fold_base, s.fold_rules);
    GET DIAGNOSTICS n_updated = ROW_COUNT;

    INSERT INTO vtid_ledger (vtid, status, service, environment, last_event_id, last_event_at,
        description, task_family, task_type, assigned_to, tenant, metadata, fold_newest,
        fold_founding, fold_owners, fold_base, fold_rules, created_at, updated_at)
    SELECT s.vtid, s.status, s.service, s.environment, s.last_event_id, s.last_event_at,
        s.description, s.task_family, s.task_type, s.assigned_to, s.tenant, s.metadata,
        s.fold_newest, s.fold_founding, s.fold_owners, s.fold_base, s.fold_rules, now(), now()
    FROM pg_temp.ledger_rebuild_rows AS s
    WHERE NOT EXISTS (SELECT 1 FROM vtid_ledger AS m WHERE m.vtid = s.vtid)
    ORDER BY s.vtid COLLATE "C";
    GET DIAGNOSTICS n_inserted = ROW_COUNT;

    DELETE FROM vtid_ledger AS m
    WHERE m.fold_founding IS NOT NULL AND (only_vtid IS NULL OR m.vtid = only_vtid)
      AND NOT EXISTS (SELECT 1 FROM pg_temp.ledger_rebuild_rows AS s WHERE s.vtid = m.vtid);
    GET DIAGNOSTICS n_deleted = ROW_COUNT;

    DROP TABLE pg_temp.ledger_rebuild_rows;
    RETURN QUERY SELECT n_inserted, n_updated, n_deleted;
END
$$;

-- One task's rebuild for a caller that may not delete ledger rows (the HTTP function's
-- vtid_ledger_service): begin, fold its events, apply, in the caller's transaction. SECURITY
-- DEFINER, so it runs with its owner's rights (whoever migrated), and only this: it makes one
-- row what the log says, which is what the ledger should hold anyway. Its search_path is pinned
-- to this schema with pg_temp last, so a caller's temporary table cannot stand in for a table.
CREATE OR REPLACE FUNCTION ledger_rebuild_one(task text)
RETURNS TABLE (events bigint, inserted bigint, updated bigint, deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    folded bigint;
BEGIN
    PERFORM ledger_rebuild_begin(task);
    folded := ledger_rebuild_task(task);
    RETURN QUERY SELECT folded, a.inserted, a.updated, a.deleted
        FROM ledger_rebuild_apply(task) AS a;
END
$$;
REVOKE EXECUTE ON FUNCTION ledger_rebuild_one(text) FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ledger_rebuild_one(text) SET search_path = %I, pg_temp',
        current_schema());
END
$$;
