"""The fold (SPEC §5): a ledger row as a pure function of the set of its events.

The fold is kept as a `State` that is a join-semilattice: every part of it is "the value of the
event with the greatest (or least) key", so `merge` is commutative, associative and idempotent.
That is what makes the ledger independent of delivery order, duplication and concurrency: any
writer can merge any subset of events into any stored state and reach the same result.

Event order is (created_at, status priority, id, digest); the digest only separates different
events that reuse one id and time, a producer bug that must still give one deterministic row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ledger.events import Event
from ledger.status import map_status, priority

Key = tuple[datetime, int, str, str]

# Keys the fold turns into columns; they do not also go into the row's metadata.
COLUMN_KEYS = frozenset(
    {
        "vtid",
        "tenant",
        "description",
        "summary",
        "taskFamily",
        "task_family",
        "taskType",
        "task_type",
        "assignedTo",
        "assigned_to",
        "assignee",
    }
)
# The writer's own metadata keys; an event cannot set them.
WRITER_KEYS = frozenset({"autoCreated", "sourceEvent", "sourceType", "lastEventType"})
_META = "meta."
# Sorts after any digest, so an event identical in key to a pre-existing row's last event
# (one the old writer already applied) does not count as newer.
_BASE_DIGEST = "~"


def event_key(event: Event) -> Key:
    return (
        event.created_at,
        priority(map_status(event.type, event.status)),
        event.id,
        event.digest,
    )


def _meta_text(metadata: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = metadata.get(name)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Facts:
    """What the fold keeps of the newest and of the founding event."""

    key: Key
    type: str | None
    status: str
    service: str
    environment: str
    description: str
    task_family: str
    task_type: str
    tenant: str

    @classmethod
    def of(cls, event: Event) -> Facts:
        meta = event.metadata
        return cls(
            key=event_key(event),
            type=event.type,
            status=map_status(event.type, event.status),
            service=event.service,
            environment=_meta_text(meta, "environment", "env") or "dev",
            description=event.title
            or event.message
            or f"Auto-created from OASIS event: {event.type or 'unknown'}",
            task_family=event.layer or "auto",
            task_type=event.kind or event.type or "event",
            tenant=event.tenant or _meta_text(meta, "tenant") or "system",
        )


@dataclass(frozen=True, slots=True)
class Register:
    """A value and the key of the newest event that set it explicitly."""

    key: Key
    value: Any


def register_values(event: Event) -> dict[str, Any]:
    """The values this event sets explicitly, by register name."""
    meta = event.metadata
    values: dict[str, Any] = {}
    explicit = {
        "description": _meta_text(meta, "description", "summary"),
        "task_family": _meta_text(meta, "taskFamily", "task_family"),
        "task_type": _meta_text(meta, "taskType", "task_type"),
        "assigned_to": _meta_text(meta, "assignedTo", "assigned_to", "assignee"),
    }
    values.update((name, value) for name, value in explicit.items() if value is not None)
    for name, value in meta.items():
        if name in COLUMN_KEYS or name in WRITER_KEYS or value is None or value == "":
            continue
        values[_META + name] = value
    return values


@dataclass(frozen=True, slots=True)
class Base:
    """A row that existed before any event reached it (created by another system)."""

    status: str | None = None
    service: str | None = None
    environment: str | None = None
    last_event_id: str | None = None
    last_event_at: datetime | None = None
    description: str | None = None
    task_family: str | None = None
    task_type: str | None = None
    assigned_to: str | None = None
    tenant: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Key | None:
        """Its newest event's key; None (older than any event) without last_event_at."""
        if self.last_event_at is None:
            return None
        return (self.last_event_at, priority(self.status), self.last_event_id or "", _BASE_DIGEST)


@dataclass(frozen=True, slots=True)
class State:
    newest: Facts
    founding: Facts
    registers: Mapping[str, Register]
    base: Base | None = None

    @classmethod
    def of(cls, event: Event, base: Base | None = None) -> State:
        facts = Facts.of(event)
        key = facts.key
        registers = {name: Register(key, v) for name, v in register_values(event).items()}
        return cls(newest=facts, founding=facts, registers=registers, base=base)


def merge(a: State, b: State) -> State:
    registers = dict(a.registers)
    for name, reg in b.registers.items():
        mine = registers.get(name)
        if mine is None or reg.key > mine.key:
            registers[name] = reg
    return State(
        newest=a.newest if a.newest.key >= b.newest.key else b.newest,
        founding=a.founding if a.founding.key <= b.founding.key else b.founding,
        registers=registers,
        base=a.base if a.base is not None else b.base,
    )


def apply(state: State | None, event: Event) -> State:
    one = State.of(event)
    return one if state is None else merge(state, one)


def fold_events(events: Iterable[Event], base: Base | None = None) -> State | None:
    """The SPEC's definition read literally: sort the distinct events, take newest and founding,
    and for each register the newest event that carries it. Tests hold `merge` to this."""
    distinct = {event_key(e): e for e in events}
    if not distinct:
        return None
    ordered = [distinct[k] for k in sorted(distinct)]
    registers: dict[str, Register] = {}
    for event in reversed(ordered):
        for name, value in register_values(event).items():
            registers.setdefault(name, Register(event_key(event), value))
    return State(
        newest=Facts.of(ordered[-1]), founding=Facts.of(ordered[0]), registers=registers, base=base
    )


@dataclass(frozen=True, slots=True)
class Row:
    """The ledger columns the fold determines."""

    status: str | None
    service: str | None
    environment: str | None
    last_event_id: str | None
    last_event_at: datetime | None
    description: str | None
    task_family: str | None
    task_type: str | None
    assigned_to: str | None
    tenant: str | None
    metadata: Mapping[str, Any]


def _reg(state: State, name: str) -> Any:
    reg = state.registers.get(name)
    return None if reg is None else reg.value


def render(state: State) -> Row:
    newest, founding, base = state.newest, state.founding, state.base
    base_key = base.key if base is not None else None
    latest: Any = (
        base if base is not None and base_key is not None and base_key >= newest.key else None
    )

    def founding_column(name: str) -> Any:
        explicit = _reg(state, name)
        if explicit is not None:
            return explicit
        kept = getattr(base, name) if base is not None else None
        return kept if kept is not None else getattr(founding, name)

    metadata: dict[str, Any] = dict(base.metadata) if base is not None else {}
    for name, reg in state.registers.items():
        if name.startswith(_META):
            metadata[name[len(_META) :]] = reg.value
    if base is None:
        metadata.update(autoCreated=True, sourceEvent=founding.key[2], sourceType=founding.type)
    if founding.key != newest.key:
        metadata["lastEventType"] = newest.type

    return Row(
        status=latest.status if latest else newest.status,
        service=latest.service if latest else newest.service,
        environment=latest.environment if latest else newest.environment,
        last_event_id=latest.last_event_id if latest else newest.key[2],
        last_event_at=latest.last_event_at if latest else newest.key[0],
        description=founding_column("description"),
        task_family=founding_column("task_family"),
        task_type=founding_column("task_type"),
        assigned_to=_reg(state, "assigned_to")
        if _reg(state, "assigned_to") is not None
        else (base.assigned_to if base is not None else None),
        tenant=founding_column("tenant"),
        metadata=metadata,
    )


def with_base(state: State, base: Base | None) -> State:
    return state if base is None else replace(state, base=base)


# --- Storage form: the state lives in vtid_ledger.fold_state as JSON. ---


def _key_json(key: Key) -> list[Any]:
    return [key[0].isoformat(), key[1], key[2], key[3]]


def _key_from(raw: list[Any]) -> Key:
    return (datetime.fromisoformat(raw[0]), int(raw[1]), str(raw[2]), str(raw[3]))


def _facts_json(facts: Facts) -> dict[str, Any]:
    return {
        "key": _key_json(facts.key),
        "type": facts.type,
        "status": facts.status,
        "service": facts.service,
        "environment": facts.environment,
        "description": facts.description,
        "task_family": facts.task_family,
        "task_type": facts.task_type,
        "tenant": facts.tenant,
    }


def _facts_from(raw: Mapping[str, Any]) -> Facts:
    return Facts(**{**raw, "key": _key_from(raw["key"])})


def base_json(base: Base) -> dict[str, Any]:
    return {
        "status": base.status,
        "service": base.service,
        "environment": base.environment,
        "last_event_id": base.last_event_id,
        "last_event_at": base.last_event_at.isoformat() if base.last_event_at else None,
        "description": base.description,
        "task_family": base.task_family,
        "task_type": base.task_type,
        "assigned_to": base.assigned_to,
        "tenant": base.tenant,
        "metadata": dict(base.metadata),
    }


def base_from(raw: Mapping[str, Any]) -> Base:
    at = raw.get("last_event_at")
    return Base(**{**raw, "last_event_at": datetime.fromisoformat(at) if at else None})


def to_json(state: State) -> dict[str, Any]:
    return {
        "v": 1,
        "newest": _facts_json(state.newest),
        "founding": _facts_json(state.founding),
        "registers": {
            name: [_key_json(reg.key), reg.value] for name, reg in sorted(state.registers.items())
        },
        "base": base_json(state.base) if state.base is not None else None,
    }


def from_json(raw: Mapping[str, Any]) -> State:
    return State(
        newest=_facts_from(raw["newest"]),
        founding=_facts_from(raw["founding"]),
        registers={
            name: Register(_key_from(pair[0]), pair[1]) for name, pair in raw["registers"].items()
        },
        base=base_from(raw["base"]) if raw.get("base") else None,
    )
