"""Decoding and validation of OASIS events at the edge (SPEC §2).

Whatever the source (a Pub/Sub message, a row of `oasis_events`, an ingest request), an event
is decoded here into a frozen `Event`, or `Rejected` is raised with a reason a person can act on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_EVENT_BYTES = 256 * 1024
"""A larger event is rejected: a task event that size is a producer bug, and it would bloat rows."""

PROJECTOR_SERVICE = "oasis-projector"
SYNC_TYPE = "ledger_sync"

_TEXT_FIELDS = ("vtid", "message", "title", "ref", "layer", "module", "kind", "tenant", "notes")
_ALIASES: dict[str, tuple[str, ...]] = {
    "created_at": ("created_at", "createdAt"),
    "type": ("topic", "event", "type"),
    "service": ("service", "source"),
    "status": ("status",),
    "metadata": ("metadata", "payload"),
}


class Rejected(ValueError):
    """The event cannot be read; it is recorded and acknowledged, never retried."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    created_at: datetime
    type: str | None = None
    service: str = "unknown"
    status: str | None = None
    vtid: str | None = None
    message: str | None = None
    title: str | None = None
    ref: str | None = None
    layer: str | None = None
    module: str | None = None
    kind: str | None = None
    tenant: str | None = None
    notes: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    digest: str = ""
    """Content digest: breaks ties between different events that reuse one id and time."""

    @property
    def is_own_sync(self) -> bool:
        """The writer's own `ledger_sync` events are ignored by both paths and every counter."""
        return self.service == PROJECTOR_SERVICE and self.type == SYNC_TYPE


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:32]} is out of range for a JSON number")
    return value


def parse_json(data: bytes | str) -> Any:
    """Parse JSON strictly (no NaN/Infinity, which jsonb cannot store)."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_EVENT_BYTES:
        raise Rejected(f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        return json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise Rejected("event JSON is nested too deeply") from None
    except ValueError as exc:
        raise Rejected(f"event is not valid JSON: {exc}") from None


def check_storable(value: Any, where: str) -> None:
    """Postgres cannot store NUL in text or jsonb, nor lone surrogates in UTF-8."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise Rejected(f"{path} contains a NUL character, which Postgres cannot store")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise Rejected(f"{path} is not valid Unicode (lone surrogate)") from None
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                stack.append((key, f"{path} key"))
                stack.append((sub, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((sub, f"{path}[{i}]") for i, sub in enumerate(item))


def _text(obj: Mapping[str, Any], *names: str) -> str | None:
    """First present value among the aliases; null and "" are absent; non-strings are rejected."""
    for name in names:
        value = obj.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise Rejected(f"{name} must be a string, got {type(value).__name__}")
        check_storable(value, name)
        return value
    return None


def _postgres_microseconds(digits: str) -> int:
    """Postgres reads a fraction with strtod and rounds it with rint: the same double, rounded
    half to even. An event read back from the table and the same event pushed are one instant."""
    return round(float("0." + digits) * 1_000_000) if digits else 0


def parse_time(value: Any, name: str = "created_at") -> datetime:
    """ISO-8601 with zone; no zone means UTC. Fractions round to microseconds as Postgres's."""
    micros = 0
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if "." in text:
            # Producers in other languages send nanoseconds; Postgres keeps microseconds.
            head, _, rest = text.partition(".")
            digits = len(rest) - len(rest.lstrip("0123456789"))
            micros = _postgres_microseconds(rest[:digits])
            text = head + rest[digits:]
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise Rejected(f"{name} is not an ISO-8601 time: {value[:64]!r}") from None
    else:
        raise Rejected(f"{name} must be an ISO-8601 string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC) + timedelta(microseconds=micros)
    except OverflowError:
        raise Rejected(f"{name} is out of range") from None


def _metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    for name in _ALIASES["metadata"]:
        value = obj.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            value = parse_json(value) if value.strip() else {}
        if not isinstance(value, Mapping):
            raise Rejected(f"{name} must be a JSON object, got {type(value).__name__}")
        check_storable(value, name)
        return dict(value)
    return {}


def _digest(fields: Mapping[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def decode(obj: Any, *, default_time: datetime | None = None) -> Event:
    """Decode one event; `default_time` (a Pub/Sub publish time) stands in for created_at."""
    if not isinstance(obj, Mapping):
        raise Rejected(f"event must be a JSON object, got {type(obj).__name__}")
    raw_id = obj.get("id")
    if raw_id is None or raw_id == "":
        raise Rejected("event has no id")
    if not isinstance(raw_id, str):
        raise Rejected(f"id must be a string, got {type(raw_id).__name__}")
    check_storable(raw_id, "id")
    try:
        raw_time = next(
            (obj[n] for n in _ALIASES["created_at"] if obj.get(n) not in (None, "")), None
        )
        if raw_time is None:
            if default_time is None:
                raise Rejected("event has no created_at")
            created_at = parse_time(default_time)
        else:
            created_at = parse_time(raw_time)
        fields: dict[str, Any] = {
            "type": _text(obj, *_ALIASES["type"]),
            "service": _text(obj, *_ALIASES["service"]) or "unknown",
            "status": _text(obj, *_ALIASES["status"]),
            **{name: _text(obj, name) for name in _TEXT_FIELDS},
            "metadata": _metadata(obj),
        }
    except Rejected as exc:
        raise Rejected(exc.reason, raw_id) from None
    digest = _digest({"id": raw_id, "created_at": created_at.isoformat(), **fields})
    return Event(id=raw_id, created_at=created_at, digest=digest, **fields)


def decode_bytes(data: bytes, *, default_time: datetime | None = None) -> Event:
    return decode(parse_json(data), default_time=default_time)
