-- One edge for every path (docs/behaviour.md §1): the same limits on a pushed event, a row of
-- the log and the reference fold; and no rule or read that a server or session setting
-- (TimeZone, DateStyle, collation) can change. Re-creates the functions whose behaviour changes.

-- A VTID is at most 64 characters (a longer one could not be indexed either).
CREATE OR REPLACE FUNCTION ledger_vtid_is_valid(vtid text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT length(vtid) <= 64 AND vtid COLLATE "C" ~ '^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-[0-9]+$'
$$;

-- A time as event JSON writes it: UTC, six fraction digits, Z. to_json(timestamptz) would
-- follow the session's TimeZone (Europe/Amsterdam in 1850 is +00:19:32, which no ISO-8601
-- reader here takes). A time outside years 1-9999 (infinity, BC) has no such form: its text.
CREATE OR REPLACE FUNCTION ledger_time_text(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN t >= '0001-01-01 00:00:00+00' AND t < '10000-01-01 00:00:00+00'
    THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ELSE t::text END
$$;

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

-- The edge's limits on a decoded event (docs/behaviour.md §1), measured on its canonical JSON:
-- at most 256 KiB, no number of more than 1,000 digits as jsonb prints it, at most 64 levels
-- (the event is level 1, its metadata 2, so a container at jsonpath level 63 of the metadata
-- is level 65). Called only for events the cheap tests in ledger_edge_suspect cannot clear.
CREATE OR REPLACE FUNCTION ledger_edge_reason(event_text text, metadata jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
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
    RETURN NULL;
END
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

-- A row of oasis_events, decoded (docs/behaviour.md §1). As in 20251202_fold_rules.sql, plus the
-- edge's limits and a reason that no session setting changes.
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
                THEN 'created_at is out of range: ' || ledger_time_text(d.created_at)
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
            ledger_metadata_object(metadata) AS metadata, metadata AS raw_metadata
        OFFSET 0
    ) AS d
    OFFSET 0
) AS r
$$;

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

-- POST /api/v1/events/ingest (was ledger_ingest in 20251206_ingest.sql). New: the event to
-- publish is its canonical JSON *text* (`wire`), never a value a client parses and prints
-- again (1.50 would become 1.5), and its type is returned for the message's attributes.
DROP FUNCTION IF EXISTS ledger_ingest(text, timestamptz);
CREATE OR REPLACE FUNCTION ledger_ingest_event(payload text, received_at timestamptz)
RETURNS TABLE (outcome text, event_id text, reason text, wire text, event_type text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    body jsonb := payload::jsonb;
    e ledger_event;
    refused text;
BEGIN
    IF jsonb_typeof(body) = 'object' AND coalesce(body -> 'id' IN ('null', '""'), true) THEN
        body := body || jsonb_build_object('id', gen_random_uuid()::text);
    END IF;
    e := ledger_decode_json(body, received_at);
    refused := CASE
        WHEN e.reason IS NOT NULL THEN e.reason
        WHEN coalesce(ledger_trim(e.vtid), '') = '' THEN 'vtid is required'
        WHEN coalesce(ledger_trim(e.type), '') = '' THEN 'type is required (or topic, event)'
        WHEN coalesce(ledger_trim(body ->> 'source'), '') = ''
         AND coalesce(ledger_trim(body ->> 'service'), '') = ''
            THEN 'source is required (or service)'
        WHEN coalesce(ledger_trim(e.status), '') = '' THEN 'status is required'
        WHEN coalesce(ledger_trim(e.message), '') = '' THEN 'message is required'
        WHEN ledger_vtid_checked(ledger_vtid_normalise(e.vtid)) IS NULL
            THEN 'vtid ' || quote_literal(left(e.vtid, 100))
                || ' is not a valid VTID (like VTID-0521 or DEV-OASIS-0010; at most 64 characters)'
    END;
    IF refused IS NOT NULL THEN
        PERFORM ledger_reject('ingest', refused, convert_to(payload, 'UTF8'), e.id);
        RETURN QUERY SELECT 'rejected', e.id, refused, NULL::text, NULL::text;
        RETURN;
    END IF;
    INSERT INTO oasis_events (id, created_at, vtid, topic, event, service, source, status,
        message, notes, metadata, tenant, layer, module, kind, title, ref)
    VALUES (e.id, e.created_at, e.vtid, e.type, e.type, e.service, e.service, e.status,
        e.message, e.notes, e.metadata, e.tenant, e.layer, e.module, e.kind, e.title, e.ref)
    ON CONFLICT (id) DO NOTHING;
    RETURN QUERY SELECT CASE WHEN FOUND THEN 'stored' ELSE 'duplicate' END, e.id,
        NULL::text, ledger_event_json(e)::text, e.type;
END
$$;

-- The sweep's batch (see 20251205_sweep_batch.sql). New: a rejected row's raw copy writes its
-- time whatever the session's TimeZone; and an event that shares (time, priority, id) with the
-- row's newest or founding event is compared with its digest, as the fold compares it, so
-- whether it counts as updated or stale no longer depends on chance.
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
