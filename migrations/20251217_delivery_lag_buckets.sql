-- The real-time path's delivery lag per bucket (Prometheus's histogram), beside its sum and
-- count: element i counts the lags above bound i-1 and at most bound i of
-- ledger_delivery_lag_bounds() (sql/70_realtime.sql); a lag above the last bound counts only in
-- delivery_lag_count (+Inf). Lags counted before this column existed are in +Inf alone.
ALTER TABLE projector_progress
    ADD COLUMN IF NOT EXISTS delivery_lag_buckets bigint[] NOT NULL DEFAULT '{}';
