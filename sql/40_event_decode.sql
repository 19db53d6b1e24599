-- Decoding an event, from a row of the log (ledger_decode_row) or from JSON (ledger_decode_json,
-- for a push and ingest), into a ledger_event: its fields, why it cannot be read (`reason`), and
-- for a readable event its VTID, status and key. Both apply one edge (docs/behaviour.md §1).

-- Gone: the decoder that took a row's nineteen columns one by one.
DROP FUNCTION IF EXISTS ledger_decode_row(bigint, text, timestamptz, text, text, text, text,
    text, text, text, text, jsonb, text, text, text, text, text, text, timestamptz);

-- created_at as an ISO-8601 string; NULL when it is not one. Digits of the fraction past the
-- 100th are dropped before Postgres rounds it (it refuses a time that long to read;
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

-- A time as event JSON writes it: UTC, six fraction digits, Z. to_json(timestamptz) would
-- follow the session's TimeZone (Europe/Amsterdam in 1850 is +00:19:32, which no ISO-8601
-- reader here takes). A time outside years 1-9999 (infinity, BC) has no such form: its text.
CREATE OR REPLACE FUNCTION ledger_time_text(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN t >= '0001-01-01 00:00:00+00' AND t < '10000-01-01 00:00:00+00'
    THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ELSE t::text END
$$;

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

CREATE OR REPLACE FUNCTION ledger_event_json(e ledger_event) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT ledger_event_json(id => e.id, created_at => e.created_at, type => e.type,
    service => e.service, status => e.status, vtid => e.vtid, message => e.message,
    title => e.title, ref => e.ref, layer => e.layer, module => e.module, kind => e.kind,
    tenant => e.tenant, notes => e.notes, metadata => e.metadata)
$$;

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

-- Why an event breaks the edge, or NULL: 256 KiB of canonical JSON, 64 levels, numbers of at
-- most 1,000 digits, and at most 256 keys in its metadata (a row's own bound, 512 registers,
-- is ledger_cap_registers').
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

-- How far after its receipt an event's created_at may lie (default 5 minutes).
CREATE OR REPLACE FUNCTION ledger_max_future() RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT make_interval(secs => coalesce((SELECT value::double precision FROM ledger_settings
    WHERE name = 'max_future_seconds'), 300))
$$;

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

-- The content digest of a decoded event (ledger_digest of its fields).
CREATE OR REPLACE FUNCTION ledger_event_digest(e ledger_event) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT ledger_digest(e.type, e.service, e.status, e.vtid, e.message, e.title, e.ref, e.layer,
    e.module, e.kind, e.tenant, e.notes, e.metadata)
$$;

-- A row of oasis_events, decoded: its fields as the event's JSON names them (topic or event is
-- the type, service or source the service, "" is absent); the reason it cannot be read; for a
-- readable event its VTID, status and key. The platform's table may type a column otherwise
-- (uuid, varchar): each is read as text. One SELECT in LANGUAGE sql, so the caller's query
-- inlines it: the sweep decodes up to 50,000 rows in one statement. Each OFFSET 0 keeps a step
-- from being merged into the next, which would compute its expressions once per use.
CREATE OR REPLACE FUNCTION ledger_decode_row(o oasis_events) RETURNS SETOF ledger_event
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT judged.seq, judged.id, judged.created_at, judged.type, judged.service, judged.status,
    judged.vtid, judged.message, judged.title, judged.ref, judged.layer, judged.module,
    judged.kind, judged.tenant, judged.notes, judged.metadata, judged.reason,
    CASE WHEN judged.reason IS NULL
        THEN ledger_vtid_of(judged.vtid, judged.metadata, judged.ref, judged.message)
    END AS task_vtid,
    judged.mapped_status,
    CASE WHEN judged.reason IS NULL
        THEN ledger_key(judged.created_at, ledger_priority(judged.mapped_status), judged.id)
    END COLLATE "C" AS key
FROM (
    SELECT fields.*, ledger_status_of(fields.type, fields.status) AS mapped_status,
        CASE
            WHEN fields.id IS NULL OR fields.id = '' THEN 'event has no id'
            WHEN fields.created_at IS NULL THEN 'event has no created_at'
            WHEN NOT (fields.created_at >= '0001-01-01 00:00:00+00'
                      AND fields.created_at < '10000-01-01 00:00:00+00')
                THEN 'created_at is out of range: ' || ledger_time_text(fields.created_at)
            -- (SELECT …): the tolerance is read once per statement (an InitPlan), not per row.
            WHEN ledger_future_reason_within(fields.created_at, fields.stored_at,
                    (SELECT ledger_max_future())) IS NOT NULL
                THEN ledger_future_reason_within(fields.created_at, fields.stored_at,
                    (SELECT ledger_max_future()))
            WHEN fields.metadata IS NULL THEN 'metadata must be a JSON object, got '
                || CASE jsonb_typeof(fields.raw_metadata)
                    WHEN 'string' THEN 'a string that is not one'
                    ELSE jsonb_typeof(fields.raw_metadata) END
            WHEN ledger_edge_suspect(fields.metadata, octet_length(concat(fields.id,
                fields.type, fields.service, fields.status, fields.vtid, fields.message,
                fields.title, fields.ref, fields.layer, fields.module, fields.kind,
                fields.tenant, fields.notes)))
                THEN ledger_edge_reason(ledger_event_json(id => fields.id,
                    created_at => fields.created_at, type => fields.type,
                    service => fields.service, status => fields.status, vtid => fields.vtid,
                    message => fields.message, title => fields.title, ref => fields.ref,
                    layer => fields.layer, module => fields.module, kind => fields.kind,
                    tenant => fields.tenant, notes => fields.notes,
                    metadata => fields.metadata)::text, fields.metadata)
        END AS reason
    FROM (
        SELECT o.seq, o.id::text AS id, o.created_at,
            coalesce(nullif(o.topic::text, ''), nullif(o.event::text, '')) AS type,
            coalesce(nullif(o.service::text, ''), nullif(o.source::text, ''), 'unknown')
                AS service,
            nullif(o.status::text, '') AS status, nullif(o.vtid::text, '') AS vtid,
            nullif(o.message::text, '') AS message, nullif(o.title::text, '') AS title,
            nullif(o.ref::text, '') AS ref, nullif(o.layer::text, '') AS layer,
            nullif(o.module::text, '') AS module, nullif(o.kind::text, '') AS kind,
            nullif(o.tenant::text, '') AS tenant, nullif(o.notes::text, '') AS notes,
            ledger_metadata_object(o.metadata) AS metadata, o.metadata AS raw_metadata,
            o.stored_at
        OFFSET 0
    ) AS fields
    OFFSET 0
) AS judged
$$;

-- A row of the log as JSON, for the record of its rejection: every column but the log's own
-- bookkeeping, created_at written as ledger_time_text writes it.
CREATE OR REPLACE FUNCTION ledger_row_json(o oasis_events) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT to_jsonb(o) - '{tx_id,seq,stored_at}'::text[]
    || jsonb_build_object('created_at', ledger_time_text(o.created_at))
$$;

-- An event given as JSON, decoded. `fallback` is the time of an event without created_at
-- (ingest's receipt); none, and such an event is refused. When both metadata and payload are
-- present, payload is checked too, as every other alias is.
-- About 90 lines: each check returns at once with its reason, in the order the reference
-- (ledger/events.py) checks, so the first failing check is the one reported; as separate
-- functions each would be one more call per delivery on the real-time path.
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
    string_fields CONSTANT jsonb := to_jsonb(ledger_event_string_fields());
BEGIN
    d.seq := seq;
    IF jsonb_typeof(e) IS DISTINCT FROM 'object' THEN
        d.reason := 'event must be a JSON object, got ' || coalesce(jsonb_typeof(e), 'nothing');
        RETURN d;
    END IF;
    -- One jsonpath walk finds whether any string field holds something else (a comparison
    -- with $names[*] is true when one of them matches); only then is the first one looked up.
    IF jsonb_path_exists(e, '$.keyvalue() ? (@.key == $names[*]
            && @.value.type() != "string" && @.value.type() != "null")',
            jsonb_build_object('names', string_fields)) THEN
        SELECT k INTO wrong FROM jsonb_object_keys(e) AS k
        WHERE k = ANY (ledger_event_string_fields())
          AND jsonb_typeof(e -> k) NOT IN ('string', 'null')
        ORDER BY array_position(ledger_event_string_fields(), k)
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
