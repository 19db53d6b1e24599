-- Least privilege without hand-written GRANTs: two group roles, granted to the functions'
-- database users with one command (`python -m ledger grant --writer U --operator U`).
--   vtid_ledger_writer    the event function: reads the log, writes the ledger, its counters
--                         and rejections. It cannot drop, truncate or alter anything.
--   vtid_ledger_operator  the HTTP function and operators' CLI: the writer's rights, and the
--                         sweep's (its offset, the ledger_sync events), ingest's (insert into the
--                         log), rebuild's (delete the ledger rows the writer made) and pruning
--                         rejections.
-- Neither owns anything; the tables belong to whoever ran the migrations. Roles are
-- cluster-wide and creating them needs CREATEROLE: a migrating user without it creates nothing
-- here, and `grant` (run as a user with it, such as postgres on Cloud SQL) does it later.

-- Creates the two roles if they are missing; false when the current user may not.
CREATE OR REPLACE FUNCTION ledger_ensure_roles() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['vtid_ledger_writer', 'vtid_ledger_operator'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', name);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- a migration of another schema made it meanwhile
                WHEN insufficient_privilege THEN
                    RAISE NOTICE 'cannot create role %: run `python -m ledger grant` as a user '
                        'with CREATEROLE', name;
                    RETURN false;
            END;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

-- Grants each role its rights on this schema's tables and sequences.
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
    EXECUTE format('GRANT DELETE ON %I.ledger_rejections TO vtid_ledger_operator', s);
END
$$;

-- Grants membership of one of the two roles, quoting both names.
CREATE OR REPLACE FUNCTION ledger_grant_membership(role text, member text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF role NOT IN ('vtid_ledger_writer', 'vtid_ledger_operator') THEN
        RAISE EXCEPTION 'not a ledger role: %', role USING ERRCODE = '22023';
    END IF;
    EXECUTE format('GRANT %I TO %I', role, member);
END
$$;

-- New tables and functions are granted whenever this file changes, which it does with every
-- table a migration adds.
DO $$
BEGIN
    IF ledger_ensure_roles() THEN
        PERFORM ledger_grant_roles();
    END IF;
END
$$;
