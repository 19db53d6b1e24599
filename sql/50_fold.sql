-- [from 20251204_fold_apply.sql]
-- The state of one event on its own (the event function's case): no aggregation needed.
CREATE OR REPLACE FUNCTION ledger_state_of(e ledger_event) RETURNS ledger_state
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    registers jsonb := ledger_meta_registers(e.metadata);
    full_key text COLLATE "C" := e.key || ledger_digest(e.type, e.service, e.status, e.vtid,
        e.message, e.title, e.ref, e.layer, e.module, e.kind, e.tenant, e.notes, e.metadata);
    description text := ledger_meta_text(e.metadata, 'description', 'summary');
    task_family text := ledger_meta_text(e.metadata, 'taskFamily', 'task_family');
    task_type text := ledger_meta_text(e.metadata, 'taskType', 'task_type');
    assigned_to text := ledger_meta_text(e.metadata, 'assignedTo', 'assigned_to', 'assignee');
    names text[] := ARRAY(SELECT jsonb_object_keys(registers));
BEGIN
    RETURN ROW(e.task_vtid, e.mapped_status, e.service, ledger_environment_of(e.metadata), e.id,
        e.created_at,
        coalesce(description, ledger_default_description(e.title, e.message, e.type)),
        coalesce(task_family, e.layer, 'auto'),
        coalesce(task_type, ledger_default_task_type(e.kind, e.type)),
        assigned_to,
        ledger_tenant_of(e.tenant, e.metadata),
        registers || ledger_writer_keys(e.id, e.type, e.type, false),
        full_key, full_key,
        jsonb_object(names, array_fill(full_key::text, ARRAY[cardinality(names)]))
            || jsonb_strip_nulls(jsonb_build_object(
                'description', CASE WHEN description IS NOT NULL THEN full_key END,
                'task_family', CASE WHEN task_family IS NOT NULL THEN full_key END,
                'task_type', CASE WHEN task_type IS NOT NULL THEN full_key END,
                'assigned_to', CASE WHEN assigned_to IS NOT NULL THEN full_key END)),
        NULL::jsonb)::ledger_state;
END
$$;

-- [from 20251204_fold_apply.sql]
-- The fold of a set of events (their keys unique, as ids in the log are), one state per VTID,
-- rendered as the row it would be on its own. Unreadable, skipped and the writer's own events
-- are left out. Newest and founding by key; each register by the newest event that sets it.
-- Per event only what is cheap is done: its key, and the metadata it has beyond the newest
-- event's registers (usually nothing); the rest only for the events a row keeps (newest,
-- founding, explicit column values, carriers of keys the newest lacks).
--
-- plpgsql, not SQL: before Postgres 18 a SQL function's statement is planned again at every
-- call, which for one event costs more than folding it. The planner cannot know how many
-- events the array holds; every join here is an equality on
-- a key, which a hash join does in one pass at any size, so nested loops (quadratic) are
-- ruled out. That makes the plan look costly enough to be JIT-compiled on every call, which
-- costs more than the statement itself: JIT is off.
CREATE OR REPLACE FUNCTION ledger_fold(events ledger_event[]) RETURNS SETOF ledger_state
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET enable_nestloop = off SET enable_mergejoin = off SET jit = off SET work_mem = '256MB'
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
RETURN QUERY
WITH e AS MATERIALIZED (  -- narrow: what every event contributes to the aggregates
    SELECT x.ordinality AS n, x.task_vtid AS vtid, x.key, x.metadata,
        CASE WHEN x.metadata ?| '{description,summary}'
            THEN ledger_meta_text(x.metadata, 'description', 'summary') END AS set_description,
        CASE WHEN x.metadata ?| '{taskFamily,task_family}'
            THEN ledger_meta_text(x.metadata, 'taskFamily', 'task_family') END AS set_task_family,
        CASE WHEN x.metadata ?| '{taskType,task_type}'
            THEN ledger_meta_text(x.metadata, 'taskType', 'task_type') END AS set_task_type,
        CASE WHEN x.metadata ?| '{assignedTo,assigned_to,assignee}'
            THEN ledger_meta_text(x.metadata, 'assignedTo', 'assigned_to', 'assignee')
        END AS set_assigned_to
    FROM unnest(events) WITH ORDINALITY AS x
    WHERE x.reason IS NULL AND x.task_vtid IS NOT NULL
      AND NOT (x.service = 'oasis-projector' AND x.type IS NOT DISTINCT FROM 'ledger_sync')
),
g AS MATERIALIZED (
    SELECT vtid, max(key) AS newest, min(key) AS founding,
        max(key) FILTER (WHERE set_description IS NOT NULL) AS description_key,
        max(key) FILTER (WHERE set_task_family IS NOT NULL) AS task_family_key,
        max(key) FILTER (WHERE set_task_type IS NOT NULL) AS task_type_key,
        max(key) FILTER (WHERE set_assigned_to IS NOT NULL) AS assigned_to_key
    FROM e GROUP BY vtid
),
n AS MATERIALIZED (  -- each VTID's newest event's registers, and their names
    SELECT g.*, r.registers, ARRAY(SELECT jsonb_object_keys(r.registers)) AS names
    FROM g JOIN e ON e.key = g.newest,
    LATERAL (SELECT ledger_meta_registers(e.metadata) AS registers) AS r
),
x AS MATERIALIZED (  -- metadata keys only older events carry, each from the newest carrier
    SELECT DISTINCT ON (e.vtid, r.key) e.vtid, r.key AS name, r.value, e.key, e.n
    FROM e JOIN n ON n.vtid = e.vtid AND e.key <> n.newest,
    LATERAL (SELECT e.metadata - n.names AS others) AS o,
    LATERAL jsonb_each(ledger_meta_registers(o.others)) AS r
    WHERE o.others <> '{}'
    ORDER BY e.vtid, r.key, e.key DESC
),
kept AS MATERIALIZED (  -- the events a row keeps, in full, with their full keys
    SELECT k.ordinality AS n, k.key,
        k.key || ledger_digest(k.type, k.service, k.status, k.vtid, k.message, k.title, k.ref,
            k.layer, k.module, k.kind, k.tenant, k.notes, k.metadata) AS full_key,
        k.id, k.created_at, k.type, k.service, k.mapped_status, k.title, k.message, k.layer,
        k.kind, k.tenant, k.metadata
    FROM unnest(events) WITH ORDINALITY AS k
    WHERE k.ordinality IN (
        SELECT e.n FROM e JOIN (
            SELECT v.k FROM g, LATERAL (VALUES (g.newest), (g.founding), (g.description_key),
                (g.task_family_key), (g.task_type_key), (g.assigned_to_key)) AS v(k)
            WHERE v.k IS NOT NULL
            UNION SELECT x.key FROM x) AS w ON w.k = e.key)
),
xs AS (
    SELECT x.vtid, jsonb_object_agg(x.name, x.value) AS "values",
        jsonb_object_agg(x.name, k.full_key) AS owners
    FROM x JOIN kept AS k ON k.n = x.n GROUP BY x.vtid
)
SELECT n.vtid, nw.mapped_status, nw.service, ledger_environment_of(nw.metadata), nw.id,
    nw.created_at,
    coalesce(ledger_meta_text(d.metadata, 'description', 'summary'),
        ledger_default_description(f.title, f.message, f.type)),
    coalesce(ledger_meta_text(tf.metadata, 'taskFamily', 'task_family'), f.layer, 'auto'),
    coalesce(ledger_meta_text(tt.metadata, 'taskType', 'task_type'),
        ledger_default_task_type(f.kind, f.type)),
    ledger_meta_text(a.metadata, 'assignedTo', 'assigned_to', 'assignee'),
    ledger_tenant_of(f.tenant, f.metadata),
    coalesce(xs."values", '{}') || n.registers
        || ledger_writer_keys(f.id, f.type, nw.type, n.newest <> n.founding),
    nw.full_key, f.full_key,
    jsonb_object(n.names, array_fill(nw.full_key, ARRAY[cardinality(n.names)]))
        || coalesce(xs.owners, '{}')
        || jsonb_strip_nulls(jsonb_build_object('description', d.full_key,
            'task_family', tf.full_key, 'task_type', tt.full_key, 'assigned_to', a.full_key)),
    NULL::jsonb
FROM n
JOIN kept AS nw ON nw.key = n.newest
JOIN kept AS f ON f.key = n.founding
LEFT JOIN kept AS d ON d.key = n.description_key
LEFT JOIN kept AS tf ON tf.key = n.task_family_key
LEFT JOIN kept AS tt ON tt.key = n.task_type_key
LEFT JOIN kept AS a ON a.key = n.assigned_to_key
LEFT JOIN xs ON xs.vtid = n.vtid;
END
$$;

-- [from 20251204_fold_apply.sql]
-- The key of the newest thing a row reflects: its fold_newest, or for a row another system
-- made that no event has reached yet, its own last event (digest '~': an event with the very
-- same time, priority and id is the one it already reflects, not a newer one).
CREATE OR REPLACE FUNCTION ledger_row_newest(r vtid_ledger) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(r.fold_newest, CASE WHEN r.fold_founding IS NULL AND r.last_event_at IS NOT NULL
    THEN ledger_key(r.last_event_at, ledger_priority(r.status), coalesce(r.last_event_id, ''))
        || '~' END) COLLATE "C"
$$;

-- [from 20251208_one_edge.sql]
-- What a row another system made was before any event: last_event_at written as
-- ledger_time_text writes it, whatever the session's TimeZone.
CREATE OR REPLACE FUNCTION ledger_base_of(r vtid_ledger) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT jsonb_build_object('status', r.status, 'service', r.service,
    'environment', r.environment, 'last_event_id', r.last_event_id,
    'last_event_at', ledger_time_text(r.last_event_at), 'description', r.description,
    'task_family', r.task_family, 'task_type', r.task_type, 'assigned_to', r.assigned_to,
    'tenant', r.tenant, 'metadata', r.metadata)
$$;

-- [from 20251204_fold_apply.sql]
-- Does merging state b change row r? b's newest is newer, its founding older (a row the writer
-- made), or it sets some register with a newer event. Cheap, so the UPSERT skips the write.
CREATE OR REPLACE FUNCTION ledger_merge_changes(r vtid_ledger, b vtid_ledger) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    newest text COLLATE "C" := ledger_row_newest(r);
BEGIN
    IF b.fold_newest > coalesce(newest, '') THEN
        RETURN true;
    END IF;
    IF r.fold_founding IS NOT NULL AND b.fold_founding < r.fold_founding THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM jsonb_each_text(b.fold_owners) AS o
        WHERE o.value COLLATE "C" > coalesce(r.fold_owners ->> o.key, '') COLLATE "C");
END
$$;

-- [from 20251204_fold_apply.sql]
-- Row r with state b merged in: per field, the greater key wins. Commutative, associative and
-- idempotent, so rows end up the same whatever order states are merged in.
CREATE OR REPLACE FUNCTION ledger_merge(r vtid_ledger, b vtid_ledger) RETURNS ledger_state
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m ledger_state;
    newest text COLLATE "C" := ledger_row_newest(r);
    made_by_writer boolean := r.fold_founding IS NOT NULL;
    wins jsonb;        -- b's registers whose event is newer than r's
    meta_wins jsonb;   -- of those, the metadata keys, with b's values
    newest_side vtid_ledger := r;
    founding_side vtid_ledger := r;
    founding_from_b boolean := false;
BEGIN
    m := ROW(r.vtid, r.status, r.service, r.environment, r.last_event_id, r.last_event_at,
        r.description, r.task_family, r.task_type, r.assigned_to, r.tenant, r.metadata,
        newest, r.fold_founding, coalesce(r.fold_owners, '{}'),
        CASE WHEN NOT made_by_writer THEN coalesce(r.fold_base, ledger_base_of(r)) END);
    IF b.fold_newest > coalesce(newest, '') THEN
        m.status := b.status; m.service := b.service; m.environment := b.environment;
        m.last_event_id := b.last_event_id; m.last_event_at := b.last_event_at;
        m.fold_newest := b.fold_newest;
        newest_side := b;
    END IF;
    IF made_by_writer AND b.fold_founding < r.fold_founding THEN
        m.fold_founding := b.fold_founding;
        m.tenant := b.tenant;
        founding_side := b;
        founding_from_b := true;
    END IF;

    IF b.fold_founding > coalesce(newest, '') THEN
        wins := b.fold_owners;  -- every event of b is newer than anything r holds
    ELSE
        SELECT coalesce(jsonb_object_agg(o.key, o.value), '{}') INTO wins
        FROM jsonb_each_text(b.fold_owners) AS o
        WHERE o.value COLLATE "C" > coalesce(m.fold_owners ->> o.key, '') COLLATE "C";
    END IF;
    m.fold_owners := m.fold_owners || wins;

    -- Column registers: a value an event set explicitly, else (rows the writer made) the
    -- founding event's; b's column is its founding event's wherever b sets no register.
    IF wins ? 'description' THEN m.description := b.description;
    ELSIF founding_from_b AND NOT m.fold_owners ? 'description' THEN
        m.description := b.description;
    END IF;
    IF wins ? 'task_family' THEN m.task_family := b.task_family;
    ELSIF founding_from_b AND NOT m.fold_owners ? 'task_family' THEN
        m.task_family := b.task_family;
    END IF;
    IF wins ? 'task_type' THEN m.task_type := b.task_type;
    ELSIF founding_from_b AND NOT m.fold_owners ? 'task_type' THEN
        m.task_type := b.task_type;
    END IF;
    IF wins ? 'assigned_to' THEN m.assigned_to := b.assigned_to; END IF;

    meta_wins := wins - '{description,task_family,task_type,assigned_to}'::text[];
    IF meta_wins <> '{}' THEN
        IF b.fold_founding > coalesce(newest, '') THEN
            meta_wins := b.metadata - '{autoCreated,sourceEvent,sourceType,lastEventType}'::text[];
        ELSE
            SELECT jsonb_object_agg(k, b.metadata -> k) INTO meta_wins
            FROM jsonb_object_keys(meta_wins) AS k;
        END IF;
        m.metadata := CASE WHEN jsonb_typeof(r.metadata) = 'object' THEN r.metadata ELSE '{}' END
            || meta_wins;
    END IF;

    IF made_by_writer THEN
        m.metadata := coalesce(m.metadata, '{}') || jsonb_build_object('autoCreated', true,
            'sourceEvent', founding_side.metadata -> 'sourceEvent',
            'sourceType', founding_side.metadata -> 'sourceType');
        IF m.fold_newest <> m.fold_founding THEN
            m.metadata := m.metadata || jsonb_build_object('lastEventType',
                CASE WHEN newest_side.metadata ? 'lastEventType'
                    THEN newest_side.metadata -> 'lastEventType'
                    ELSE newest_side.metadata -> 'sourceType' END);
        ELSE
            m.metadata := m.metadata - 'lastEventType';
        END IF;
    END IF;
    RETURN m;
END
$$;

-- [from 20251211_key_caps.sql]
-- The metadata registers a row keeps: the 512 set by the newest events, ties by name; the
-- rest leave fold_owners and metadata (a row another system made shows its own value of a
-- key again). Column registers (description, task_family, task_type, assigned_to) are not
-- metadata and never dropped. 512 owners take more than 16 KiB, so a smaller row is
-- returned as it is without counting.
CREATE OR REPLACE FUNCTION ledger_cap_registers(s ledger_state) RETURNS ledger_state
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    dropped text[];
    restored jsonb;
BEGIN
    IF s.fold_owners IS NULL OR pg_column_size(s.fold_owners) < 16384 THEN
        RETURN s;
    END IF;
    SELECT array_agg(ranked.name) INTO dropped FROM (
        SELECT o.key AS name FROM jsonb_each_text(s.fold_owners) AS o
        WHERE o.key NOT IN ('description', 'task_family', 'task_type', 'assigned_to')
        ORDER BY o.value COLLATE "C" DESC, o.key COLLATE "C"
        OFFSET 512) AS ranked;
    IF dropped IS NULL THEN
        RETURN s;
    END IF;
    s.fold_owners := s.fold_owners - dropped;
    IF jsonb_typeof(s.metadata) = 'object' THEN
        s.metadata := s.metadata - dropped;
        IF jsonb_typeof(s.fold_base -> 'metadata') = 'object' THEN
            SELECT jsonb_object_agg(b.key, b.value) INTO restored
            FROM jsonb_each(s.fold_base -> 'metadata') AS b WHERE b.key = ANY (dropped);
            s.metadata := s.metadata || coalesce(restored, '{}');
        END IF;
    END IF;
    RETURN s;
END
$$;

-- [from 20251213_rebuild.sql]
-- Write states into the ledger (see 20251211_key_caps.sql). New: each row records the rules
-- version it was folded under. A row folded from nothing takes the current version; a row
-- already folded under an older one keeps that (part of it is still the old rules' work).
CREATE OR REPLACE FUNCTION ledger_write(states ledger_state[])
RETURNS TABLE (vtid text, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
INSERT INTO vtid_ledger AS l (vtid, status, service, environment, last_event_id,
    last_event_at, description, task_family, task_type, assigned_to, tenant, metadata,
    fold_newest, fold_founding, fold_owners, fold_base, created_at, updated_at, fold_rules)
SELECT c.*, now(), now(), ledger_rules_version()
FROM unnest(states) AS s, LATERAL ledger_cap_registers(s::ledger_state) AS c
ORDER BY c.vtid COLLATE "C"  -- one lock order for every writer
ON CONFLICT (vtid) DO UPDATE SET
    (status, service, environment, last_event_id, last_event_at, description, task_family,
     task_type, assigned_to, tenant, metadata, fold_newest, fold_founding, fold_owners,
     fold_base, updated_at, fold_rules) =
    (SELECT m.status, m.service, m.environment, m.last_event_id, m.last_event_at,
        m.description, m.task_family, m.task_type, m.assigned_to, m.tenant, m.metadata,
        m.fold_newest, m.fold_founding, m.fold_owners, m.fold_base, now(),
        CASE WHEN l.fold_founding IS NULL AND l.fold_base IS NULL THEN ledger_rules_version()
            ELSE l.fold_rules END
     FROM ledger_cap_registers(ledger_merge(l, EXCLUDED)) AS m)
WHERE ledger_merge_changes(l, EXCLUDED)
RETURNING l.vtid, l.xmax = 0;
END
$$;

-- [from 20251213_rebuild.sql]
-- A row as a ledger_state (the fold's part of it), and a ledger_state as a row of vtid_ledger
-- (other columns NULL): the rebuild keeps its shadow as states, and ledger_merge merges rows.
CREATE OR REPLACE FUNCTION ledger_state_row(s ledger_state) RETURNS vtid_ledger
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT jsonb_populate_record(NULL::vtid_ledger, to_jsonb(s))
$$;

-- [from 20251204_fold_apply.sql]
-- Fold events into the ledger: one event (the event function) needs no aggregation; a batch
-- (the sweep) is folded set-based. Either way the states go through ledger_write.
CREATE OR REPLACE FUNCTION ledger_apply_events(events ledger_event[])
RETURNS TABLE (vtid text, created boolean)
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(events) = 1 THEN
        IF (events[1]).reason IS NULL AND (events[1]).task_vtid IS NOT NULL THEN
            RETURN QUERY SELECT * FROM ledger_write(ARRAY[ledger_state_of(events[1])]);
        END IF;
    ELSE
        RETURN QUERY SELECT * FROM ledger_write(ARRAY(SELECT f FROM ledger_fold(events) AS f));
    END IF;
END
$$;
