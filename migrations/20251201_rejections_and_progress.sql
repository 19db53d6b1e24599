-- Rejected events, kept with their raw payload; nothing is dropped silently.
CREATE TABLE IF NOT EXISTS ledger_rejections (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,
    reason      text NOT NULL,
    event_id    text,
    message_id  text,
    raw         bytea NOT NULL,
    -- Pub/Sub redelivers: one row per distinct (source, payload).
    fingerprint text NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS ledger_rejections_received_at ON ledger_rejections (received_at);

-- The real-time path's counters (projector vtid_ledger_sync), spread over shards so that
-- concurrent instances do not all queue on one row.
CREATE TABLE IF NOT EXISTS projector_progress (
    projector_name    text NOT NULL,
    shard             smallint NOT NULL,
    events_processed  bigint NOT NULL DEFAULT 0,
    created           bigint NOT NULL DEFAULT 0,
    updated           bigint NOT NULL DEFAULT 0,
    skipped           bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    last_processed_at timestamptz,
    last_event_time   timestamptz,
    PRIMARY KEY (projector_name, shard)
);
