-- The fold (docs/behaviour.md §4) and the statements that apply it. Both paths call ledger_apply_events:
-- the event function with one event, the sweep with a batch.

-- What the fold gives for one VTID: the ledger columns it determines and its state.
DO $$
BEGIN
CREATE TYPE ledger_state AS (
    vtid          text,
    status        text,
    service       text,
    environment   text,
    last_event_id text,
    last_event_at timestamptz,
    description   text,
    task_family   text,
    task_type     text,
    assigned_to   text,
    tenant        text,
    metadata      jsonb,
    fold_newest   text COLLATE "C",
    fold_founding text COLLATE "C",
    fold_owners   jsonb,
    fold_base     jsonb
);
EXCEPTION WHEN duplicate_object THEN NULL;  -- created by an earlier run of this file
END
$$;

-- The columns a founding event gives when no event sets them explicitly, and the environment
-- and tenant rules: shared by the batch fold and the single-event state below.
CREATE OR REPLACE FUNCTION ledger_default_description(title text, message text, type text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(title, message, 'Auto-created from OASIS event: ' || coalesce(type, 'unknown'))
$$;

CREATE OR REPLACE FUNCTION ledger_default_task_type(kind text, type text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(kind, type, 'event')
$$;

CREATE OR REPLACE FUNCTION ledger_environment_of(metadata jsonb)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(ledger_meta_text(metadata, 'environment', 'env'), 'dev')
$$;

CREATE OR REPLACE FUNCTION ledger_tenant_of(tenant text, metadata jsonb)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(tenant, ledger_meta_text(metadata, 'tenant'), 'system')
$$;

-- The writer's own metadata keys for a row it made.
CREATE OR REPLACE FUNCTION ledger_writer_keys(source_event text, source_type text,
    last_event_type text, two_or_more boolean)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT jsonb_build_object('autoCreated', true, 'sourceEvent', source_event,
    'sourceType', source_type)
    || CASE WHEN two_or_more THEN jsonb_build_object('lastEventType', last_event_type)
        ELSE '{}' END
$$;

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

-- The key of the newest thing a row reflects: its fold_newest, or for a row another system
-- made that no event has reached yet, its own last event (digest '~': an event with the very
-- same time, priority and id is the one it already reflects, not a newer one).
CREATE OR REPLACE FUNCTION ledger_row_newest(r vtid_ledger) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(r.fold_newest, CASE WHEN r.fold_founding IS NULL AND r.last_event_at IS NOT NULL
    THEN ledger_key(r.last_event_at, ledger_priority(r.status), coalesce(r.last_event_id, ''))
        || '~' END) COLLATE "C"
$$;

CREATE OR REPLACE FUNCTION ledger_base_of(r vtid_ledger) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT jsonb_build_object('status', r.status, 'service', r.service,
    'environment', r.environment, 'last_event_id', r.last_event_id,
    'last_event_at', r.last_event_at, 'description', r.description,
    'task_family', r.task_family, 'task_type', r.task_type, 'assigned_to', r.assigned_to,
    'tenant', r.tenant, 'metadata', r.metadata)
$$;

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

-- Write states into the ledger: one INSERT ... ON CONFLICT DO UPDATE whose merge runs inside
-- the statement against the row as it is when locked (no read before it, no retry loop), and
-- whose WHERE skips writes that change nothing. Returns the rows written. Both paths use it.
CREATE OR REPLACE FUNCTION ledger_write(states ledger_state[])
RETURNS TABLE (vtid text, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
INSERT INTO vtid_ledger AS l (vtid, status, service, environment, last_event_id,
    last_event_at, description, task_family, task_type, assigned_to, tenant, metadata,
    fold_newest, fold_founding, fold_owners, fold_base, created_at, updated_at)
SELECT s.*, now(), now() FROM unnest(states) AS s
ORDER BY s.vtid COLLATE "C"  -- one lock order for every writer
ON CONFLICT (vtid) DO UPDATE SET
    (status, service, environment, last_event_id, last_event_at, description, task_family,
     task_type, assigned_to, tenant, metadata, fold_newest, fold_founding, fold_owners,
     fold_base, updated_at) =
    (SELECT m.status, m.service, m.environment, m.last_event_id, m.last_event_at,
        m.description, m.task_family, m.task_type, m.assigned_to, m.tenant, m.metadata,
        m.fold_newest, m.fold_founding, m.fold_owners, m.fold_base, now()
     FROM ledger_merge(l, EXCLUDED) AS m)
WHERE ledger_merge_changes(l, EXCLUDED)
RETURNING l.vtid, l.xmax = 0;
END
$$;

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

-- A rejected event, kept with its raw payload: one row per (source, payload).
CREATE OR REPLACE FUNCTION ledger_reject(source text, reason text, raw bytea, event_id text,
    message_id text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_rejections AS r (source, reason, event_id, message_id, raw, fingerprint)
    VALUES (source, left(reason, 2000), left(event_id, 500), left(message_id, 500), raw,
        encode(sha256(convert_to(source, 'UTF8') || '\x00'::bytea || raw), 'hex'))
    ON CONFLICT (fingerprint) DO NOTHING;
END
$$;

ALTER TABLE projector_progress
    ADD COLUMN IF NOT EXISTS redelivered bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS delivery_lag_seconds_sum double precision NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS delivery_lag_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_delivery_lag_seconds double precision;

-- The real-time path's counters (projector vtid_ledger_sync), one shard per connection, so
-- concurrent instances do not queue on one row. A delivery attempt
-- above 1 means an earlier attempt failed or timed out: a rising count is what precedes dead
-- letters. The lag is publish to applied, the real-time path's own latency.
CREATE OR REPLACE FUNCTION ledger_count_realtime(outcome text, event_time timestamptz,
    publish_time timestamptz DEFAULT NULL, delivery_attempt integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    my_shard smallint := pg_backend_pid() % 16;
    again int := (coalesce(delivery_attempt, 1) > 1)::int;
    lag double precision :=
        greatest(0, extract(epoch FROM clock_timestamp() - publish_time))::double precision;
BEGIN
    UPDATE projector_progress AS p SET
        events_processed = p.events_processed + 1,
        created = p.created + (outcome = 'created')::int,
        updated = p.updated + (outcome = 'updated')::int,
        skipped = p.skipped + (outcome = 'skipped')::int,
        errors = p.errors + (outcome = 'rejected')::int,
        redelivered = p.redelivered + again,
        delivery_lag_seconds_sum = p.delivery_lag_seconds_sum + coalesce(lag, 0),
        delivery_lag_count = p.delivery_lag_count + (lag IS NOT NULL)::int,
        last_delivery_lag_seconds = coalesce(lag, p.last_delivery_lag_seconds),
        last_processed_at = now(),
        last_event_time = greatest(p.last_event_time, event_time)
    WHERE p.projector_name = 'vtid_ledger_sync' AND p.shard = my_shard;
    IF NOT FOUND THEN  -- the shard's first event
        INSERT INTO projector_progress AS p (projector_name, shard, events_processed, created,
            updated, skipped, errors, redelivered, delivery_lag_seconds_sum, delivery_lag_count,
            last_delivery_lag_seconds, last_processed_at, last_event_time)
        VALUES ('vtid_ledger_sync', my_shard, 1, (outcome = 'created')::int,
            (outcome = 'updated')::int, (outcome = 'skipped')::int,
            (outcome = 'rejected')::int, again, coalesce(lag, 0), (lag IS NOT NULL)::int, lag,
            now(), event_time)
        ON CONFLICT (projector_name, shard) DO UPDATE SET
            events_processed = p.events_processed + 1,
            created = p.created + EXCLUDED.created, updated = p.updated + EXCLUDED.updated,
            skipped = p.skipped + EXCLUDED.skipped, errors = p.errors + EXCLUDED.errors,
            redelivered = p.redelivered + EXCLUDED.redelivered,
            delivery_lag_seconds_sum =
                p.delivery_lag_seconds_sum + EXCLUDED.delivery_lag_seconds_sum,
            delivery_lag_count = p.delivery_lag_count + EXCLUDED.delivery_lag_count,
            last_delivery_lag_seconds =
                coalesce(EXCLUDED.last_delivery_lag_seconds, p.last_delivery_lag_seconds),
            last_processed_at = now(),
            last_event_time = greatest(p.last_event_time, EXCLUDED.last_event_time);
    END IF;
END
$$;

-- The real-time path (docs/behaviour.md §5): one published event, given as the JSON text the edge checked
-- (strict JSON, size), applied in one call: decoded, rejected or skipped and counted, or
-- folded into its row. Returns created, updated, stale, skipped, rejected or ignored.
CREATE OR REPLACE FUNCTION ledger_apply_event(payload text, message_id text,
    publish_time timestamptz, delivery_attempt integer)
RETURNS TABLE (outcome text, vtid text, event_id text, reason text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    e ledger_event := ledger_decode_json(payload::jsonb, publish_time);
    written record;
BEGIN
    IF e.reason IS NOT NULL THEN
        PERFORM ledger_reject('pubsub', e.reason, convert_to(payload, 'UTF8'), e.id,
            message_id);
        outcome := 'rejected';
    ELSIF e.service = 'oasis-projector' AND e.type IS NOT DISTINCT FROM 'ledger_sync' THEN
        RETURN QUERY SELECT 'ignored', NULL::text, e.id, NULL::text;
        RETURN;
    ELSIF e.task_vtid IS NULL THEN
        outcome := 'skipped';
    ELSE
        SELECT * INTO written FROM ledger_write(ARRAY[ledger_state_of(e)]);
        outcome := CASE WHEN NOT FOUND THEN 'stale'
            WHEN written.created THEN 'created' ELSE 'updated' END;
    END IF;
    PERFORM ledger_count_realtime(outcome, e.created_at, publish_time, delivery_attempt);
    RETURN QUERY SELECT outcome, e.task_vtid, e.id, e.reason;
END
$$;
