-- The fold's state moves from one nested jsonb document (fold_state, read and written by
-- Python) to columns the SQL fold reads and writes directly:
--   fold_newest    key of the newest event (for a row another system made: of its own last
--                  event, when that is newer than every event, marked with digest '~')
--   fold_founding  key of the founding event; NULL for a row another system made
--   fold_owners    for each register (description, task_family, task_type, assigned_to and
--                  every metadata key the events set) the key of the event that set it
--   fold_base      a row another system made, as it was before any event reached it
-- Keys are ledger_key() || ledger_digest(): text that sorts as the fold's order, COLLATE "C".

ALTER TABLE vtid_ledger
    ADD COLUMN IF NOT EXISTS fold_newest   text COLLATE "C",
    ADD COLUMN IF NOT EXISTS fold_founding text COLLATE "C",
    ADD COLUMN IF NOT EXISTS fold_owners   jsonb,
    ADD COLUMN IF NOT EXISTS fold_base     jsonb;

-- An older writer added last_event_at without a time zone (its values are UTC). The fold
-- compares it with event times, so it becomes timestamptz. A small table: one row per task.
DO $$
BEGIN
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'vtid_ledger'
          AND column_name = 'last_event_at') = 'timestamp without time zone' THEN
        ALTER TABLE vtid_ledger
            ALTER COLUMN last_event_at TYPE timestamptz USING last_event_at AT TIME ZONE 'UTC';
    END IF;
END
$$;

-- A batch is folded by event key, which needs event ids unique in the log. The writer's own
-- table has id as its primary key; a platform table without a unique id gets an index (and
-- this migration fails, naming the duplicates' index, if ids repeat: fix those first).
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'oasis_events'::regclass AND i.indisunique AND i.indnkeyatts = 1
          AND a.attname = 'id' AND i.indpred IS NULL
    ) THEN
        CREATE UNIQUE INDEX oasis_events_id_key ON oasis_events (id);
    END IF;
END
$$;

-- v1 rows: convert fold_state. A key keeps its time, priority and id; its digest is taken
-- from the event in the log when it is there (as the sweep would compute it), else left
-- empty, so that a later copy of that event counts as newer once and then settles.
CREATE OR REPLACE FUNCTION ledger_v1_key(v1 jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
SELECT ledger_key((v1 ->> 0)::timestamptz, (v1 ->> 1)::int, v1 ->> 2) || coalesce((
    SELECT ledger_digest(d.type, d.service, d.status, d.vtid, d.message, d.title, d.ref,
        d.layer, d.module, d.kind, d.tenant, d.notes, d.metadata)
    FROM oasis_events o,
    LATERAL ledger_decode_row(o.seq, o.id::text, o.created_at, o.vtid::text, o.topic::text,
        o.event::text, o.service::text, o.source::text, o.status::text, o.message::text,
        o.notes::text, o.metadata, o.tenant::text, o.layer::text, o.module::text,
        o.kind::text, o.title::text, o.ref::text) AS d
    WHERE o.id::text = v1 ->> 2 AND o.created_at = (v1 ->> 0)::timestamptz
      AND d.reason IS NULL), '')
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'vtid_ledger'
                 AND column_name = 'fold_state') THEN
        -- Registers and the newest and founding keys, for every converted row.
        UPDATE vtid_ledger AS l SET
            fold_newest = ledger_v1_key(l.fold_state -> 'newest' -> 'key'),
            fold_founding = CASE WHEN jsonb_typeof(l.fold_state -> 'base') = 'object' THEN NULL
                ELSE ledger_v1_key(l.fold_state -> 'founding' -> 'key') END,
            fold_owners = (
                SELECT coalesce(jsonb_object_agg(
                    CASE WHEN r.key LIKE 'meta.%' THEN substr(r.key, 6) ELSE r.key END,
                    ledger_v1_key(r.value -> 0)), '{}')
                FROM jsonb_each(l.fold_state -> 'registers') AS r),
            fold_base = CASE WHEN jsonb_typeof(l.fold_state -> 'base') = 'object'
                THEN l.fold_state -> 'base' END
        WHERE l.fold_state IS NOT NULL;

        -- Rows another system made follow the rules that now hold for them: founding columns,
        -- tenant and metadata are kept as they were unless an event set them explicitly, and
        -- they carry none of the writer's own metadata keys. (Their newest columns already
        -- followed the same order: the row's own last event against the newest event.)
        UPDATE vtid_ledger AS l SET
            fold_newest = CASE WHEN b.key > l.fold_newest THEN b.key ELSE l.fold_newest END,
            description = CASE WHEN l.fold_owners ? 'description' THEN l.description
                ELSE b.base ->> 'description' END,
            task_family = CASE WHEN l.fold_owners ? 'task_family' THEN l.task_family
                ELSE b.base ->> 'task_family' END,
            task_type = CASE WHEN l.fold_owners ? 'task_type' THEN l.task_type
                ELSE b.base ->> 'task_type' END,
            assigned_to = CASE WHEN l.fold_owners ? 'assigned_to' THEN l.assigned_to
                ELSE b.base ->> 'assigned_to' END,
            tenant = b.base ->> 'tenant',
            metadata = CASE
                WHEN NOT EXISTS (SELECT 1 FROM jsonb_object_keys(l.fold_owners) AS k
                    WHERE k NOT IN ('description', 'task_family', 'task_type', 'assigned_to'))
                THEN b.base -> 'metadata'
                ELSE (CASE WHEN jsonb_typeof(b.base -> 'metadata') = 'object'
                          THEN b.base -> 'metadata' ELSE '{}' END)
                    || (SELECT jsonb_object_agg(k, l.metadata -> k)
                        FROM jsonb_object_keys(l.fold_owners) AS k
                        WHERE k NOT IN ('description', 'task_family', 'task_type', 'assigned_to'))
            END
        FROM (SELECT vtid, fold_base AS base,
                CASE WHEN fold_base ->> 'last_event_at' IS NOT NULL THEN
                    ledger_key((fold_base ->> 'last_event_at')::timestamptz,
                        ledger_priority(fold_base ->> 'status'),
                        coalesce(fold_base ->> 'last_event_id', '')) || '~'
                END COLLATE "C" AS key
              FROM vtid_ledger WHERE fold_base IS NOT NULL) AS b
        WHERE l.vtid = b.vtid;

        ALTER TABLE vtid_ledger DROP COLUMN fold_state, DROP COLUMN IF EXISTS revision;
    END IF;
END
$$;

DROP FUNCTION IF EXISTS ledger_v1_key(jsonb);
