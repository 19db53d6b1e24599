"""The `ledger_settings` table: settings every path reads from the database, so that no two
processes judge an event differently (the tolerance for times from the future)."""

from __future__ import annotations

from datetime import timedelta

from ledger.db import Session

MAX_FUTURE = "SELECT extract(epoch FROM ledger_max_future())::float8 AS seconds"
SET = """
INSERT INTO ledger_settings (name, value) VALUES (:name, :value)
ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"""


def max_future(session: Session) -> timedelta:
    """How far after its receipt an event's created_at may lie."""
    return timedelta(seconds=float(session.scalar(MAX_FUTURE)))


def set_max_future(session: Session, seconds: float) -> None:
    session.run(SET, name="max_future_seconds", value=repr(float(seconds)))


def set_rejections_retention(session: Session, days: int) -> None:
    session.run(SET, name="rejections_retention_days", value=str(int(days)))
