-- Core tables. Every statement is idempotent and also brings the platform's existing versions
-- of these tables up to what the writer reads and writes.

CREATE TABLE IF NOT EXISTS oasis_events (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE oasis_events
    ADD COLUMN IF NOT EXISTS vtid     text,
    ADD COLUMN IF NOT EXISTS topic    text,
    ADD COLUMN IF NOT EXISTS event    text,
    ADD COLUMN IF NOT EXISTS service  text,
    ADD COLUMN IF NOT EXISTS source   text,
    ADD COLUMN IF NOT EXISTS status   text,
    ADD COLUMN IF NOT EXISTS message  text,
    ADD COLUMN IF NOT EXISTS notes    text,
    ADD COLUMN IF NOT EXISTS metadata jsonb,
    ADD COLUMN IF NOT EXISTS tenant   text,
    ADD COLUMN IF NOT EXISTS layer    text,
    ADD COLUMN IF NOT EXISTS module   text,
    ADD COLUMN IF NOT EXISTS kind     text,
    ADD COLUMN IF NOT EXISTS title    text,
    ADD COLUMN IF NOT EXISTS ref      text,
    ADD COLUMN IF NOT EXISTS rid      text;

CREATE TABLE IF NOT EXISTS vtid_ledger (
    vtid        text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE vtid_ledger
    ADD COLUMN IF NOT EXISTS status      text,
    ADD COLUMN IF NOT EXISTS task_family text,
    ADD COLUMN IF NOT EXISTS task_type   text,
    ADD COLUMN IF NOT EXISTS description text,
    ADD COLUMN IF NOT EXISTS assigned_to text,
    ADD COLUMN IF NOT EXISTS tenant      text,
    ADD COLUMN IF NOT EXISTS metadata    jsonb;
-- ON CONFLICT (vtid) needs a unique index on vtid. The platform's table may have one (or only
-- one on id); add it only when missing, since a duplicate index slows every write.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'vtid_ledger'::regclass AND i.indisunique AND i.indnkeyatts = 1
          AND a.attname = 'vtid' AND i.indpred IS NULL
    ) THEN
        CREATE UNIQUE INDEX vtid_ledger_vtid_key ON vtid_ledger (vtid);
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS projection_offsets (
    projector_name    text PRIMARY KEY,
    last_event_id     text,
    last_event_time   timestamptz,
    last_processed_at timestamptz,
    events_processed  bigint NOT NULL DEFAULT 0
);
