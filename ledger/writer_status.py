"""The writer's health, as status and metrics report it: the offset, lag, backlog, the snapshot
horizon, and both projectors' counters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger import oasis_events, projection_offsets, projector_progress
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


def status(session: Session) -> dict[str, Any]:
    offset = projection_offsets.read(session)
    backlog = oasis_events.backlog(session, projection_offsets.position_of(offset))
    lag = 0.0
    if backlog["backlog"] and backlog["oldest"] is not None:
        lag = max(0.0, (datetime.now(UTC) - backlog["oldest"]).total_seconds())
    held_back = int(backlog["held_back"])
    horizon = session.scalar(HORIZON_XID)
    report: dict[str, Any] = {
        "running": offset["last_error"] is None,
        "events_processed": int(offset["events_processed"] or 0),
        "last_processed_at": iso(offset["last_processed_at"]),
        "last_event_id": offset["last_event_id"],
        "last_event_time": iso(offset["last_event_time"]),
        "lag_seconds": round(lag, 3),
        "backlog": int(backlog["backlog"]),
        "held_back": held_back,
        # Readable only below this transaction id; it names the blocker even when the database
        # user may not see other sessions in pg_stat_activity.
        "horizon_xid": horizon,
        "oldest_open_transaction": _oldest_open_transaction(session) if held_back else None,
        "last_error": offset["last_error"],
        "last_error_at": iso(offset["last_error_at"]),
    }
    syncs = [plain(r) for r in oasis_events.recent_syncs(session)]
    return {
        "ok": True,
        "vtid": "VTID-0521",
        "status": report,
        "recent_syncs": syncs,
        "timestamp": now(),
    }


def metrics(session: Session) -> dict[str, Any]:
    realtime = session.one(projector_progress.TOTALS, name=projector_progress.PROJECTOR)
    assert realtime is not None
    writer = projection_offsets.read(session)
    keys = ("events_processed", "created", "updated", "skipped", "errors")
    return {
        "projectors": {
            projector_progress.PROJECTOR: {
                **{k: int(realtime[k]) for k in keys},
                "last_processed_at": iso(realtime["last_processed_at"]),
                "last_event_time": iso(realtime["last_event_time"]),
            },
            projection_offsets.PROJECTOR: {
                **{k: int(writer[k] or 0) for k in keys},
                "last_processed_at": iso(writer["last_processed_at"]),
                "last_event_time": iso(writer["last_event_time"]),
            },
        },
        "timestamp": now(),
    }


def prometheus(report: dict[str, Any]) -> str:
    """The metrics in Prometheus' text exposition format."""
    lines: list[str] = []
    counters = {
        "events_processed": "Events processed (created, updated, stale, skipped or rejected).",
        "created": "Events that created a ledger row.",
        "updated": "Events that changed a ledger row.",
        "skipped": "Events without a valid VTID.",
        "errors": "Events rejected as unreadable.",
    }
    for name, help_text in counters.items():
        metric = f"vtid_ledger_{name}_total"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        for projector, values in report["projectors"].items():
            lines.append(f'{metric}{{projector="{projector}"}} {values[name]}')
    gauges = {
        "last_processed_at": "Unix time the projector last processed an event.",
        "last_event_time": "created_at of the newest event the projector processed, Unix time.",
    }
    for name, help_text in gauges.items():
        metric = f"vtid_ledger_{name}_seconds"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for projector, values in report["projectors"].items():
            stamp = values[name]
            if stamp is not None:
                seconds = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                lines.append(f'{metric}{{projector="{projector}"}} {seconds:.3f}')
    return "\n".join(lines) + "\n"
