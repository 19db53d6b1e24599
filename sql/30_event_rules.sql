-- What an event means for its task: its status, its place in the fold's order, its digest,
-- the metadata it carries into the row, and the lists of names the rules treat apart. The
-- Python reference keeps the same lists (ledger/fold.py, ledger/events.py);
-- tests/test_rules_in_sql.py holds the two to each other.

-- The version of the fold's rules. A change to what a row is (a status mapping, a register, a
-- limit) gives it a new value; rows folded under an older one are reported as outdated until
-- `rebuild --outdated` refolds them. Declared, not this file's checksum: a comment or a
-- renamed step must not ask for every row to be folded again. This one: the edge, the
-- future-time rule and the key caps of 2025-12-08 to 2025-12-11.
CREATE OR REPLACE FUNCTION ledger_rules_version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT '2025-12-11'
$$;

-- Metadata keys the fold turns into columns (ledger_state_of, ledger_fold): they do not also go
-- into the row's metadata. ledger/fold.py COLUMN_KEYS.
CREATE OR REPLACE FUNCTION ledger_column_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT '{vtid,tenant,description,summary,taskFamily,task_family,taskType,task_type,assignedTo,assigned_to,assignee}'::text[]
$$;

-- The writer's own metadata keys (ledger_writer_keys sets them); an event cannot set them.
-- ledger/fold.py WRITER_KEYS.
CREATE OR REPLACE FUNCTION ledger_writer_key_names() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT '{autoCreated,sourceEvent,sourceType,lastEventType}'::text[]
$$;

-- The column registers, by the ledger column each fills; an event sets one when its metadata
-- holds a non-empty string under one of the column's names.
CREATE OR REPLACE FUNCTION ledger_column_registers() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT '{description,task_family,task_type,assigned_to}'::text[]
$$;

-- The value an event's metadata gives a column register: the first non-empty string under one
-- of the register's names, else NULL. ledger/fold.py COLUMN_REGISTERS. Inlined, and with a
-- constant `register` the CASE folds away; `?|` first, since most events name none of them.
CREATE OR REPLACE FUNCTION ledger_register_value(metadata jsonb, register text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE register
    WHEN 'description' THEN CASE WHEN metadata ?| '{description,summary}'
        THEN ledger_meta_text(metadata, 'description', 'summary') END
    WHEN 'task_family' THEN CASE WHEN metadata ?| '{taskFamily,task_family}'
        THEN ledger_meta_text(metadata, 'taskFamily', 'task_family') END
    WHEN 'task_type' THEN CASE WHEN metadata ?| '{taskType,task_type}'
        THEN ledger_meta_text(metadata, 'taskType', 'task_type') END
    WHEN 'assigned_to' THEN CASE WHEN metadata ?| '{assignedTo,assigned_to,assignee}'
        THEN ledger_meta_text(metadata, 'assignedTo', 'assigned_to', 'assignee') END
END
$$;

-- An event's fields that must be strings (or null) when it comes as JSON, in the order the
-- first wrong one is reported. ledger/events.py STRING_FIELDS.
CREATE OR REPLACE FUNCTION ledger_event_string_fields() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT '{id,created_at,createdAt,topic,event,type,service,source,status,vtid,message,title,ref,layer,module,kind,tenant,notes}'::text[]
$$;

-- docs/behaviour.md §3: the event type looked up exactly and lower-cased ('.' and '_' alike), else the
-- event status lower-cased, else active.
CREATE OR REPLACE FUNCTION ledger_status_of(event_type text, event_status text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(
    CASE replace(lower(event_type COLLATE "C"), '.', '_')
        WHEN 'deployment_started' THEN 'active'
        WHEN 'deployment_succeeded' THEN 'complete'
        WHEN 'deployment_failed' THEN 'blocked'
        WHEN 'deployment_validated' THEN 'complete'
        WHEN 'task_created' THEN 'pending'
        WHEN 'task_started' THEN 'active'
        WHEN 'task_completed' THEN 'complete'
        WHEN 'task_failed' THEN 'blocked'
        WHEN 'task_cancelled' THEN 'cancelled'
        WHEN 'pr_created' THEN 'active'
        WHEN 'pr_merged' THEN 'complete'
        WHEN 'pr_closed' THEN 'cancelled'
        WHEN 'build_started' THEN 'active'
        WHEN 'build_succeeded' THEN 'complete'
        WHEN 'build_failed' THEN 'blocked'
        WHEN 'workflow_started' THEN 'active'
        WHEN 'workflow_completed' THEN 'complete'
        WHEN 'workflow_failed' THEN 'blocked'
    END,
    CASE lower(ledger_trim(event_status) COLLATE "C")
        WHEN 'success' THEN 'complete' WHEN 'complete' THEN 'complete'
        WHEN 'completed' THEN 'complete'
        WHEN 'fail' THEN 'blocked' WHEN 'failed' THEN 'blocked' WHEN 'failure' THEN 'blocked'
        WHEN 'error' THEN 'blocked' WHEN 'blocked' THEN 'blocked'
        WHEN 'cancelled' THEN 'cancelled' WHEN 'canceled' THEN 'cancelled'
        WHEN 'queued' THEN 'pending' WHEN 'pending' THEN 'pending'
    END,
    'active')
$$;

CREATE OR REPLACE FUNCTION ledger_priority(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE status WHEN 'pending' THEN 1 WHEN 'active' THEN 2 WHEN 'blocked' THEN 3
    WHEN 'cancelled' THEN 4 WHEN 'complete' THEN 5 ELSE 0 END
$$;

-- (Functions whose bodies call STABLE builtins, such as to_char or a row's text output, are
-- declared STABLE: the planner inlines a SQL function only when it is no more volatile than
-- its body, and inlining is what makes these cheap per event.)

-- An event's place in the fold's order (docs/behaviour.md §4: created_at, priority, id) as text that sorts
-- bytewise (COLLATE "C") exactly as the tuple does: a fixed-width UTC time, one priority digit,
-- then the id escaped and terminated so that no key is a prefix of another (\x01 becomes
-- \x01\x02, then \x01\x01 ends it). Ids unique in the log make this a total order within a
-- batch; a digest appended after it (ledger_digest) breaks the ties between different
-- events that reuse one id and time, from two producers or two paths. A function's result
-- takes the collation of its arguments, not of its body: keys are stored in COLLATE "C"
-- fields and columns, and a key compared straight from a call needs COLLATE "C" there.
CREATE OR REPLACE FUNCTION ledger_key(created_at timestamptz, priority integer, id text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT (to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') || priority::text
    || replace(id, E'\x01', E'\x01\x02') || E'\x01\x01') COLLATE "C"
$$;

-- The content digest: md5 of the decoded event's fields as a row's text (record_out quotes and
-- escapes so that different contents give different texts; metadata as jsonb prints it: keys
-- sorted, numbers as numeric prints them), first 16 hex digits. Computed only for the events
-- a row keeps. `ledger/events.py` computes the same digest for the reference fold.
CREATE OR REPLACE FUNCTION ledger_digest(
    type text, service text, status text, vtid text, message text, title text, ref text,
    layer text, module text, kind text, tenant text, notes text, metadata jsonb
) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT left(md5(ROW(type, service, status, vtid, message, title, ref, layer, module, kind,
    tenant, notes, metadata)::text), 16)
$$;

-- The metadata keys an event carries into the row (docs/behaviour.md §4): all but the column
-- keys and the writer's own, and none whose value is null or "" (absent). Nested values are
-- kept as they are.
CREATE OR REPLACE FUNCTION ledger_meta_registers(metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    kept jsonb := metadata - (ledger_column_keys() || ledger_writer_key_names());
BEGIN
    IF NOT kept @? '$.* ? (@ == null || @ == "")' THEN
        RETURN kept;
    END IF;
    RETURN (SELECT coalesce(jsonb_object_agg(key, value), '{}') FROM jsonb_each(kept)
            WHERE value NOT IN ('null', '""'));
END
$$;

-- The environment and tenant rules, and the columns a founding event gives when no event sets
-- them explicitly: shared by the batch fold and the single-event state.
CREATE OR REPLACE FUNCTION ledger_environment_of(metadata jsonb)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(ledger_meta_text(metadata, 'environment', 'env'), 'dev')
$$;

CREATE OR REPLACE FUNCTION ledger_tenant_of(tenant text, metadata jsonb)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(tenant, ledger_meta_text(metadata, 'tenant'), 'system')
$$;

CREATE OR REPLACE FUNCTION ledger_default_description(title text, message text, type text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(title, message, 'Auto-created from OASIS event: ' || coalesce(type, 'unknown'))
$$;

CREATE OR REPLACE FUNCTION ledger_default_task_type(kind text, type text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(kind, type, 'event')
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
