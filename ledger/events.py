"""OASIS events (docs/behaviour.md §1): the edge's strict JSON, and the reference decoder.

Production decoding runs in Postgres (`ledger_decode_json`, `ledger_decode_row` in
migrations/). This module keeps an independent Python version of the same rules: `verify` and
the differential tests hold the SQL to it. The edge (a Pub/Sub push, an ingest request) uses
`parse_json` here before anything reaches the database.

JSON numbers are kept as written (`int`, or `Decimal` for the rest) because Postgres's jsonb
keeps them as numeric: 1.50 stays 1.50, and the event digest is computed from jsonb's text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
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
# Postgres's numeric: at most 131072 digits before the point and 16383 after.
_MAX_NUMERIC_INTEGER_DIGITS = 131072
_MAX_NUMERIC_SCALE = 16383


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


# --- Strict JSON ------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _number(text: str) -> Decimal:
    value = Decimal(text)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if value.adjusted() >= _MAX_NUMERIC_INTEGER_DIGITS or -exponent > _MAX_NUMERIC_SCALE:
        raise ValueError(f"{text[:32]} is out of range for a JSON number Postgres can store")
    return value


def parse_json(data: bytes | str) -> Any:
    """Parse JSON strictly: no NaN or Infinity, no number jsonb cannot hold, within the size
    limit. Numbers are kept as written (int or Decimal)."""
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > MAX_EVENT_BYTES:
        raise Rejected(f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        return json.loads(data, parse_constant=_reject_constant, parse_float=_number)
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


def edge_text(data: bytes) -> str:
    """What the edge passes on: the payload as text once it is strict JSON within the size
    limit. The database then decodes it (ledger_decode_json), numbers keeping the digits they
    were sent with; text Postgres cannot hold (an escaped NUL, a lone surrogate) it refuses
    itself, and that refusal is recorded like any other."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("event is not valid UTF-8") from None
    parse_json(text)
    return text


# --- jsonb's text, for the digest -------------------------------------------------------------

_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_JSON_ESCAPES["\t"] = "\\t"


def _json_string(text: str) -> str:
    out = []
    for char in text:
        escaped = _JSON_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _numeric_text(value: Decimal) -> str:
    text = format(value, "f")
    return text.lstrip("-") if value.is_zero() else text


def jsonb_text(value: Any) -> str:
    """A JSON value as Postgres's jsonb prints it: object keys by length, then bytes."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _numeric_text(value)
    if isinstance(value, float):
        return _numeric_text(Decimal(repr(value)))
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    if isinstance(value, Mapping):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{_json_string(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


_RECORD_QUOTE = frozenset('"\\(),') | frozenset(" \t\n\r\x0b\x0c")


def _record_text(fields: list[str | None]) -> str:
    """A row's text as Postgres's record_out prints it."""
    out = []
    for value in fields:
        if value is None:
            out.append("")
            continue
        body = value.replace("\\", "\\\\").replace('"', '""')
        quote = value == "" or any(char in _RECORD_QUOTE for char in value)
        out.append(f'"{body}"' if quote else body)
    return "(" + ",".join(out) + ")"


def digest(fields: Mapping[str, Any]) -> str:
    """md5 of the decoded event's row text, as `ledger_digest` computes it."""
    row = [fields[name] for name in ("type", "service", "status", *_TEXT_FIELDS)]
    text = _record_text([*row, jsonb_text(fields["metadata"])])
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:16]


# --- Times ------------------------------------------------------------------------------------

_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


def _postgres_microseconds(digits: str) -> int:
    """Postgres reads a fraction with strtod and rounds it with rint: the same double, rounded
    half to even. An event read back from the table and the same event pushed are one instant."""
    return round(float("0." + digits) * 1_000_000) if digits else 0


def _offset(zone: str | None) -> timezone | None:
    if zone is None or zone == "Z":
        return UTC
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 15 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if zone[0] == "-" else delta)


def parse_time(value: Any, name: str = "created_at") -> datetime:
    """YYYY-MM-DD, optionally [T ]HH:MM[:SS[.fraction]] and a zone (Z, +HH, +HHMM, +HH:MM up to
    15:59); no zone is UTC. The fraction rounds to microseconds as Postgres rounds it. The time
    must fall in years 1 to 9999, UTC. As `ledger_parse_time` reads it."""
    if isinstance(value, datetime):
        parsed = value if value.tzinfo else value.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    if not isinstance(value, str):
        raise Rejected(f"{name} must be an ISO-8601 string, got {type(value).__name__}")
    found = _TIME.fullmatch(value)
    zone = _offset(found.group(8)) if found else None
    try:
        if found is None or zone is None:
            raise ValueError
        year, month, day, hour, minute, second = (int(found.group(i) or 0) for i in range(1, 7))
        local = datetime(year, month, day, hour, minute, second, tzinfo=zone)
        parsed = local.astimezone(UTC) + timedelta(
            microseconds=_postgres_microseconds(found.group(7) or "")
        )
    except (ValueError, OverflowError):
        raise Rejected(
            f"{name} is not an ISO-8601 time (YYYY-MM-DDTHH:MM:SS[.f][Z|+HH:MM]) "
            f"between years 1 and 9999: {value[:64]!r}"
        ) from None
    if parsed < _EARLIEST:
        raise Rejected(f"{name} is out of range: {value[:64]!r}")
    return parsed


# --- Decoding ---------------------------------------------------------------------------------


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
    return Event(id=raw_id, created_at=created_at, digest=digest(fields), **fields)
