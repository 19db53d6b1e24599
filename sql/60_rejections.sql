-- Rejected events (docs/behaviour.md §6): recorded once per source and payload, never
-- dropped silently, pruned after the retention.

-- A rejection whose payload the caller already cut to its prefix (a push of many megabytes
-- need not travel whole to be recorded): the full size, its SHA-256 and the fingerprint (of
-- source and full payload, so redeliveries are recorded once) come with it.
CREATE OR REPLACE FUNCTION ledger_reject_digested(source text, reason text,
    payload_prefix bytea, payload_size bigint, payload_sha256 text, payload_fingerprint text,
    event_id text, message_id text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_rejections AS r (source, reason, event_id, message_id, raw, raw_size,
        raw_sha256, fingerprint)
    VALUES (source, left(reason, 2000), left(event_id, 500), left(message_id, 500),
        substring(payload_prefix FROM 1 FOR 65536), payload_size, payload_sha256,
        payload_fingerprint)
    ON CONFLICT (fingerprint) DO NOTHING;
END
$$;

-- A rejected event, kept with (the first 64 KiB of) its raw payload: one row per
-- (source, payload).
CREATE OR REPLACE FUNCTION ledger_reject(source text, reason text, raw bytea, event_id text,
    message_id text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_reject_digested(source, reason, substring(raw FROM 1 FOR 65536),
        octet_length(raw), encode(sha256(raw), 'hex'),
        encode(sha256(convert_to(source, 'UTF8') || '\x00'::bytea || raw), 'hex'),
        event_id, message_id);
END
$$;

-- Rejections older than the retention, removed a bounded number at a time (the sweep calls
-- this after each run; a backlog goes in a few runs). Returns how many went.
CREATE OR REPLACE FUNCTION ledger_prune_rejections(max_rows integer DEFAULT 10000)
RETURNS bigint
LANGUAGE sql AS $$
WITH gone AS (
    DELETE FROM ledger_rejections WHERE id IN (
        SELECT id FROM ledger_rejections
        WHERE received_at < now() - make_interval(days => coalesce((SELECT value::integer
            FROM ledger_settings WHERE name = 'rejections_retention_days'), 30))
        ORDER BY id LIMIT max_rows)
    RETURNING 1
)
SELECT count(*) FROM gone
$$;
