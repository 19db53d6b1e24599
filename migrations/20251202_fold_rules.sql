-- The rules of docs/behaviour.md §1-§3 as SQL functions: the one production implementation, used by the
-- real-time path and the sweep alike. `ledger/events.py`, `vtid.py`, `task_status.py` and
-- `fold.py` keep an independent Python version that verify and the tests hold these to.
--
-- Traps these functions avoid on purpose:
-- * text compares by the database's collation, Python by code point: keys are compared
--   COLLATE "C" (bytewise UTF-8, which is code point order);
-- * upper() and lower() follow the collation too (ICU turns 'ı' into 'I'): only ASCII letters
--   are changed, through COLLATE "C";
-- * in Postgres regular expressions \b is a backspace: boundaries are spelled out;
-- * Postgres's timestamptz input takes 'now', 'epoch' and more: times are checked against an
--   ISO-8601 grammar before any cast.

-- A decoded event, whatever it came from (a row of oasis_events, a Pub/Sub message, an
-- ingest request). `reason` is not NULL when the event cannot be read (rejected); the derived
-- fields `task_vtid`, `mapped_status` and `key` are filled for readable events.
DO $$
BEGIN
CREATE TYPE ledger_event AS (
    seq           bigint,
    id            text,
    created_at    timestamptz,
    type          text,
    service       text,
    status        text,
    vtid          text,
    message       text,
    title         text,
    ref           text,
    layer         text,
    module        text,
    kind          text,
    tenant        text,
    notes         text,
    metadata      jsonb,
    reason        text,
    task_vtid     text,
    mapped_status text,
    key           text COLLATE "C"
);
EXCEPTION WHEN duplicate_object THEN NULL;  -- created by an earlier run of this file
END
$$;

-- Python's str.strip(): every character for which str.isspace() is true.
CREATE OR REPLACE FUNCTION ledger_trim(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT btrim(value, E' \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\u0085\u00a0\u1680\u2000\u2001\u2002'
    || E'\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000')
$$;

-- docs/behaviour.md §2. Candidates are trimmed and upper-cased (ASCII letters only: a VTID is ASCII).
CREATE OR REPLACE FUNCTION ledger_vtid_normalise(candidate text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT upper(ledger_trim(candidate) COLLATE "C")
$$;

CREATE OR REPLACE FUNCTION ledger_vtid_is_valid(vtid text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT vtid COLLATE "C" ~ '^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-[0-9]+$'
$$;

-- The first present source wins: vtid; metadata.vtid (a non-empty string); ref when it is a
-- valid VTID; the first VTID-NNNN(N)(-N) in the message with a word boundary on both sides
-- (ASCII word characters, as Python's re.ASCII \b). A present but invalid vtid does not fall
-- through. NULL for no or an invalid VTID. The usual case (a vtid field) stays inlinable.
CREATE OR REPLACE FUNCTION ledger_vtid_checked(candidate text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN ledger_vtid_is_valid(candidate) THEN candidate END
$$;

CREATE OR REPLACE FUNCTION ledger_vtid_without_field(metadata jsonb, ref text, message text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    candidate text;
BEGIN
    IF jsonb_typeof(metadata -> 'vtid') = 'string' AND metadata ->> 'vtid' <> '' THEN
        candidate := metadata ->> 'vtid';
    ELSIF ref IS NOT NULL AND ledger_vtid_is_valid(ledger_vtid_normalise(ref)) THEN
        candidate := ref;
    ELSE
        candidate := (regexp_match(message COLLATE "C",
            '(?<![A-Za-z0-9_])VTID-[0-9]{4,5}(?:-[0-9]+)?(?![A-Za-z0-9_])'))[1];
    END IF;
    RETURN ledger_vtid_checked(ledger_vtid_normalise(candidate));
END
$$;

CREATE OR REPLACE FUNCTION ledger_vtid_of(vtid text, metadata jsonb, ref text, message text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN vtid IS NOT NULL THEN ledger_vtid_checked(ledger_vtid_normalise(vtid))
    ELSE ledger_vtid_without_field(metadata, ref, message) END
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
--
-- An event's place in the fold's order (docs/behaviour.md §4: created_at, priority, id) as text that sorts
-- bytewise (COLLATE "C") exactly as the tuple does: a fixed-width UTC time, one priority digit,
-- then the id escaped and terminated so that no key is a prefix of another (\x01 becomes
-- \x01\x02, then \x01\x01 ends it). Ids unique in the log make this a total order within a
-- batch; a digest appended after it (ledger_digest) breaks the ties between different
-- events that reuse one id and time, from two producers or two paths. A function's result
-- takes its caller's collation: keys are stored in COLLATE "C" fields and columns, and a key
-- compared straight from a call needs COLLATE "C" there.
CREATE OR REPLACE FUNCTION ledger_key(created_at timestamptz, priority integer, id text) RETURNS text
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

-- The first of the names whose metadata value is a non-empty string (explicit column values).
CREATE OR REPLACE FUNCTION ledger_meta_text(metadata jsonb, a text, b text DEFAULT NULL, c text DEFAULT NULL)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(
    CASE WHEN jsonb_typeof(metadata -> a) = 'string' THEN nullif(metadata ->> a, '') END,
    CASE WHEN jsonb_typeof(metadata -> b) = 'string' THEN nullif(metadata ->> b, '') END,
    CASE WHEN jsonb_typeof(metadata -> c) = 'string' THEN nullif(metadata ->> c, '') END)
$$;

-- The metadata keys an event carries into the row (docs/behaviour.md §4): all but the column keys and the
-- writer's own, and none whose value is null or "" (absent). Nested values are kept as they are.
CREATE OR REPLACE FUNCTION ledger_meta_registers(metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    kept jsonb := metadata - '{vtid,tenant,description,summary,taskFamily,task_family,taskType,task_type,assignedTo,assigned_to,assignee,autoCreated,sourceEvent,sourceType,lastEventType}'::text[];
BEGIN
    IF NOT kept @? '$.* ? (@ == null || @ == "")' THEN
        RETURN kept;
    END IF;
    RETURN (SELECT coalesce(jsonb_object_agg(key, value), '{}') FROM jsonb_each(kept)
            WHERE value NOT IN ('null', '""'));
END
$$;
-- metadata sent as a JSON string: the object it holds ({} for a blank string), or NULL when it
-- holds anything else or is not JSON Postgres can hold. Rare, hence the exception block.
CREATE OR REPLACE FUNCTION ledger_metadata_from_text(value text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    parsed jsonb;
BEGIN
    IF ledger_trim(value) = '' THEN
        RETURN '{}';
    END IF;
    parsed := value::jsonb;
    RETURN CASE WHEN jsonb_typeof(parsed) = 'object' THEN parsed END;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- metadata (or its alias payload) as an object: null, "" and a blank string are {}, a string
-- holding an object is that object. NULL when it is anything else (the event is rejected).
CREATE OR REPLACE FUNCTION ledger_metadata_object(value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN value IS NULL THEN '{}'::jsonb ELSE CASE jsonb_typeof(value)
    WHEN 'object' THEN value
    WHEN 'null' THEN '{}'::jsonb
    WHEN 'string' THEN ledger_metadata_from_text(value #>> '{}')
END END
$$;

-- created_at as an ISO-8601 string: YYYY-MM-DD, optionally [T ]HH:MM[:SS[.fraction]] and a zone
-- (Z, +HH, +HHMM or +HH:MM, up to 15:59 as Postgres allows); no zone is UTC. The fraction
-- rounds to microseconds as Postgres rounds it. NULL when the text is not such a time or the
-- time is outside 0001-01-01 .. 9999-12-31 UTC.
CREATE OR REPLACE FUNCTION ledger_parse_time(value text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    -- Shape first (a plain match is cheap; capture groups are not), then fixed positions.
    shape CONSTANT text := '^[0-9]{4}-[0-9]{2}-[0-9]{2}'
        '([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$';
    year int; month int; day int; days int; tail text; zone_at int; zone text;
    result timestamptz;
BEGIN
    IF value IS NULL OR NOT value COLLATE "C" ~ shape THEN
        RETURN NULL;
    END IF;
    year := substr(value, 1, 4)::int;
    month := substr(value, 6, 2)::int;
    day := substr(value, 9, 2)::int;
    days := CASE WHEN month = 2 THEN CASE
            WHEN year % 4 = 0 AND (year % 100 <> 0 OR year % 400 = 0) THEN 29 ELSE 28 END
        WHEN month IN (4, 6, 9, 11) THEN 30 ELSE 31 END;
    IF year < 1 OR month NOT BETWEEN 1 AND 12 OR day NOT BETWEEN 1 AND days THEN
        RETURN NULL;
    END IF;
    IF length(value) > 10 THEN
        tail := substr(value, 12);  -- HH:MM[:SS[.f]][zone]
        IF substr(tail, 1, 2)::int > 23 OR substr(tail, 4, 2)::int > 59
            OR (substr(tail, 6, 1) = ':' AND substr(tail, 7, 2)::int > 59) THEN
            RETURN NULL;
        END IF;
        zone_at := greatest(strpos(tail, 'Z'), strpos(tail, '+'), strpos(tail, '-'));
        IF zone_at > 0 THEN
            zone := substr(tail, zone_at);
            IF zone <> 'Z' AND (substr(zone, 2, 2)::int > 15
                OR (length(zone) > 3 AND right(zone, 2)::int > 59)) THEN
                RETURN NULL;
            END IF;
        END IF;
    END IF;
    result := (value || CASE WHEN zone IS NULL THEN '+00' ELSE '' END)::timestamptz;
    IF result < '0001-01-01 00:00:00+00' OR result >= '10000-01-01 00:00:00+00' THEN
        RETURN NULL;
    END IF;
    RETURN result;
END
$$;

-- A row of oasis_events, decoded (docs/behaviour.md §1). Columns are text already; the checks left are the
-- time's range and the metadata's shape. A set-returning SQL function so that the planner
-- inlines it into the sweep's statement (OFFSET 0 keeps each step evaluated once per row).
CREATE OR REPLACE FUNCTION ledger_decode_row(
    seq bigint, id text, created_at timestamptz, vtid text, topic text, event text,
    service text, source text, status text, message text, notes text, metadata jsonb,
    tenant text, layer text, module text, kind text, title text, ref text
) RETURNS SETOF ledger_event
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT r.seq, r.id, r.created_at, r.type, r.service, r.status, r.vtid, r.message, r.title,
    r.ref, r.layer, r.module, r.kind, r.tenant, r.notes, r.metadata, r.reason,
    CASE WHEN r.reason IS NULL THEN ledger_vtid_of(r.vtid, r.metadata, r.ref, r.message) END,
    r.mapped_status,
    CASE WHEN r.reason IS NULL
        THEN ledger_key(r.created_at, ledger_priority(r.mapped_status), r.id) END COLLATE "C"
FROM (
    SELECT d.*, ledger_status_of(d.type, d.status) AS mapped_status,
        CASE
            WHEN d.id IS NULL OR d.id = '' THEN 'event has no id'
            WHEN d.created_at IS NULL THEN 'event has no created_at'
            WHEN NOT (d.created_at >= '0001-01-01 00:00:00+00'
                      AND d.created_at < '10000-01-01 00:00:00+00')
                THEN 'created_at is out of range: ' || d.created_at::text
            WHEN d.metadata IS NULL THEN 'metadata must be a JSON object, got '
                || CASE jsonb_typeof(d.raw_metadata) WHEN 'string' THEN 'a string that is not one'
                    ELSE jsonb_typeof(d.raw_metadata) END
        END AS reason
    FROM (
        SELECT seq, id, created_at,
            coalesce(nullif(topic, ''), nullif(event, '')) AS type,
            coalesce(nullif(service, ''), nullif(source, ''), 'unknown') AS service,
            nullif(status, '') AS status, nullif(vtid, '') AS vtid,
            nullif(message, '') AS message, nullif(title, '') AS title, nullif(ref, '') AS ref,
            nullif(layer, '') AS layer, nullif(module, '') AS module, nullif(kind, '') AS kind,
            nullif(tenant, '') AS tenant, nullif(notes, '') AS notes,
            ledger_metadata_object(metadata) AS metadata, metadata AS raw_metadata
        OFFSET 0
    ) AS d
    OFFSET 0
) AS r
$$;

-- An event given as JSON (a Pub/Sub message, an ingest request), decoded (docs/behaviour.md §1): the first
-- present of each field's names, null and "" absent, text fields strings, a time by the
-- grammar above; without created_at, `fallback` (the message's publish time) if given. One
-- jsonpath test checks every text field's type; jsonb_to_record takes the values; the reason
-- for a field of the wrong type is looked for only when there is one.
CREATE OR REPLACE FUNCTION ledger_decode_json(e jsonb, fallback timestamptz DEFAULT NULL,
    seq bigint DEFAULT 1)
RETURNS ledger_event
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    d ledger_event;
    r record;
    raw_time text;
    wrong text;
    value jsonb;
BEGIN
    d.seq := seq;
    IF jsonb_typeof(e) IS DISTINCT FROM 'object' THEN
        d.reason := 'event must be a JSON object, got ' || coalesce(jsonb_typeof(e), 'nothing');
        RETURN d;
    END IF;
    IF e @? '$.keyvalue() ? (@.key like_regex "^(id|created_at|createdAt|topic|event|type|service|source|status|vtid|message|title|ref|layer|module|kind|tenant|notes)$" && @.value.type() != "string" && @.value.type() != "null")' THEN
        SELECT k INTO wrong FROM jsonb_object_keys(e) AS k
        WHERE k = ANY ('{id,created_at,createdAt,topic,event,type,service,source,status,vtid,message,title,ref,layer,module,kind,tenant,notes}')
          AND jsonb_typeof(e -> k) NOT IN ('string', 'null')
        ORDER BY array_position('{id,created_at,createdAt,topic,event,type,service,source,status,vtid,message,title,ref,layer,module,kind,tenant,notes}'::text[], k)
        LIMIT 1;
        d.reason := wrong || ' must be '
            || CASE WHEN wrong IN ('created_at', 'createdAt') THEN 'an ISO-8601 string'
                ELSE 'a string' END || ', got ' || jsonb_typeof(e -> wrong);
        RETURN d;
    END IF;
    SELECT * INTO r FROM jsonb_to_record(e) AS x(id text, created_at text, "createdAt" text,
        topic text, event text, type text, service text, source text, status text, vtid text,
        message text, title text, ref text, layer text, module text, kind text, tenant text,
        notes text);
    d.id := nullif(r.id, '');
    IF d.id IS NULL THEN
        d.reason := 'event has no id';
        RETURN d;
    END IF;
    raw_time := coalesce(nullif(r.created_at, ''), nullif(r."createdAt", ''));
    IF raw_time IS NULL THEN
        d.created_at := fallback;
        IF fallback IS NULL THEN
            d.reason := 'event has no created_at';
            RETURN d;
        END IF;
    ELSE
        d.created_at := ledger_parse_time(raw_time);
        IF d.created_at IS NULL THEN
            d.reason := 'created_at is not an ISO-8601 time (YYYY-MM-DDTHH:MM:SS[.f][Z|+HH:MM]) '
                || 'between years 1 and 9999: ' || left(raw_time, 64);
            RETURN d;
        END IF;
    END IF;
    d.type := coalesce(nullif(r.topic, ''), nullif(r.event, ''), nullif(r.type, ''));
    d.service := coalesce(nullif(r.service, ''), nullif(r.source, ''), 'unknown');
    d.status := nullif(r.status, ''); d.vtid := nullif(r.vtid, '');
    d.message := nullif(r.message, ''); d.title := nullif(r.title, '');
    d.ref := nullif(r.ref, ''); d.layer := nullif(r.layer, ''); d.module := nullif(r.module, '');
    d.kind := nullif(r.kind, ''); d.tenant := nullif(r.tenant, ''); d.notes := nullif(r.notes, '');
    value := coalesce(
        CASE WHEN e -> 'metadata' NOT IN ('null', '""') THEN e -> 'metadata' END,
        CASE WHEN e -> 'payload' NOT IN ('null', '""') THEN e -> 'payload' END);
    d.metadata := ledger_metadata_object(value);
    IF d.metadata IS NULL THEN
        d.reason := CASE WHEN e -> 'metadata' NOT IN ('null', '""') THEN 'metadata' ELSE 'payload' END
            || ' must be a JSON object, got ' || CASE jsonb_typeof(value)
                WHEN 'string' THEN 'a string that is not one' ELSE jsonb_typeof(value) END;
        RETURN d;
    END IF;
    d.task_vtid := ledger_vtid_of(d.vtid, d.metadata, d.ref, d.message);
    d.mapped_status := ledger_status_of(d.type, d.status);
    d.key := ledger_key(d.created_at, ledger_priority(d.mapped_status), d.id);
    RETURN d;
END
$$;
