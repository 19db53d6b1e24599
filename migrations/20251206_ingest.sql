-- POST /api/v1/events/ingest and `python -m ledger ingest` (docs/http-api.md): an event decoded by the
-- same rules as every other, refused when it could never become a row, else stored in
-- oasis_events (the type in both topic and event, the service in both service and source: the
-- platform's readers use either name). A refusal is recorded in ledger_rejections.
--
-- Returns stored, duplicate (an event with that id is stored already) or rejected (with the
-- reason), and the event as published (docs/behaviour.md §1 names).
CREATE OR REPLACE FUNCTION ledger_ingest(payload text, received_at timestamptz)
RETURNS TABLE (outcome text, event_id text, reason text, wire jsonb)
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
            THEN 'vtid ' || quote_literal(e.vtid)
                || ' is not a valid VTID (like VTID-0521 or DEV-OASIS-0010)'
    END;
    IF refused IS NOT NULL THEN
        PERFORM ledger_reject('ingest', refused, convert_to(payload, 'UTF8'), e.id);
        RETURN QUERY SELECT 'rejected', e.id, refused, NULL::jsonb;
        RETURN;
    END IF;
    INSERT INTO oasis_events (id, created_at, vtid, topic, event, service, source, status,
        message, notes, metadata, tenant, layer, module, kind, title, ref)
    VALUES (e.id, e.created_at, e.vtid, e.type, e.type, e.service, e.service, e.status,
        e.message, e.notes, e.metadata, e.tenant, e.layer, e.module, e.kind, e.title, e.ref)
    ON CONFLICT (id) DO NOTHING;
    RETURN QUERY SELECT CASE WHEN FOUND THEN 'stored' ELSE 'duplicate' END, e.id,
        NULL::text, jsonb_strip_nulls(jsonb_build_object('id', e.id,
            'created_at', e.created_at, 'topic', e.type, 'service', e.service,
            'status', e.status, 'vtid', e.vtid, 'message', e.message, 'title', e.title,
            'ref', e.ref, 'layer', e.layer, 'module', e.module, 'kind', e.kind,
            'tenant', e.tenant, 'notes', e.notes)) || jsonb_build_object('metadata', e.metadata);
END
$$;
