-- A task's id, the VTID (docs/behaviour.md §2), and the index of the log by it.

-- Candidates are trimmed and upper-cased (ASCII letters only: a VTID is ASCII).
CREATE OR REPLACE FUNCTION ledger_vtid_normalise(candidate text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT upper(ledger_trim(candidate) COLLATE "C")
$$;

-- A VTID is at most 64 characters (a longer one could not be indexed either).
CREATE OR REPLACE FUNCTION ledger_vtid_is_valid(vtid text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT length(vtid) <= 64 AND vtid COLLATE "C" ~ '^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-[0-9]+$'
$$;

-- The candidate when it is a valid VTID, else NULL.
CREATE OR REPLACE FUNCTION ledger_vtid_checked(candidate text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN ledger_vtid_is_valid(candidate) THEN candidate END
$$;

-- The VTID of an event without a vtid field (see ledger_vtid_of), apart so that the usual case
-- stays inlinable: plpgsql is never inlined.
CREATE OR REPLACE FUNCTION ledger_vtid_without_field(metadata jsonb, ref text, message text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    candidate text;
BEGIN
    IF jsonb_typeof(metadata -> 'vtid') = 'string' AND metadata ->> 'vtid' <> '' THEN
        candidate := metadata ->> 'vtid';
    ELSIF ref IS NOT NULL AND ledger_vtid_is_valid(ledger_vtid_normalise(ref)) THEN
        candidate := ref;
    ELSE
        candidate := (regexp_match(message COLLATE "C",
            '(?<![A-Za-z0-9_])VTID-[0-9]{4,5}(?:-[0-9]+)?(?![A-Za-z0-9_])'))[1];
    END IF;
    RETURN ledger_vtid_checked(ledger_vtid_normalise(candidate));
END
$$;

-- The first present source wins: vtid; metadata.vtid (a non-empty string); ref when it is a
-- valid VTID; the first VTID-NNNN(N)(-N) in the message with a word boundary on both sides
-- (ASCII word characters, as Python's re.ASCII \b). A present but invalid vtid does not fall
-- through. NULL for no or an invalid VTID.
CREATE OR REPLACE FUNCTION ledger_vtid_of(vtid text, metadata jsonb, ref text, message text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN vtid IS NOT NULL THEN ledger_vtid_checked(ledger_vtid_normalise(vtid))
    ELSE ledger_vtid_without_field(metadata, ref, message) END
$$;

-- A row of the log's VTID by the rules (ledger_vtid_of over the row's columns), for the index
-- below. A row that cannot be read may still be indexed under a VTID; the decoder decides.
CREATE OR REPLACE FUNCTION ledger_row_vtid(vtid text, metadata jsonb, ref text, message text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ledger_vtid_of(nullif(vtid, ''), ledger_metadata_object(metadata), nullif(ref, ''),
    nullif(message, ''))
$$;

-- The index that finds one task's events without reading the log (`verify --vtid`,
-- `rebuild --vtid`, explain's event count) is built on the rules above: when this file changes,
-- the index is built again with it.
DROP INDEX IF EXISTS oasis_events_task_vtid;
CREATE INDEX oasis_events_task_vtid
    ON oasis_events (ledger_row_vtid(vtid::text, metadata, ref::text, message::text));
