"""The writer's health, as status and metrics report it: the offset, lag, backlog, the snapshot
horizon, and both projectors' counters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger import ledger_rejections, oasis_events, projection_offsets, projector_progress
from ledger.db import Session
from ledger.timefmt import iso, now, plain

# The sweep can read only below the oldest transaction still running anywhere on the server.
OLDEST_OPEN_TRANSACTION = """
SELECT pid, datname AS database, usename AS user_name, application_name, state,
       extract(epoch FROM now() - xact_start)::float8 AS age_seconds, backend_xid::text AS xid
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY age(backend_xid) DESC
LIMIT 1"""


# As pg_stat_activity.backend_xid shows it (32 bits, without the epoch), so it can be matched.
HORIZON_XID = (
    "SELECT (CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text) AS numeric) "
    "% 4294967296)::bigint::text"
)


def _oldest_open_transaction(session: Session) -> dict[str, Any] | None:
    row = session.one(OLDEST_OPEN_TRANSACTION)
    if row is None:
        return None
    if row["age_seconds"] is not None:
        row["age_seconds"] = round(row["age_seconds"], 3)
    return row


def _backlog(session: Session, offset: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """What the sweep has yet to apply, and the age of its oldest event: the sweep's lag."""
    backlog = oasis_events.backlog(session, projection_offsets.position_of(offset))
    lag = 0.0
    if backlog["backlog"] and backlog["oldest"] is not None:
        lag = max(0.0, (datetime.now(UTC) - backlog["oldest"]).total_seconds())
    return backlog, round(lag, 3)


def sweep_lag(session: Session) -> tuple[int, float]:
    """Events not yet swept, and the age of the oldest of them (0 when caught up)."""
    backlog, lag = _backlog(session, projection_offsets.read(session))
    return int(backlog["backlog"]), lag


def status(session: Session) -> dict[str, Any]:
    offset = projection_offsets.read(session)
    backlog, lag = _backlog(session, offset)
    held_back = int(backlog["held_back"])
    horizon = session.scalar(HORIZON_XID)
    report: dict[str, Any] = {
        "running": offset["last_error"] is None,
        "events_processed": int(offset["events_processed"] or 0),
        "last_processed_at": iso(offset["last_processed_at"]),
        "last_event_id": offset["last_event_id"],
        "last_event_time": iso(offset["last_event_time"]),
        "lag_seconds": lag,
        "backlog": int(backlog["backlog"]),
        "held_back": held_back,
        # Readable only below this transaction id; it names the blocker even when the database
        # user may not see other sessions in pg_stat_activity.
        "horizon_xid": horizon,
        "oldest_open_transaction": _oldest_open_transaction(session) if held_back else None,
        "last_error": offset["last_error"],
        "last_error_at": iso(offset["last_error_at"]),
        **_rules(session),
    }
    syncs = [plain(r) for r in oasis_events.recent_syncs(session)]
    return {
        "ok": True,
        "vtid": "VTID-0521",
        "status": report,
        "recent_syncs": syncs,
        "timestamp": now(),
    }


RULES = "SELECT ledger_rules_version() AS rules_version, ledger_outdated_rows() AS outdated_rows"


def _rules(session: Session) -> dict[str, Any]:
    """The fold's rules version, and how many rows older rules folded (`rebuild --outdated`)."""
    row = session.one(RULES)
    assert row is not None
    return {"rules_version": row["rules_version"], "outdated_rows": int(row["outdated_rows"])}


def metrics(session: Session) -> dict[str, Any]:
    """The seed's shape, plus each path's lag and, for the real-time path, redeliveries; the
    ledger's size and rejections; and what this process itself counted (ingest)."""
    from ledger.instance_counters import this_process

    realtime = session.one(projector_progress.TOTALS, name=projector_progress.PROJECTOR)
    assert realtime is not None
    writer = projection_offsets.read(session)
    backlog, lag = _backlog(session, writer)
    keys = ("events_processed", "created", "updated", "stale", "skipped", "errors")
    rules = _rules(session)
    last_lag = realtime["last_delivery_lag_seconds"]
    return {
        "projectors": {
            projector_progress.PROJECTOR: {
                **{k: int(realtime[k]) for k in keys},
                "last_processed_at": iso(realtime["last_processed_at"]),
                "last_event_time": iso(realtime["last_event_time"]),
                # publish to applied, for the newest event; a mean from the sum and count
                "lag_seconds": None if last_lag is None else round(last_lag, 3),
                "delivery_lag_seconds_sum": round(realtime["delivery_lag_seconds_sum"], 3),
                "delivery_lag_count": int(realtime["delivery_lag_count"]),
                "delivery_lag_buckets": _lag_buckets(realtime),
                "redelivered": int(realtime["redelivered"]),
            },
            projection_offsets.PROJECTOR: {
                **{k: int(writer[k] or 0) for k in keys},
                "last_processed_at": iso(writer["last_processed_at"]),
                "last_event_time": iso(writer["last_event_time"]),
                "lag_seconds": lag,
                "backlog": int(backlog["backlog"]),
                "outdated_rows": rules["outdated_rows"],
            },
        },
        "ledger": _ledger(session, rules["rules_version"]),
        "instance": this_process().report(),
        "timestamp": now(),
    }


def _lag_buckets(realtime: dict[str, Any]) -> dict[str, int]:
    """Cumulative counts by upper bound, as a Prometheus histogram has them (+Inf: all)."""
    from itertools import accumulate

    counts = accumulate(int(c) for c in realtime["delivery_lag_buckets"])
    buckets = {
        str(float(b)): c for b, c in zip(realtime["delivery_lag_bounds"], counts, strict=True)
    }
    return {**buckets, "+Inf": int(realtime["delivery_lag_count"])}


LEDGER_ROWS = "SELECT count(*) FROM vtid_ledger"


def _ledger(session: Session, rules_version: str) -> dict[str, Any]:
    """The ledger's size, the rejections kept (by source: pubsub, ingest, sweep; ingest's
    refusals are counted here, not by either projector), and what is running."""
    from ledger import __version__

    by_reason = ledger_rejections.by_reason(session)
    return {
        "rows": int(session.scalar(LEDGER_ROWS)),
        "rejections_kept": {source: sum(kinds.values()) for source, kinds in by_reason.items()},
        "rejections_kept_by_reason": by_reason,
        "version": __version__,
        "rules_version": rules_version,
    }
