-- [from 20251208_one_edge.sql]
-- created_at as an ISO-8601 string (see 20251202_fold_rules.sql). New: digits of the fraction
-- past the 100th are dropped before Postgres rounds it (it refuses a time that long to read;
-- `ledger/events.py` drops the same digits), so a long fraction is a time, not an error.
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
    IF length(value) > 120 THEN
        value := regexp_replace(value COLLATE "C", '^(.{20}[0-9]{100})[0-9]+', '\1');
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
    -- The text carries its zone (or +00), so the session's TimeZone does not enter.
    result := (value || CASE WHEN zone IS NULL THEN '+00' ELSE '' END)::timestamptz;
    IF result < '0001-01-01 00:00:00+00' OR result >= '10000-01-01 00:00:00+00' THEN
        RETURN NULL;
    END IF;
    RETURN result;
END
$$;

-- [from 20251208_one_edge.sql]
-- A time as event JSON writes it: UTC, six fraction digits, Z. to_json(timestamptz) would
-- follow the session's TimeZone (Europe/Amsterdam in 1850 is +00:19:32, which no ISO-8601
-- reader here takes). A time outside years 1-9999 (infinity, BC) has no such form: its text.
CREATE OR REPLACE FUNCTION ledger_time_text(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN t >= '0001-01-01 00:00:00+00' AND t < '10000-01-01 00:00:00+00'
    THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ELSE t::text END
$$;

-- [from 20251208_one_edge.sql]
-- The decoded event's canonical JSON text: what ingest publishes (so the pushed copy of an
-- ingested event is the stored event, numbers as jsonb keeps them), and what the edge's limits
-- measure for a row of the log. `ledger/events.py` (event_json) writes the same text.
CREATE OR REPLACE FUNCTION ledger_event_json(id text, created_at timestamptz, type text,
    service text, status text, vtid text, message text, title text, ref text, layer text,
    module text, kind text, tenant text, notes text, metadata jsonb)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT jsonb_strip_nulls(jsonb_build_object('id', id, 'created_at', ledger_time_text(created_at),
    'topic', type, 'service', service, 'status', status, 'vtid', vtid, 'message', message,
    'title', title, 'ref', ref, 'layer', layer, 'module', module, 'kind', kind,
    'tenant', tenant, 'notes', notes)) || jsonb_build_object('metadata', metadata)
$$;

-- [from 20251208_one_edge.sql]
CREATE OR REPLACE FUNCTION ledger_event_json(e ledger_event) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT ledger_event_json(id => e.id, created_at => e.created_at, type => e.type,
    service => e.service, status => e.status, vtid => e.vtid, message => e.message,
    title => e.title, ref => e.ref, layer => e.layer, module => e.module, kind => e.kind,
    tenant => e.tenant, notes => e.notes, metadata => e.metadata)
$$;

-- [from 20251208_one_edge.sql]
-- Can this event break a limit? False for nearly every event, at the price of printing its
-- metadata once. Its canonical text is at most the metadata's text, each text field escaped
-- (6 bytes a byte at most) and 512 bytes of names and punctuation: 1,000 + 6 x 43,000 + 512 is
-- under 256 KiB. A 1,001-digit number needs 1,001 bytes of metadata. The depth test is one
-- jsonpath walk (cheaper than counting brackets in the text).
CREATE OR REPLACE FUNCTION ledger_edge_suspect(metadata jsonb, text_bytes integer)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT octet_length(metadata::text) > 1000 OR text_bytes > 43000
    OR jsonb_path_exists(metadata,
        'strict $.**{63 to last} ? (@.type() == "object" || @.type() == "array")')
$$;

-- [from 20251211_key_caps.sql]
-- A row is bounded whatever its events (docs/behaviour.md §4): an event carries at most 256
-- metadata keys (more: rejected, see ledger_edge_reason), and a row keeps at most 512 metadata
-- registers, those set by the newest events (ties by name). Which registers a row keeps is a
-- function of the set of its events: the top 512 of a union is the top 512 of the union of
-- each side's top 512, so capping after every merge keeps the fold order-independent. Before,
-- 40 pushes of 19,000 new keys each grew one row to 760,000 keys.

-- The edge's limits (see 20251208_one_edge.sql), and at most 256 keys in an event's metadata.
CREATE OR REPLACE FUNCTION ledger_edge_reason(event_text text, metadata jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    keys bigint;
BEGIN
    IF octet_length(event_text) > 262144 THEN
        RETURN 'event JSON is ' || octet_length(event_text)
            || ' bytes; the limit is 262144 (256 KiB)';
    END IF;
    IF jsonb_path_exists(metadata,
        'strict $.**{63 to last} ? (@.type() == "object" || @.type() == "array")') THEN
        RETURN 'event JSON nests deeper than 64 levels';
    END IF;
    IF EXISTS (SELECT 1
        FROM jsonb_path_query(metadata, 'strict $.** ? (@.type() == "number")') AS n(v)
        WHERE length(translate(n.v::text, '-.', '')) > 1000) THEN
        RETURN 'event JSON holds a number of more than 1000 digits';
    END IF;
    keys := (SELECT count(*) FROM jsonb_object_keys(metadata));
    IF keys > 256 THEN
        RETURN 'metadata has ' || keys || ' keys; the limit is 256';
    END IF;
    RETURN NULL;
END
$$;

-- [from 20251209_hardening.sql]
-- How far after its receipt an event's created_at may lie (default 5 minutes).
CREATE OR REPLACE FUNCTION ledger_max_future() RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT make_interval(secs => coalesce((SELECT value::double precision FROM ledger_settings
    WHERE name = 'max_future_seconds'), 300))
$$;

-- [from 20251215_group_commit_cheaper.sql]
-- Group commit, cheaper per batch (measured with track_functions: 3.7 ms a batch of 8, of
-- which the decoder ran three times per event, once per field the first statement read, and
-- the tolerance for future times was read from ledger_settings once per event).

-- Why an event dated after its receipt (plus `tolerance`) is refused, or NULL: as
-- ledger_future_reason, with the tolerance read once by the caller.
CREATE OR REPLACE FUNCTION ledger_future_reason_within(created_at timestamptz,
    received_at timestamptz, tolerance interval) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN created_at > received_at + tolerance
    THEN 'created_at ' || ledger_time_text(created_at) || ' is more than '
        || extract(epoch FROM tolerance)::bigint || ' s after the event was received ('
        || ledger_time_text(received_at) || '): a time from the future would freeze its task'
END
$$;

-- [from 20251215_group_commit_cheaper.sql]
-- The same for a caller that judges one event at a time (the event function, ingest): plpgsql,
-- whose plan of the settings' read is kept by the session (a SQL function called from plpgsql
-- is planned again at every call: 150 µs a call, measured).
CREATE OR REPLACE FUNCTION ledger_future_reason(created_at timestamptz,
    received_at timestamptz) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    tolerance interval;
BEGIN
    IF created_at IS NULL OR received_at IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT make_interval(secs => value::double precision) INTO tolerance
    FROM ledger_settings WHERE name = 'max_future_seconds';
    RETURN ledger_future_reason_within(created_at, received_at,
        coalesce(tolerance, interval '300 seconds'));
END
$$;

-- [from 20251209_hardening.sql]
-- The content digest of a decoded event (ledger_digest of its fields).
CREATE OR REPLACE FUNCTION ledger_event_digest(e ledger_event) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT ledger_digest(e.type, e.service, e.status, e.vtid, e.message, e.title, e.ref, e.layer,
    e.module, e.kind, e.tenant, e.notes, e.metadata)
$$;

-- [from 20251215_group_commit_cheaper.sql]
-- A row of the log, decoded (see 20251209_hardening.sql): the tolerance read once per statement.
CREATE OR REPLACE FUNCTION ledger_decode_row(
    seq bigint, id text, created_at timestamptz, vtid text, topic text, event text,
    service text, source text, status text, message text, notes text, metadata jsonb,
    tenant text, layer text, module text, kind text, title text, ref text,
    stored_at timestamptz
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
                THEN 'created_at is out of range: ' || ledger_time_text(d.created_at)
            -- (SELECT …): the tolerance is read once per statement (an InitPlan), not per row.
            WHEN ledger_future_reason_within(d.created_at, d.stored_at,
                    (SELECT ledger_max_future())) IS NOT NULL
                THEN ledger_future_reason_within(d.created_at, d.stored_at,
                    (SELECT ledger_max_future()))
            WHEN d.metadata IS NULL THEN 'metadata must be a JSON object, got '
                || CASE jsonb_typeof(d.raw_metadata) WHEN 'string' THEN 'a string that is not one'
                    ELSE jsonb_typeof(d.raw_metadata) END
            WHEN ledger_edge_suspect(d.metadata, octet_length(concat(d.id,
                d.type, d.service, d.status, d.vtid, d.message, d.title, d.ref, d.layer,
                d.module, d.kind, d.tenant, d.notes)))
                THEN ledger_edge_reason(ledger_event_json(id => d.id,
                    created_at => d.created_at, type => d.type, service => d.service,
                    status => d.status, vtid => d.vtid, message => d.message, title => d.title,
                    ref => d.ref, layer => d.layer, module => d.module, kind => d.kind,
                    tenant => d.tenant, notes => d.notes, metadata => d.metadata)::text,
                    d.metadata)
        END AS reason
    FROM (
        SELECT seq, id, created_at,
            coalesce(nullif(topic, ''), nullif(event, '')) AS type,
            coalesce(nullif(service, ''), nullif(source, ''), 'unknown') AS service,
            nullif(status, '') AS status, nullif(vtid, '') AS vtid,
            nullif(message, '') AS message, nullif(title, '') AS title, nullif(ref, '') AS ref,
            nullif(layer, '') AS layer, nullif(module, '') AS module, nullif(kind, '') AS kind,
            nullif(tenant, '') AS tenant, nullif(notes, '') AS notes,
            ledger_metadata_object(metadata) AS metadata, metadata AS raw_metadata, stored_at
        OFFSET 0
    ) AS d
    OFFSET 0
) AS r
$$;

-- [from 20251208_one_edge.sql]
-- An event given as JSON, decoded (see 20251202_fold_rules.sql). New: when both metadata and
-- payload are present, payload is checked too (as every other alias is); the edge's limits.
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
    has_metadata boolean;
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
    has_metadata := e -> 'metadata' NOT IN ('null', '""');
    value := CASE WHEN has_metadata THEN e -> 'metadata'
        WHEN e -> 'payload' NOT IN ('null', '""') THEN e -> 'payload' END;
    d.metadata := ledger_metadata_object(value);
    IF d.metadata IS NULL THEN
        d.reason := CASE WHEN has_metadata THEN 'metadata' ELSE 'payload' END
            || ' must be a JSON object, got ' || CASE jsonb_typeof(value)
                WHEN 'string' THEN 'a string that is not one' ELSE jsonb_typeof(value) END;
        RETURN d;
    END IF;
    IF has_metadata AND e -> 'payload' NOT IN ('null', '""')
        AND ledger_metadata_object(e -> 'payload') IS NULL THEN
        d.reason := 'payload must be a JSON object, got ' || CASE jsonb_typeof(e -> 'payload')
            WHEN 'string' THEN 'a string that is not one' ELSE jsonb_typeof(e -> 'payload') END;
        RETURN d;
    END IF;
    IF ledger_edge_suspect(d.metadata, octet_length(concat(d.id, d.type,
        d.service, d.status, d.vtid, d.message, d.title, d.ref, d.layer, d.module, d.kind,
        d.tenant, d.notes))) THEN
        d.reason := ledger_edge_reason(ledger_event_json(d)::text, d.metadata);
        IF d.reason IS NOT NULL THEN
            RETURN d;
        END IF;
    END IF;
    d.task_vtid := ledger_vtid_of(d.vtid, d.metadata, d.ref, d.message);
    d.mapped_status := ledger_status_of(d.type, d.status);
    d.key := ledger_key(d.created_at, ledger_priority(d.mapped_status), d.id);
    RETURN d;
END
$$;
