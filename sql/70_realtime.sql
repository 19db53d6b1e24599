-- The real-time path: a pushed event, or a batch of them (group commit), applied and counted.

-- The upper bounds (seconds) of the delivery lag's histogram buckets, as Prometheus's client
-- libraries default them, and a longer tail for a backlog.
CREATE OR REPLACE FUNCTION ledger_delivery_lag_bounds() RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT '{0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,300}'::float8[]
$$;

-- The real-time path's counters (projector vtid_ledger_sync) for the events of one statement:
-- one UPSERT of the connection's shard, so concurrent instances do not queue on one row. The
-- writer's own events (outcome 'ignored') are not counted, as the sweep does not count them. A
-- delivery attempt above 1 means an earlier attempt failed or timed out: a rising count is what
-- precedes dead letters. The lag is publish to applied, the real-time path's own latency.
-- (About 85 lines: the figures of one event read directly, of many by one aggregate, then one
-- UPDATE for both.)
CREATE OR REPLACE FUNCTION ledger_count_realtime_many(outcomes text[],
    event_times timestamptz[], publish_times timestamptz[], attempts integer[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    my_shard smallint := pg_backend_pid() % 16;
    bounds CONSTANT float8[] := ledger_delivery_lag_bounds();
    -- what this call adds (named apart from the columns they add to)
    add_processed bigint; add_created bigint; add_updated bigint; add_skipped bigint;
    add_errors bigint; add_redelivered bigint; lag_sum float8; lag_count bigint; last_lag float8;
    newest_event_time timestamptz;
    lags float8[];
    lag float8;
    added bigint[] := array_fill(0::bigint, ARRAY[cardinality(bounds)]);
    bucket int;
BEGIN
    IF cardinality(outcomes) = 1 THEN  -- a push: no query needed (about 60 µs less a delivery)
        IF outcomes[1] = 'ignored' THEN
            RETURN;
        END IF;
        add_processed := 1;
        add_created := (outcomes[1] = 'created')::int;
        add_updated := (outcomes[1] = 'updated')::int;
        add_skipped := (outcomes[1] = 'skipped')::int;
        add_errors := (outcomes[1] = 'rejected')::int;
        add_redelivered := (coalesce(attempts[1], 1) > 1)::int;
        -- (greatest() passes over a NULL: a delivery without a publish time has no lag)
        last_lag := CASE WHEN publish_times[1] IS NOT NULL
            THEN greatest(0, extract(epoch FROM clock_timestamp() - publish_times[1])) END;
        lags := ARRAY[last_lag];
        newest_event_time := event_times[1];
    ELSE
        SELECT count(*),
            count(*) FILTER (WHERE x.outcome = 'created'),
            count(*) FILTER (WHERE x.outcome = 'updated'),
            count(*) FILTER (WHERE x.outcome = 'skipped'),
            count(*) FILTER (WHERE x.outcome = 'rejected'),
            count(*) FILTER (WHERE coalesce(x.attempt, 1) > 1),
            CASE WHEN max(x.published) IS NOT NULL
                THEN greatest(0, extract(epoch FROM clock_timestamp() - max(x.published))) END,
            array_agg(greatest(0, extract(epoch FROM clock_timestamp() - x.published)))
                FILTER (WHERE x.published IS NOT NULL),
            max(x.event_time)
        INTO add_processed, add_created, add_updated, add_skipped, add_errors, add_redelivered,
            last_lag, lags, newest_event_time
        FROM unnest(outcomes, event_times, publish_times, attempts)
            AS x(outcome, event_time, published, attempt)
        WHERE x.outcome <> 'ignored';
        IF add_processed = 0 THEN
            RETURN;
        END IF;
    END IF;
    -- Each lag in its bucket: the first bound it does not exceed (past the last: +Inf only);
    -- width_bucket counts the bounds at or below it. A delivery without a publish time has none.
    lag_sum := 0;
    lag_count := 0;
    FOREACH lag IN ARRAY coalesce(lags, '{}') LOOP
        CONTINUE WHEN lag IS NULL;
        lag_sum := lag_sum + lag;
        lag_count := lag_count + 1;
        bucket := width_bucket(lag, bounds);
        bucket := CASE WHEN bucket > 0 AND lag = bounds[bucket] THEN bucket ELSE bucket + 1 END;
        IF bucket <= cardinality(bounds) THEN
            added[bucket] := added[bucket] + 1;
        END IF;
    END LOOP;
    -- UPDATE first, as almost every call finds its shard's row (cheaper than INSERT … ON
    -- CONFLICT, which tries the insert first); the shard's first call makes the row, empty.
    LOOP
        UPDATE projector_progress AS p SET
            events_processed = p.events_processed + add_processed,
            created = p.created + add_created, updated = p.updated + add_updated,
            skipped = p.skipped + add_skipped, errors = p.errors + add_errors,
            redelivered = p.redelivered + add_redelivered,
            delivery_lag_seconds_sum = p.delivery_lag_seconds_sum + lag_sum,
            delivery_lag_count = p.delivery_lag_count + lag_count,
            delivery_lag_buckets = ARRAY(
                SELECT coalesce(p.delivery_lag_buckets[i], 0) + added[i]
                FROM generate_subscripts(added, 1) AS i ORDER BY i),
            last_delivery_lag_seconds = coalesce(last_lag, p.last_delivery_lag_seconds),
            last_processed_at = now(),
            last_event_time = greatest(p.last_event_time, newest_event_time)
        WHERE p.projector_name = 'vtid_ledger_sync' AND p.shard = my_shard;
        EXIT WHEN FOUND;
        INSERT INTO projector_progress (projector_name, shard)
        VALUES ('vtid_ledger_sync', my_shard) ON CONFLICT DO NOTHING;
    END LOOP;
END
$$;

-- The same for one event (a rejection recorded by Python). plpgsql: a SQL function
-- called from plpgsql is planned again at every call (150 µs, measured).
CREATE OR REPLACE FUNCTION ledger_count_realtime(outcome text, event_time timestamptz,
    publish_time timestamptz DEFAULT NULL, delivery_attempt integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_count_realtime_many(ARRAY[outcome], ARRAY[event_time], ARRAY[publish_time],
        ARRAY[delivery_attempt]);
END
$$;

-- One pushed event: decoded, judged against its publish time (an event dated more than the
-- tolerance after it is rejected), applied with the single-event state, counted.
CREATE OR REPLACE FUNCTION ledger_apply_event(payload text, message_id text,
    publish_time timestamptz, delivery_attempt integer)
RETURNS TABLE (outcome text, vtid text, event_id text, reason text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    e ledger_event := ledger_decode_json(payload::jsonb, publish_time);
    written record;
BEGIN
    IF e.reason IS NULL THEN
        e.reason := ledger_future_reason(e.created_at, publish_time);
    END IF;
    IF e.reason IS NOT NULL THEN
        PERFORM ledger_reject('pubsub', e.reason, convert_to(payload, 'UTF8'), e.id,
            message_id);
        outcome := 'rejected';
    ELSIF e.service = 'oasis-projector' AND e.type IS NOT DISTINCT FROM 'ledger_sync' THEN
        RETURN QUERY SELECT 'ignored', NULL::text, e.id, NULL::text;
        RETURN;
    ELSIF e.task_vtid IS NULL THEN
        outcome := 'skipped';
    ELSE
        SELECT * INTO written FROM ledger_write(ARRAY[ledger_state_of(e)]);
        outcome := CASE WHEN NOT FOUND THEN 'stale'
            WHEN written.created THEN 'created' ELSE 'updated' END;
    END IF;
    PERFORM ledger_count_realtime_many(ARRAY[outcome], ARRAY[e.created_at],
        ARRAY[publish_time], ARRAY[delivery_attempt]);
    RETURN QUERY SELECT outcome, e.task_vtid, e.id, e.reason;
END
$$;

-- Gone: the scalar outcome function (see ledger_event_outcome).
DROP FUNCTION IF EXISTS ledger_batch_outcome(ledger_event, text, text, boolean, text, text, jsonb,
    boolean);

-- Group commit (docs/behaviour.md §5): the deliveries that arrived at one process while its
-- previous statement was in flight, applied by one statement and one commit with the sweep's
-- batch fold (ledger_fold); each gets its own outcome, as if applied one at a time. Copies of
-- one event count once; events that share a key but not a digest are merged on their own.
-- About 100 lines, one pass in order: decode each delivery once, record the rejected, fold the
-- rest with one write, give each its outcome, apply the few the fold cannot take together (two
-- contents under one key) one at a time, count. Split into functions, the arrays of up to 500
-- events would be copied at each call.
CREATE OR REPLACE FUNCTION ledger_apply_batch(payloads text[], message_ids text[],
    publish_times timestamptz[], attempts integer[])
RETURNS TABLE (n integer, outcome text, vtid text, event_id text, reason text)
LANGUAGE plpgsql
SET enable_nestloop = off SET enable_mergejoin = off SET jit = off SET work_mem = '64MB'
AS $$
#variable_conflict use_column
DECLARE
    events ledger_event[];
    reasons text[];
    outcomes text[];
    good_n int[];
    good_outcomes text[];
    extra record;
    written record;
    i int;
    tolerance interval;
BEGIN
    IF cardinality(payloads) = 1 THEN
        RETURN QUERY SELECT 1, a.outcome, a.vtid, a.event_id, a.reason
            FROM ledger_apply_event(payloads[1], message_ids[1], publish_times[1],
                attempts[1]) AS a;
        RETURN;
    END IF;

    tolerance := coalesce((SELECT make_interval(secs => value::double precision)
        FROM ledger_settings WHERE name = 'max_future_seconds'), interval '300 seconds');
    SELECT array_agg(d.e ORDER BY d.i),
        array_agg(coalesce((d.e).reason,
            ledger_future_reason_within((d.e).created_at, d.p, tolerance)) ORDER BY d.i)
    INTO events, reasons
    FROM (SELECT x.i, x.p, ledger_decode_json(x.payload::jsonb, x.p) AS e
          FROM unnest(payloads, publish_times) WITH ORDINALITY AS x(payload, p, i)
          OFFSET 0) AS d;  -- OFFSET 0: decode once per event, not once per field read

    PERFORM ledger_reject('pubsub', reasons[k], convert_to(payloads[k], 'UTF8'),
        (events[k]).id, message_ids[k])
    FROM generate_subscripts(reasons, 1) AS k WHERE reasons[k] IS NOT NULL;

    outcomes := ARRAY(SELECT CASE
            WHEN reasons[k] IS NOT NULL THEN 'rejected'
            WHEN (events[k]).service = 'oasis-projector'
                AND (events[k]).type IS NOT DISTINCT FROM 'ledger_sync' THEN 'ignored'
            WHEN (events[k]).task_vtid IS NULL THEN 'skipped'
        END
        FROM generate_subscripts(events, 1) AS k ORDER BY k);

    WITH good AS MATERIALIZED (
        SELECT k AS n, events[k] AS e, (events[k]).key AS key, (events[k]).task_vtid AS vtid,
            (events[k]).key || ledger_event_digest(events[k]) AS full_key
        FROM generate_subscripts(events, 1) AS k WHERE outcomes[k] IS NULL
    ),
    ranked AS MATERIALIZED (
        SELECT good.*,
            row_number() OVER (PARTITION BY good.full_key ORDER BY good.n) AS copy,
            dense_rank() OVER (PARTITION BY good.key ORDER BY good.full_key) AS variant
        FROM good
    ),
    before_batch AS MATERIALIZED (  -- the rows as they were: this statement's snapshot
        SELECT l.vtid, ledger_row_newest(l) AS newest, l.fold_founding AS founding,
            coalesce(l.fold_owners, '{}') AS owners
        FROM vtid_ledger AS l WHERE l.vtid IN (SELECT good.vtid FROM good)
    ),
    folded AS MATERIALIZED (
        SELECT w.vtid FROM ledger_apply_events(ARRAY(
            SELECT ranked.e FROM ranked WHERE ranked.copy = 1 AND ranked.variant = 1)) AS w
    ),
    oldest AS (
        SELECT ranked.vtid, min(ranked.key) AS key FROM ranked
        WHERE ranked.copy = 1 AND ranked.variant = 1 GROUP BY ranked.vtid
    )
    SELECT array_agg(r.n), array_agg(CASE
            WHEN r.copy > 1 THEN 'stale'
            WHEN r.variant > 1 THEN NULL  -- merged on its own below
            ELSE result.outcome
        END)
    INTO good_n, good_outcomes
    FROM ranked AS r
    LEFT JOIN oldest AS o ON o.vtid = r.vtid
    LEFT JOIN before_batch AS b ON b.vtid = r.vtid
    LEFT JOIN folded AS f ON f.vtid = r.vtid,
    LATERAL ledger_event_outcome(event_key => r.key, event_full_key => r.full_key,
        event_metadata => (r.e).metadata, oldest_key => o.key,
        had_row => b.vtid IS NOT NULL, before_newest => b.newest,
        before_founding => b.founding, before_owners => b.owners,
        written => f.vtid IS NOT NULL) AS result;

    FOR i IN 1 .. coalesce(cardinality(good_n), 0) LOOP
        outcomes[good_n[i]] := good_outcomes[i];
    END LOOP;
    FOR extra IN SELECT k FROM generate_subscripts(outcomes, 1) AS k
        WHERE outcomes[k] IS NULL ORDER BY k LOOP
        SELECT * INTO written FROM ledger_write(ARRAY[ledger_state_of(events[extra.k])]);
        outcomes[extra.k] := CASE WHEN NOT FOUND THEN 'stale'
            WHEN written.created THEN 'created' ELSE 'updated' END;
    END LOOP;

    PERFORM ledger_count_realtime_many(outcomes,
        ARRAY(SELECT (events[k]).created_at FROM generate_subscripts(events, 1) AS k ORDER BY k),
        publish_times, attempts);

    RETURN QUERY SELECT k, outcomes[k],
        CASE WHEN outcomes[k] <> 'rejected' THEN (events[k]).task_vtid END,
        (events[k]).id, reasons[k]
    FROM generate_subscripts(outcomes, 1) AS k ORDER BY k;
END
$$;
