-- VTID-0521: event tracking columns on vtid_ledger, and the writer's offset.

ALTER TABLE vtid_ledger
    ADD COLUMN IF NOT EXISTS last_event_id text,
    ADD COLUMN IF NOT EXISTS last_event_at timestamptz,
    ADD COLUMN IF NOT EXISTS service       text,
    ADD COLUMN IF NOT EXISTS environment   text DEFAULT 'dev';

CREATE INDEX IF NOT EXISTS idx_vtid_ledger_last_event_at ON vtid_ledger (last_event_at);
CREATE INDEX IF NOT EXISTS idx_vtid_ledger_service ON vtid_ledger (service);
CREATE INDEX IF NOT EXISTS idx_vtid_ledger_environment ON vtid_ledger (environment);
CREATE INDEX IF NOT EXISTS idx_vtid_ledger_status ON vtid_ledger (status);

INSERT INTO projection_offsets (projector_name, events_processed)
VALUES ('vtid_ledger_writer', 0)
ON CONFLICT (projector_name) DO NOTHING;
