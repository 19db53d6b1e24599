-- Hardening (docs/behaviour.md §1): times from the future are refused, by stored times only;
-- ingest refuses the writer's own identity and answers a conflict for an id that holds other
-- content; the writer's own ledger_sync events are listed by log position.

-- When each event was stored: the time a future-dated event is judged against (and the
-- sweep's lag is measured from). Existing rows take the time of this migration.
ALTER TABLE oasis_events ADD COLUMN IF NOT EXISTS stored_at timestamptz NOT NULL DEFAULT now();

-- Settings every path reads alike (a process's environment could differ from another's).
CREATE TABLE IF NOT EXISTS ledger_settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO ledger_settings (name, value) VALUES ('max_future_seconds', '300')
ON CONFLICT (name) DO NOTHING;

-- How far after its receipt an event's created_at may lie (default 5 minutes).
CREATE OR REPLACE FUNCTION ledger_max_future() RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT make_interval(secs => coalesce((SELECT value::double precision FROM ledger_settings
    WHERE name = 'max_future_seconds'), 300))
$$;

-- Why an event dated after its receipt (plus the tolerance) is refused, or NULL. Received is
-- the time the log stored it, or a push's publish time: never now(), so every path and every
-- rebuild decide alike. Without a receipt time (a direct call) there is nothing to judge by.
CREATE OR REPLACE FUNCTION ledger_future_reason(created_at timestamptz,
    received_at timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN created_at > received_at + ledger_max_future()
    THEN 'created_at ' || ledger_time_text(created_at) || ' is more than '
        || extract(epoch FROM ledger_max_future())::bigint || ' s after the event was received ('
        || ledger_time_text(received_at) || '): a time from the future would freeze its task'
END
$$;

-- The content digest of a decoded event (ledger_digest of its fields).
CREATE OR REPLACE FUNCTION ledger_event_digest(e ledger_event) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT ledger_digest(e.type, e.service, e.status, e.vtid, e.message, e.title, e.ref, e.layer,
    e.module, e.kind, e.tenant, e.notes, e.metadata)
$$;

-- A row of oasis_events, decoded (see 20251208_one_edge.sql), now with the time it was stored.
DROP FUNCTION IF EXISTS ledger_decode_row(bigint, text, timestamptz, text, text, text, text,
    text, text, text, text, jsonb, text, text, text, text, text, text);
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
            WHEN ledger_future_reason(d.created_at, d.stored_at) IS NOT NULL
                THEN ledger_future_reason(d.created_at, d.stored_at)
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


-- The sweep's batch (see 20251208_one_edge.sql), deciding future times by when each event was
-- stored.
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
        o.kind::text, o.title::text, o.ref::text, o.stored_at) AS d
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


-- Ingest (see 20251208_one_edge.sql). New: refuses a time from the future, the writer's own
-- identity, and an id that holds other content (outcome conflict: 409); stores the time it
-- received the event as stored_at.
CREATE OR REPLACE FUNCTION ledger_ingest_event(payload text, received_at timestamptz)
RETURNS TABLE (outcome text, event_id text, reason text, wire text, event_type text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    body jsonb := payload::jsonb;
    e ledger_event;
    refused text;
    new_digest text;
    stored_digest text;
    stored_at timestamptz;
BEGIN
    IF jsonb_typeof(body) = 'object' AND coalesce(body -> 'id' IN ('null', '""'), true) THEN
        body := body || jsonb_build_object('id', gen_random_uuid()::text);
    END IF;
    e := ledger_decode_json(body, received_at);
    refused := CASE
        WHEN e.reason IS NOT NULL THEN e.reason
        WHEN ledger_future_reason(e.created_at, received_at) IS NOT NULL
            THEN ledger_future_reason(e.created_at, received_at)
        WHEN 'oasis-projector' IN (body ->> 'service', body ->> 'source')
          OR 'ledger_sync' IN (body ->> 'topic', body ->> 'event', body ->> 'type')
            THEN 'the writer''s own identity (service oasis-projector, type ledger_sync) is '
                || 'not for producers'
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
        message, notes, metadata, tenant, layer, module, kind, title, ref, stored_at)
    VALUES (e.id, e.created_at, e.vtid, e.type, e.type, e.service, e.service, e.status,
        e.message, e.notes, e.metadata, e.tenant, e.layer, e.module, e.kind, e.title, e.ref,
        coalesce(received_at, now()))
    ON CONFLICT (id) DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT 'stored', e.id, NULL::text, ledger_event_json(e)::text, e.type;
        RETURN;
    END IF;
    -- The id is taken: the same event again (a retry) is a duplicate; other content is a
    -- conflict, refused and recorded. A request without created_at takes its receipt time,
    -- so a retry of it compares by content alone.
    new_digest := ledger_event_digest(e);
    SELECT ledger_event_digest(d), d.created_at INTO stored_digest, stored_at
    FROM oasis_events AS o,
    LATERAL ledger_decode_row(o.seq, o.id::text, o.created_at, o.vtid::text, o.topic::text,
        o.event::text, o.service::text, o.source::text, o.status::text, o.message::text,
        o.notes::text, o.metadata, o.tenant::text, o.layer::text, o.module::text,
        o.kind::text, o.title::text, o.ref::text, NULL) AS d
    WHERE o.id::text = e.id;
    IF stored_digest IS NOT DISTINCT FROM new_digest AND (stored_at = e.created_at
        OR coalesce(body ->> 'created_at', body ->> 'createdAt', '') = '') THEN
        RETURN QUERY SELECT 'duplicate', e.id, NULL::text, NULL::text, e.type;
        RETURN;
    END IF;
    refused := 'id ' || quote_literal(left(e.id, 100)) || ' is taken by an event with other '
        || 'content (stored digest ' || coalesce(stored_digest, 'unreadable')
        || ', this one ' || new_digest || ')';
    PERFORM ledger_reject('ingest', refused, convert_to(payload, 'UTF8'), e.id);
    RETURN QUERY SELECT 'conflict', e.id, refused, NULL::text, e.type;
END
$$;


-- The real-time path (see 20251204_fold_apply.sql): one pushed event. New: an event dated
-- more than the tolerance after its publish time is rejected.
CREATE OR REPLACE FUNCTION ledger_apply_event(payload text, message_id text,
    publish_time timestamptz, delivery_attempt integer)
RETURNS TABLE (outcome text, vtid text, event_id text, reason text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    e ledger_event := ledger_decode_json(payload::jsonb, publish_time);
    written record;
BEGIN
    IF e.reason IS NULL THEN
        e.reason := ledger_future_reason(e.created_at, publish_time);
    END IF;
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

-- The writer's own ledger_sync events, newest by log position (a producer's created_at, even
-- one from the future, cannot push them aside).
DROP INDEX IF EXISTS oasis_events_recent_syncs;
CREATE INDEX IF NOT EXISTS oasis_events_recent_syncs_by_position
    ON oasis_events (tx_id DESC, seq DESC) WHERE topic = 'ledger_sync';

-- ledger_settings is read by both roles (see 20251207_roles.sql, which this redefines).
CREATE OR REPLACE FUNCTION ledger_grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s text := current_schema();
    rejections_seq text := pg_get_serial_sequence(format('%I.ledger_rejections', s), 'id');
    events_seq text := pg_get_serial_sequence(format('%I.oasis_events', s), 'seq');
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO vtid_ledger_writer, vtid_ledger_operator', s);
    EXECUTE format('GRANT SELECT ON %I.oasis_events TO vtid_ledger_writer', s);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I.vtid_ledger, %I.projector_progress '
        'TO vtid_ledger_writer, vtid_ledger_operator', s, s);
    EXECUTE format('GRANT SELECT, INSERT ON %I.ledger_rejections '
        'TO vtid_ledger_writer, vtid_ledger_operator', s);
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO vtid_ledger_writer, vtid_ledger_operator',
        rejections_seq);
    EXECUTE format('GRANT SELECT, INSERT ON %I.oasis_events TO vtid_ledger_operator', s);
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO vtid_ledger_operator', events_seq);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I.projection_offsets '
        'TO vtid_ledger_operator', s);
    EXECUTE format('GRANT DELETE ON %I.vtid_ledger TO vtid_ledger_operator', s);
    EXECUTE format('GRANT SELECT ON %I.ledger_settings '
        'TO vtid_ledger_writer, vtid_ledger_operator', s);
END
$$;

DO $$
BEGIN
    IF ledger_ensure_roles() THEN
        PERFORM ledger_grant_roles();
    END IF;
END
$$;
