-- Who stored each event through ingest: the caller's email from the ID token Cloud Run verified,
-- else the database user that stored it (an operator's IAM user for the CLI). NULL for events
-- other producers wrote to the log directly, and for events stored before this column.
ALTER TABLE oasis_events ADD COLUMN IF NOT EXISTS ingested_by text;
