-- Ingest's answer for a refused event without an id of its own: no id (ledger_ingest_event makes
-- one up to decode the event, and answered with it, as if something had been stored).
CREATE OR REPLACE FUNCTION ledger_ingest_request(payload text, received_at timestamptz)
RETURNS TABLE (outcome text, event_id text, reason text, wire text, event_type text)
LANGUAGE sql AS $$
SELECT r.outcome,
    CASE WHEN r.outcome <> 'rejected' OR coalesce(payload::jsonb ->> 'id', '') <> ''
        THEN r.event_id END,
    r.reason, r.wire, r.event_type
FROM ledger_ingest_event(payload, received_at) AS r
$$;
