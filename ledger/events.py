"""OASIS events (docs/behaviour.md §1): the edge's strict JSON, and the reference decoder.

Production decoding runs in Postgres (`ledger_decode_json`, `ledger_decode_row` in
sql/). This module keeps an independent Python version of the same rules: `verify` and
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
"""An event whose JSON text is larger is rejected on every path (docs/behaviour.md §1)."""
MAX_NUMBER_DIGITS = 1000
"""Digits of a JSON number as jsonb keeps it (`1e2` is `100`): a larger one is rejected."""
MAX_DEPTH = 64
"""Levels of nesting of an event's JSON, the event object being the first."""
MAX_FRACTION_DIGITS = 100
"""Fraction digits of created_at read before rounding; Postgres cannot read a longer time."""

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
# The fields that must be strings (or null), in the order the first wrong one is reported.
STRING_FIELDS = (
    "id",
    *_ALIASES["created_at"],
    *_ALIASES["type"],
    *_ALIASES["service"],
    *_ALIASES["status"],
    *_TEXT_FIELDS,
)


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


# --- Strict JSON, within the limits of one edge -----------------------------------------------


class _OverLimit(ValueError):
    """A JSON value beyond one of the edge's limits (not a syntax error)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def number_digits(value: int | Decimal | float) -> int:
    """Digits of a number as jsonb prints it (numeric's text: no exponent, no sign)."""
    if isinstance(value, int):
        # 2**3400 has more than 1,000 digits: no need to print it (CPython refuses past 4,300).
        return MAX_NUMBER_DIGITS + 1 if value.bit_length() > 3400 else len(str(abs(value)))
    number = value if isinstance(value, Decimal) else Decimal(repr(value))
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    if exponent >= 0:
        return 1 if number.is_zero() else len(digits) + exponent
    return -exponent + max(1, len(digits) + exponent)


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _OverLimit(f"a number of more than {MAX_NUMBER_DIGITS} digits")
    return int(text)


def _number(text: str) -> Decimal:
    value = Decimal(text)
    if number_digits(value) > MAX_NUMBER_DIGITS:
        raise _OverLimit(f"a number of more than {MAX_NUMBER_DIGITS} digits")
    return value


def limits_reason(value: Any, depth: int = 1) -> str | None:
    """Why a JSON value (at nesting level `depth`) breaks the edge's limits, or None. Walks
    without recursion: a value nested thousands deep cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping | list):
            if level > MAX_DEPTH:
                return f"event JSON nests deeper than {MAX_DEPTH} levels"
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, level + 1) for child in children)
        elif (
            isinstance(item, int | Decimal | float)
            and not isinstance(item, bool)
            and number_digits(item) > MAX_NUMBER_DIGITS
        ):
            return f"event JSON holds a number of more than {MAX_NUMBER_DIGITS} digits"
    return None


def parse_json(data: bytes | str, *, limited: bool = True) -> Any:
    """Parse JSON strictly: no NaN or Infinity; numbers kept as written (int or Decimal). Limited
    (an event, or JSON inside one): numbers of at most 1,000 digits, at most 64 levels. Not
    limited (what the ledger holds): any depth Python can parse, any number Postgres holds."""
    try:
        value = json.loads(
            data,
            parse_constant=_reject_constant,
            parse_float=_number if limited else Decimal,
            # Not limited: Decimal reads integers of any length (int stops at 4,300 digits).
            parse_int=_int if limited else Decimal,
        )
    except _OverLimit as exc:
        raise Rejected(f"event JSON holds {exc}") from None
    except RecursionError:
        raise Rejected(f"event JSON nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise Rejected(f"event is not valid JSON: {exc}") from None
    if limited and (reason := limits_reason(value)):
        raise Rejected(reason)
    return value


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


def _storable(text: str) -> bool:
    try:
        check_storable(text, "text")
    except Rejected:
        return False
    return True


def check_size(size: int) -> None:
    if size > MAX_EVENT_BYTES:
        raise Rejected(f"event JSON is {size} bytes; the limit is {MAX_EVENT_BYTES} (256 KiB)")


def edge_text(data: bytes) -> str:
    """What the edge passes on: the payload as text once it is strict JSON within the edge's
    limits (size, digits, depth) and holds nothing Postgres cannot store (NUL, a lone
    surrogate). The database then decodes it (ledger_decode_json), numbers keeping the digits
    they were sent with."""
    check_size(len(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("event is not valid UTF-8") from None
    check_storable(parse_json(text), "event")
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


def _scalar_text(value: Any) -> str:
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
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def jsonb_text(value: Any) -> str:
    """A JSON value as Postgres's jsonb prints it: object keys by length, then bytes. Written
    without recursion, so that no depth of nesting can exhaust the stack."""
    out: list[str] = []
    # Work items: a value to print, or a piece of punctuation to emit as it is.
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack:
        literal, item = stack.pop()
        if literal:
            out.append(item)
        elif isinstance(item, Mapping):
            keys = sorted(item, key=lambda k: (len(k.encode()), k.encode()))
            todo: list[tuple[bool, Any]] = [(True, "{")]
            for i, key in enumerate(keys):
                todo.append((True, (", " if i else "") + _json_string(key) + ": "))
                todo.append((False, item[key]))
            todo.append((True, "}"))
            stack.extend(reversed(todo))
        elif isinstance(item, list):
            todo = [(True, "[")]
            for i, sub in enumerate(item):
                if i:
                    todo.append((True, ", "))
                todo.append((False, sub))
            todo.append((True, "]"))
            stack.extend(reversed(todo))
        else:
            out.append(_scalar_text(item))
    return "".join(out)


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
    half to even. An event read back from the table and the same event pushed are one instant.
    Digits past the 100th are dropped first (Postgres refuses so long a time; both do this)."""
    return round(float("0." + digits[:MAX_FRACTION_DIGITS]) * 1_000_000) if digits else 0


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


def time_text(value: datetime) -> str:
    """A time as the canonical event JSON writes it (`ledger_time_text`): UTC, microseconds, Z,
    whatever any server or session setting says."""
    t = value.astimezone(UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond:06d}Z"
    )


# --- Decoding ---------------------------------------------------------------------------------


def _text(obj: Mapping[str, Any], *names: str) -> str | None:
    """First present value among the aliases; null and "" are absent. Every present alias
    must be a string, the ones behind the first too (as Postgres checks them)."""
    found: str | None = None
    for name in names:
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Rejected(f"{name} must be a string, got {type(value).__name__}")
        if found is None and value != "":
            found = value
    return found


def _metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """metadata, else payload: an object, or a string holding one. Both are checked when both
    are present."""
    found: dict[str, Any] | None = None
    for name in _ALIASES["metadata"]:
        value = obj.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            value = parse_json(value) if value.strip() else {}
        if not isinstance(value, Mapping):
            raise Rejected(f"{name} must be a JSON object, got {type(value).__name__}")
        if found is None:
            found = dict(value)
    return found or {}


def event_json(event_id: str, created_at: datetime, fields: Mapping[str, Any]) -> str:
    """The decoded event's canonical JSON text (`ledger_event_json`): what ingest publishes, and
    what the edge's limits measure for a row of the log."""
    names = ("type", "service", "status", *_TEXT_FIELDS)
    obj: dict[str, Any] = {"id": event_id, "created_at": time_text(created_at)}
    obj.update((_WIRE_NAMES.get(n, n), fields[n]) for n in names if fields[n] is not None)
    obj["metadata"] = fields["metadata"]
    return jsonb_text(obj)


_WIRE_NAMES = {"type": "topic"}


MAX_EVENT_KEYS = 256
"""Keys an event's metadata may carry; a row keeps at most fold.MAX_ROW_KEYS of them."""


def _check_event_json(event_id: str, created_at: datetime, fields: Mapping[str, Any]) -> None:
    """The edge's limits on the event as decoded: the same measure on every path."""
    reason = limits_reason(fields["metadata"], depth=2)
    if reason is not None:
        raise Rejected(reason)
    check_size(len(event_json(event_id, created_at, fields).encode("utf-8")))
    if len(fields["metadata"]) > MAX_EVENT_KEYS:
        raise Rejected(
            f"metadata has {len(fields['metadata'])} keys; the limit is {MAX_EVENT_KEYS}"
        )


MAX_FUTURE = timedelta(minutes=5)
"""The default tolerance for a created_at after the event's receipt (ledger_settings)."""


def decode(
    obj: Any,
    *,
    default_time: datetime | None = None,
    received_at: datetime | None = None,
    max_future: timedelta = MAX_FUTURE,
) -> Event:
    """Decode one event; `default_time` (a Pub/Sub publish time) stands in for created_at.
    `received_at` (when the log stored it, or the publish time) bounds created_at: an event
    dated more than `max_future` after it is refused, so one message cannot freeze a task."""
    if not isinstance(obj, Mapping):
        raise Rejected(f"event must be a JSON object, got {type(obj).__name__}")
    raw_id = obj.get("id")
    if raw_id is None or raw_id == "":
        raise Rejected("event has no id")
    if not isinstance(raw_id, str):
        raise Rejected(f"id must be a string, got {type(raw_id).__name__}")
    try:
        check_storable(obj, "event")
        for name in _ALIASES["created_at"]:
            if obj.get(name) is not None and not isinstance(obj[name], str | datetime):
                raise Rejected(f"{name} must be an ISO-8601 string, got {type(obj[name]).__name__}")
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
        if received_at is not None and created_at > received_at + max_future:
            raise Rejected(
                f"created_at {time_text(created_at)} is more than "
                f"{int(max_future.total_seconds())} s after the event was received "
                f"({time_text(received_at)}): a time from the future would freeze its task"
            )
        _check_event_json(raw_id, created_at, fields)
    except Rejected as exc:
        raise Rejected(exc.reason, raw_id if _storable(raw_id) else None) from None
    return Event(id=raw_id, created_at=created_at, digest=digest(fields), **fields)
