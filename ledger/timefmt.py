"""Times as responses and logs show them: ISO-8601 UTC with `Z`, like the seed document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    # Milliseconds as the seed document shows them, unless that would lose precision.
    spec = "milliseconds" if utc.microsecond % 1000 == 0 else "microseconds"
    return utc.isoformat(timespec=spec).replace("+00:00", "Z")


def now() -> str:
    stamp = iso(datetime.now(UTC))
    assert stamp is not None
    return stamp


def plain(value: Any) -> Any:
    """Make a database value JSON-ready."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
