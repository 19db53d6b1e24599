-- Ingest: events given over HTTP or the CLI, stored in the log.

-- Gone: ingest without the caller.
DROP FUNCTION IF EXISTS ledger_ingest_request(text, timestamptz);
DROP FUNCTION IF EXISTS ledger_ingest_event(text, timestamptz);

-- One event given to POST /api/v1/events/ingest: decoded by the rules every path uses, refused
-- (and recorded) when it cannot be read, is from the future, claims the writer's own identity
-- or reuses an id that holds other content (outcome conflict: 409); else stored with the time
-- it was received as stored_at, and who gave it as ingested_by (`caller`, else the database
-- user). Returns the stored event's canonical JSON text (`wire`), which
-- is what ingest publishes: never a value a client parses and prints again (1.50 would be 1.5).
-- About 70 lines: ingest's own checks in the order they are reported, then the store, then
-- what a taken id means; each step needs the decoded event of the one before.
CREATE OR REPLACE FUNCTION ledger_ingest_event(payload text, received_at timestamptz,
    caller text DEFAULT NULL)
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
        message, notes, metadata, tenant, layer, module, kind, title, ref, stored_at,
        ingested_by)
    VALUES (e.id, e.created_at, e.vtid, e.type, e.type, e.service, e.service, e.status,
        e.message, e.notes, e.metadata, e.tenant, e.layer, e.module, e.kind, e.title, e.ref,
        coalesce(received_at, now()), coalesce(caller, session_user))
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
    LATERAL ledger_decode_row(o) AS d
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

-- Ingest's answer for a refused event without an id of its own: no id (ledger_ingest_event makes
-- one up to decode the event, and answered with it, as if something had been stored).
CREATE OR REPLACE FUNCTION ledger_ingest_request(payload text, received_at timestamptz,
    caller text DEFAULT NULL)
RETURNS TABLE (outcome text, event_id text, reason text, wire text, event_type text)
LANGUAGE sql AS $$
SELECT r.outcome,
    CASE WHEN r.outcome <> 'rejected' OR coalesce(payload::jsonb ->> 'id', '') <> ''
        THEN r.event_id END,
    r.reason, r.wire, r.event_type
FROM ledger_ingest_event(payload, received_at, caller) AS r
$$;
