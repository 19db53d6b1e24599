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
    """Make a database value JSON-ready: times as `iso` writes them. Walks without recursion,
    so no depth of nesting exhausts the stack."""
    if isinstance(value, datetime):
        return iso(value)
    if not isinstance(value, dict | list):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, datetime):
                copied: Any = iso(item)
            elif isinstance(item, dict | list):
                copied = {} if isinstance(item, dict) else []
                stack.append((item, copied))
            else:
                copied = item
            if isinstance(target, dict):
                target[key] = copied
            else:
                target.append(copied)
    return root
