-- A row is bounded whatever its events (docs/behaviour.md §4): an event carries at most 256
-- metadata keys (more: rejected, see ledger_edge_reason), and a row keeps at most 512 metadata
-- registers, those set by the newest events (ties by name). Which registers a row keeps is a
-- function of the set of its events: the top 512 of a union is the top 512 of the union of
-- each side's top 512, so capping after every merge keeps the fold order-independent. Before,
-- 40 pushes of 19,000 new keys each grew one row to 760,000 keys.

-- The edge's limits (see 20251208_one_edge.sql), and at most 256 keys in an event's metadata.
CREATE OR REPLACE FUNCTION ledger_edge_reason(event_text text, metadata jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    keys bigint;
BEGIN
    IF octet_length(event_text) > 262144 THEN
        RETURN 'event JSON is ' || octet_length(event_text)
            || ' bytes; the limit is 262144 (256 KiB)';
    END IF;
    IF jsonb_path_exists(metadata,
        'strict $.**{63 to last} ? (@.type() == "object" || @.type() == "array")') THEN
        RETURN 'event JSON nests deeper than 64 levels';
    END IF;
    IF EXISTS (SELECT 1
        FROM jsonb_path_query(metadata, 'strict $.** ? (@.type() == "number")') AS n(v)
        WHERE length(translate(n.v::text, '-.', '')) > 1000) THEN
        RETURN 'event JSON holds a number of more than 1000 digits';
    END IF;
    keys := (SELECT count(*) FROM jsonb_object_keys(metadata));
    IF keys > 256 THEN
        RETURN 'metadata has ' || keys || ' keys; the limit is 256';
    END IF;
    RETURN NULL;
END
$$;

-- The metadata registers a row keeps: the 512 set by the newest events, ties by name; the
-- rest leave fold_owners and metadata (a row another system made shows its own value of a
-- key again). Column registers (description, task_family, task_type, assigned_to) are not
-- metadata and never dropped. 512 owners take more than 16 KiB, so a smaller row is
-- returned as it is without counting.
CREATE OR REPLACE FUNCTION ledger_cap_registers(s ledger_state) RETURNS ledger_state
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    dropped text[];
    restored jsonb;
BEGIN
    IF s.fold_owners IS NULL OR pg_column_size(s.fold_owners) < 16384 THEN
        RETURN s;
    END IF;
    SELECT array_agg(ranked.name) INTO dropped FROM (
        SELECT o.key AS name FROM jsonb_each_text(s.fold_owners) AS o
        WHERE o.key NOT IN ('description', 'task_family', 'task_type', 'assigned_to')
        ORDER BY o.value COLLATE "C" DESC, o.key COLLATE "C"
        OFFSET 512) AS ranked;
    IF dropped IS NULL THEN
        RETURN s;
    END IF;
    s.fold_owners := s.fold_owners - dropped;
    IF jsonb_typeof(s.metadata) = 'object' THEN
        s.metadata := s.metadata - dropped;
        IF jsonb_typeof(s.fold_base -> 'metadata') = 'object' THEN
            SELECT jsonb_object_agg(b.key, b.value) INTO restored
            FROM jsonb_each(s.fold_base -> 'metadata') AS b WHERE b.key = ANY (dropped);
            s.metadata := s.metadata || coalesce(restored, '{}');
        END IF;
    END IF;
    RETURN s;
END
$$;

-- Write states into the ledger (see 20251204_fold_apply.sql), each capped, before it is
-- inserted and after it is merged.
CREATE OR REPLACE FUNCTION ledger_write(states ledger_state[])
RETURNS TABLE (vtid text, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
INSERT INTO vtid_ledger AS l (vtid, status, service, environment, last_event_id,
    last_event_at, description, task_family, task_type, assigned_to, tenant, metadata,
    fold_newest, fold_founding, fold_owners, fold_base, created_at, updated_at)
SELECT c.*, now(), now()
FROM unnest(states) AS s, LATERAL ledger_cap_registers(s::ledger_state) AS c
ORDER BY c.vtid COLLATE "C"  -- one lock order for every writer
ON CONFLICT (vtid) DO UPDATE SET
    (status, service, environment, last_event_id, last_event_at, description, task_family,
     task_type, assigned_to, tenant, metadata, fold_newest, fold_founding, fold_owners,
     fold_base, updated_at) =
    (SELECT m.status, m.service, m.environment, m.last_event_id, m.last_event_at,
        m.description, m.task_family, m.task_type, m.assigned_to, m.tenant, m.metadata,
        m.fold_newest, m.fold_founding, m.fold_owners, m.fold_base, now()
     FROM ledger_cap_registers(ledger_merge(l, EXCLUDED)) AS m)
WHERE ledger_merge_changes(l, EXCLUDED)
RETURNING l.vtid, l.xmax = 0;
END
$$;
