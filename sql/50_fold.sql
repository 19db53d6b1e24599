-- The fold (docs/behaviour.md §4): the state a set of events gives each VTID, how a row and a
-- state merge, and the one statement that writes states into the ledger. Every path (a push,
-- group commit, the sweep, a rebuild) ends in ledger_write.

-- The state of one event on its own (the event function's case): no aggregation needed.
CREATE OR REPLACE FUNCTION ledger_state_of(e ledger_event) RETURNS ledger_state
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    s ledger_state;
    registers jsonb := ledger_meta_registers(e.metadata);
    full_key text COLLATE "C" := e.key || ledger_event_digest(e);
    description text := ledger_register_value(e.metadata, 'description');
    task_family text := ledger_register_value(e.metadata, 'task_family');
    task_type text := ledger_register_value(e.metadata, 'task_type');
    assigned_to text := ledger_register_value(e.metadata, 'assigned_to');
    names text[] := ARRAY(SELECT jsonb_object_keys(registers));
BEGIN
    s.vtid := e.task_vtid;
    s.status := e.mapped_status;
    s.service := e.service;
    s.environment := ledger_environment_of(e.metadata);
    s.last_event_id := e.id;
    s.last_event_at := e.created_at;
    s.description := coalesce(description, ledger_default_description(e.title, e.message, e.type));
    s.task_family := coalesce(task_family, e.layer, 'auto');
    s.task_type := coalesce(task_type, ledger_default_task_type(e.kind, e.type));
    s.assigned_to := assigned_to;
    s.tenant := ledger_tenant_of(e.tenant, e.metadata);
    s.metadata := registers || ledger_writer_keys(e.id, e.type, e.type, false);
    s.fold_newest := full_key;
    s.fold_founding := full_key;
    s.fold_owners := jsonb_object(names, array_fill(full_key::text, ARRAY[cardinality(names)]))
        || jsonb_strip_nulls(jsonb_build_object(
            'description', CASE WHEN description IS NOT NULL THEN full_key END,
            'task_family', CASE WHEN task_family IS NOT NULL THEN full_key END,
            'task_type', CASE WHEN task_type IS NOT NULL THEN full_key END,
            'assigned_to', CASE WHEN assigned_to IS NOT NULL THEN full_key END));
    RETURN s;
END
$$;

-- The fold of a set of events (their keys unique, as ids in the log are), one state per VTID,
-- rendered as the row it would be on its own. Unreadable, skipped and the writer's own events
-- are left out. Newest and founding by key; each register by the newest event that sets it.
-- Per event only what is cheap is done: its key, and the metadata it has beyond the newest
-- event's registers (usually nothing); the rest only for the events a row keeps (newest,
-- founding, explicit column values, carriers of keys the newest lacks).
--
-- One statement of about 90 lines, not several functions: each step reads the one before it,
-- and split into functions they would be planned apart and their results copied between them.
--
-- plpgsql, not SQL: before Postgres 18 a SQL function's statement is planned again at every
-- call, which for one event costs more than folding it. The plan is generic (planned once for
-- any array): measured with 200,000 events in batches of 50,000, a custom plan for each
-- batch's array ran past the 60 s statement timeout where the generic plan takes about 1.5 s.
-- Every join here is an equality on a key, which a hash join does in one pass at any size:
-- nested loops (quadratic) and merge joins are ruled out so that no estimate can bring them
-- back (with the generic plan they changed nothing measurable: 26,600 against 29,900 events/s,
-- within this machine's noise). JIT is off: a plan this size looks costly enough to be
-- compiled at every call. work_mem lets each hash of a 50,000-event batch stay in memory; the
-- backend's peak is about 0.5 GB at that batch size (README, sizing).
CREATE OR REPLACE FUNCTION ledger_fold(events ledger_event[]) RETURNS SETOF ledger_state
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET enable_nestloop = off SET enable_mergejoin = off SET jit = off SET work_mem = '256MB'
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
RETURN QUERY
WITH readable AS MATERIALIZED (  -- narrow: what every event contributes to the aggregates
    SELECT e.ordinality AS n, e.task_vtid AS vtid, e.key, e.metadata,
        ledger_register_value(e.metadata, 'description') AS set_description,
        ledger_register_value(e.metadata, 'task_family') AS set_task_family,
        ledger_register_value(e.metadata, 'task_type') AS set_task_type,
        ledger_register_value(e.metadata, 'assigned_to') AS set_assigned_to
    FROM unnest(events) WITH ORDINALITY AS e
    WHERE e.reason IS NULL AND e.task_vtid IS NOT NULL
      AND NOT (e.service = 'oasis-projector' AND e.type IS NOT DISTINCT FROM 'ledger_sync')
),
per_vtid AS MATERIALIZED (  -- each VTID's newest and founding keys, and each column's setter
    SELECT vtid, max(key) AS newest, min(key) AS founding,
        max(key) FILTER (WHERE set_description IS NOT NULL) AS description_key,
        max(key) FILTER (WHERE set_task_family IS NOT NULL) AS task_family_key,
        max(key) FILTER (WHERE set_task_type IS NOT NULL) AS task_type_key,
        max(key) FILTER (WHERE set_assigned_to IS NOT NULL) AS assigned_to_key
    FROM readable GROUP BY vtid
),
newest_registers AS MATERIALIZED (  -- each VTID's newest event's registers, and their names
    SELECT per_vtid.*, r.registers, ARRAY(SELECT jsonb_object_keys(r.registers)) AS names
    FROM per_vtid JOIN readable ON readable.key = per_vtid.newest,
    LATERAL (SELECT ledger_meta_registers(readable.metadata) AS registers) AS r
),
older_registers AS MATERIALIZED (  -- keys only older events carry, each from its newest carrier
    SELECT DISTINCT ON (readable.vtid, r.key) readable.vtid, r.key AS name, r.value,
        readable.key, readable.n
    FROM readable
    JOIN newest_registers AS nr ON nr.vtid = readable.vtid AND readable.key <> nr.newest,
    LATERAL (SELECT readable.metadata - nr.names AS others) AS o,
    LATERAL jsonb_each(ledger_meta_registers(o.others)) AS r
    WHERE o.others <> '{}'
    ORDER BY readable.vtid, r.key, readable.key DESC
),
kept AS MATERIALIZED (  -- the events a row keeps, in full, with their full keys
    SELECT k.ordinality AS n, k.key, k.key || ledger_event_digest(events[k.ordinality]) AS full_key,
        k.id, k.created_at, k.type, k.service, k.mapped_status, k.title, k.message, k.layer,
        k.kind, k.tenant, k.metadata
    FROM unnest(events) WITH ORDINALITY AS k
    WHERE k.ordinality IN (
        SELECT readable.n FROM readable JOIN (
            SELECT v.key FROM per_vtid, LATERAL (VALUES (per_vtid.newest), (per_vtid.founding),
                (per_vtid.description_key), (per_vtid.task_family_key),
                (per_vtid.task_type_key), (per_vtid.assigned_to_key)) AS v(key)
            WHERE v.key IS NOT NULL
            UNION SELECT older_registers.key FROM older_registers) AS wanted
        ON wanted.key = readable.key)
),
older_values AS (
    SELECT older.vtid, jsonb_object_agg(older.name, older.value) AS "values",
        jsonb_object_agg(older.name, carrier.full_key) AS owners
    FROM older_registers AS older JOIN kept AS carrier ON carrier.n = older.n
    GROUP BY older.vtid
)
SELECT nr.vtid, newest.mapped_status AS status, newest.service,
    ledger_environment_of(newest.metadata) AS environment, newest.id AS last_event_id,
    newest.created_at AS last_event_at,
    coalesce(ledger_register_value(described.metadata, 'description'),
        ledger_default_description(founding.title, founding.message, founding.type))
        AS description,
    coalesce(ledger_register_value(family.metadata, 'task_family'), founding.layer, 'auto')
        AS task_family,
    coalesce(ledger_register_value(typed.metadata, 'task_type'),
        ledger_default_task_type(founding.kind, founding.type)) AS task_type,
    ledger_register_value(assigned.metadata, 'assigned_to') AS assigned_to,
    ledger_tenant_of(founding.tenant, founding.metadata) AS tenant,
    coalesce(older_values."values", '{}') || nr.registers
        || ledger_writer_keys(founding.id, founding.type, newest.type, nr.newest <> nr.founding)
        AS metadata,
    newest.full_key AS fold_newest, founding.full_key AS fold_founding,
    jsonb_object(nr.names, array_fill(newest.full_key, ARRAY[cardinality(nr.names)]))
        || coalesce(older_values.owners, '{}')
        || jsonb_strip_nulls(jsonb_build_object('description', described.full_key,
            'task_family', family.full_key, 'task_type', typed.full_key,
            'assigned_to', assigned.full_key)) AS fold_owners,
    NULL::jsonb AS fold_base
FROM newest_registers AS nr
JOIN kept AS newest ON newest.key = nr.newest
JOIN kept AS founding ON founding.key = nr.founding
LEFT JOIN kept AS described ON described.key = nr.description_key
LEFT JOIN kept AS family ON family.key = nr.task_family_key
LEFT JOIN kept AS typed ON typed.key = nr.task_type_key
LEFT JOIN kept AS assigned ON assigned.key = nr.assigned_to_key
LEFT JOIN older_values ON older_values.vtid = nr.vtid;
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
-- idempotent, so rows end up the same whatever order states are merged in. About 90 lines in
-- one function: the newest side, the founding side, the registers and the writer's own keys
-- depend on each other's outcome, and ledger_write calls it once per row it changes.
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
    -- r as a state: each field from r's column of the same name, in ledger_state's order (one
    -- ROW, not sixteen assignments: this runs once per row a write changes, and the rebuild
    -- was 14% slower field by field). tests/test_rules_in_sql.py merges rows whose every
    -- column differs, so a swapped pair fails there.
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

    meta_wins := wins - ledger_column_registers();
    IF meta_wins <> '{}' THEN
        IF b.fold_founding > coalesce(newest, '') THEN
            meta_wins := b.metadata - ledger_writer_key_names();
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
        WHERE o.key <> ALL (ledger_column_registers())
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

-- Write states into the ledger: one INSERT … ON CONFLICT for all of them, in VTID order, which
-- merges each into its row and skips the write where nothing changes. Each row records the
-- rules version it was folded under: a row folded from nothing takes the current version; a
-- row already folded under an older one keeps that (part of it is still the old rules' work).
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

-- A ledger_state as a row of vtid_ledger (other columns NULL), by column name: the rebuild
-- keeps its shadow as states, and ledger_merge merges rows.
CREATE OR REPLACE FUNCTION ledger_state_row(s ledger_state) RETURNS vtid_ledger
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT jsonb_populate_record(NULL::vtid_ledger, to_jsonb(s))
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

-- What applying an event of a batch did to its row, counted as if each VTID's events were
-- applied one at a time in the fold's order: 'created' (the oldest event of a VTID that had no
-- row), 'updated' (newer than the row; older than the founding event of a row the writer made;
-- or setting a register with a newer event than the row's) or 'stale'. `before_*` are
-- the row as it was before the batch (NULL: there was none); `written`, whether the batch
-- wrote it. `event_full_key` is the key with its digest: the caller passes the expression and,
-- this function being inlined, it is computed only where a comparison needs it (the digest
-- tells apart events of one time, priority and id; keys are prefix-free, so elsewhere it cannot
-- change a comparison). A set-returning function called in FROM, so that Postgres inlines it,
-- EXISTS and all; as a scalar function it was not (50 µs a call, measured).
CREATE OR REPLACE FUNCTION ledger_event_outcome(event_key text, event_full_key text,
    event_metadata jsonb, oldest_key text, had_row boolean, before_newest text,
    before_founding text, before_owners jsonb, written boolean)
RETURNS TABLE (outcome text) LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN NOT written THEN 'stale'
    WHEN NOT had_row THEN CASE WHEN event_key = oldest_key THEN 'created' ELSE 'updated' END
    WHEN comparable.key > coalesce(before_newest COLLATE "C", '') THEN 'updated'
    WHEN before_founding IS NOT NULL AND event_key = oldest_key
        AND comparable.key < before_founding COLLATE "C" THEN 'updated'
    -- older than its row (rare): does it set a register with a newer event?
    WHEN EXISTS (
        SELECT 1 FROM (
            SELECT jsonb_object_keys(ledger_meta_registers(event_metadata))
            UNION ALL
            SELECT register FROM unnest(ledger_column_registers()) AS register
            WHERE ledger_register_value(event_metadata, register) IS NOT NULL
        ) AS registers(name)
        WHERE event_full_key COLLATE "C"
              > coalesce((before_owners ->> registers.name) COLLATE "C", ''))
        THEN 'updated'
    ELSE 'stale'
END
FROM (SELECT CASE WHEN starts_with(before_newest, event_key)
        OR starts_with(before_founding, event_key)
    THEN event_full_key ELSE event_key END COLLATE "C" AS key) AS comparable
$$;
