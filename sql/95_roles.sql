-- Least privilege without hand-written GRANTs: three group roles, granted to database users
-- with one command (`python -m ledger grant --writer U --service U --operator U`).
--   vtid_ledger_writer    the event function: reads the log, writes the ledger, its counters
--                         and rejections. It cannot drop, truncate or alter anything.
--   vtid_ledger_service   the HTTP function: the writer's rights, the sweep's (its offset, the
--                         ledger_sync events, pruning rejections) and ingest's (insert into the
--                         log); one task's rebuild only through ledger_rebuild_one. It cannot
--                         delete a ledger row, nor read other sessions (no pg_monitor).
--   vtid_ledger_operator  people, through the CLI: the service's rights, and the whole
--                         rebuild's (delete the ledger rows the writer made); `grant` also
--                         gives it pg_monitor, so status can name the session holding the
--                         sweep back.
-- None owns anything; the tables belong to whoever ran the migrations. Roles are
-- cluster-wide and creating them needs CREATEROLE: a migrating user without it creates nothing
-- here, and `grant` (run as a user with it, such as postgres on Cloud SQL) does it later.

-- Creates the roles if they are missing; false when the current user may not.
CREATE OR REPLACE FUNCTION ledger_ensure_roles() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['vtid_ledger_writer', 'vtid_ledger_service',
        'vtid_ledger_operator'] LOOP
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

-- Grants each role its rights on this schema's tables, sequences and functions.
CREATE OR REPLACE FUNCTION ledger_grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s text := current_schema();
    rejections_seq text := pg_get_serial_sequence(format('%I.ledger_rejections', s), 'id');
    events_seq text := pg_get_serial_sequence(format('%I.oasis_events', s), 'seq');
    everyone CONSTANT text := 'vtid_ledger_writer, vtid_ledger_service, vtid_ledger_operator';
    sweepers CONSTANT text := 'vtid_ledger_service, vtid_ledger_operator';
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO ' || everyone, s);
    EXECUTE format('GRANT SELECT ON %I.oasis_events, %I.ledger_settings TO ' || everyone, s, s);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I.vtid_ledger, %I.projector_progress TO '
        || everyone, s, s);
    EXECUTE format('GRANT SELECT, INSERT ON %I.ledger_rejections TO ' || everyone, s);
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO ' || everyone, rejections_seq);

    EXECUTE format('GRANT INSERT ON %I.oasis_events TO ' || sweepers, s);
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO ' || sweepers, events_seq);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I.projection_offsets TO ' || sweepers, s);
    EXECUTE format('GRANT DELETE ON %I.ledger_rejections TO ' || sweepers, s);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %I.ledger_rebuild_one(text) TO ' || sweepers, s);

    EXECUTE format('GRANT DELETE ON %I.vtid_ledger TO vtid_ledger_operator', s);
END
$$;

-- Grants membership of one of the roles, quoting both names.
CREATE OR REPLACE FUNCTION ledger_grant_membership(role text, member text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF role NOT IN ('vtid_ledger_writer', 'vtid_ledger_service', 'vtid_ledger_operator') THEN
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
