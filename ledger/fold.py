"""The fold (docs/behaviour.md §4): a ledger row as a pure function of the set of its events.

This is the reference: production folds inside Postgres (`ledger_fold` and `ledger_merge` in
sql/), and `verify` and the differential tests hold those to this.

The fold is kept as a `State` that is a join-semilattice: every part of it is "the value of the
event with the greatest (or least) key", so `merge` is commutative, associative and idempotent.
That is what makes the ledger independent of delivery order, duplication and concurrency: any
writer can merge any subset of events into any stored state and reach the same result.

Event order is (created_at, status priority, id, digest); the digest only separates different
events that reuse one id and time, a producer bug that must still give one deterministic row.

A row another system made before any event reached it (a `Base`) keeps its founding columns,
tenant and metadata unless an event sets them explicitly, and gets none of the writer's own
metadata keys: the writer did not create it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ledger.events import Event
from ledger.task_status import map_status, priority

Key = tuple[datetime, int, str, str]

# The column registers, by the names an event's metadata may give each (first present wins).
COLUMN_REGISTERS: dict[str, tuple[str, ...]] = {
    "description": ("description", "summary"),
    "task_family": ("taskFamily", "task_family"),
    "task_type": ("taskType", "task_type"),
    "assigned_to": ("assignedTo", "assigned_to", "assignee"),
}
# Keys the fold turns into columns; they do not also go into the row's metadata.
COLUMN_KEYS = frozenset({"vtid", "tenant", *(n for ns in COLUMN_REGISTERS.values() for n in ns)})
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
    explicit = {column: _meta_text(meta, *names) for column, names in COLUMN_REGISTERS.items()}
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
    metadata: Any = field(default_factory=dict)
    """As the row holds it: usually an object, but NULL (None) or any JSON is kept as it is."""

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


MAX_ROW_KEYS = 512
"""Metadata registers a row keeps (ledger_cap_registers): the ones set by the newest events,
ties by name. The top 512 of a union is the top 512 of each side's top 512, so capping after
every merge keeps the fold a function of the set of its events."""


def capped(registers: dict[str, Register]) -> dict[str, Register]:
    meta = sorted(name for name in registers if name.startswith(_META))
    if len(meta) <= MAX_ROW_KEYS:
        return registers
    # Newest first; sorted() is stable, so equal keys stay in name order (code point order,
    # as COLLATE "C" compares them).
    ranked = sorted(meta, key=lambda name: registers[name].key, reverse=True)
    dropped = set(ranked[MAX_ROW_KEYS:])
    return {name: reg for name, reg in registers.items() if name not in dropped}


def merge(a: State, b: State) -> State:
    registers = dict(a.registers)
    for name, reg in b.registers.items():
        mine = registers.get(name)
        if mine is None or reg.key > mine.key:
            registers[name] = reg
    registers = capped(registers)
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
    """The definition read literally: sort the distinct events, take newest and founding,
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
        newest=Facts.of(ordered[-1]),
        founding=Facts.of(ordered[0]),
        registers=capped(registers),
        base=base,
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
    metadata: Any


def render(state: State) -> Row:
    newest, founding, base = state.newest, state.founding, state.base
    if base is None:
        metadata: Any = {name[len(_META) :]: reg.value for name, reg in _meta(state)}
        metadata.update(autoCreated=True, sourceEvent=founding.key[2], sourceType=founding.type)
        if founding.key != newest.key:
            metadata["lastEventType"] = newest.type
        return Row(
            status=newest.status,
            service=newest.service,
            environment=newest.environment,
            last_event_id=newest.key[2],
            last_event_at=newest.key[0],
            description=_explicit(state, "description", founding.description),
            task_family=_explicit(state, "task_family", founding.task_family),
            task_type=_explicit(state, "task_type", founding.task_type),
            assigned_to=_explicit(state, "assigned_to", None),
            tenant=founding.tenant,
            metadata=metadata,
        )
    base_key = base.key
    shown: Any = base if base_key is not None and base_key >= newest.key else None
    registers = dict(_meta(state))
    metadata = base.metadata
    if registers:
        metadata = dict(base.metadata) if isinstance(base.metadata, Mapping) else {}
        metadata.update((name[len(_META) :], reg.value) for name, reg in registers.items())
    return Row(
        status=shown.status if shown else newest.status,
        service=shown.service if shown else newest.service,
        environment=shown.environment if shown else newest.environment,
        last_event_id=shown.last_event_id if shown else newest.key[2],
        last_event_at=shown.last_event_at if shown else newest.key[0],
        description=_explicit(state, "description", base.description),
        task_family=_explicit(state, "task_family", base.task_family),
        task_type=_explicit(state, "task_type", base.task_type),
        assigned_to=_explicit(state, "assigned_to", base.assigned_to),
        tenant=base.tenant,
        metadata=metadata,
    )


def _meta(state: State) -> list[tuple[str, Register]]:
    return [(name, reg) for name, reg in state.registers.items() if name.startswith(_META)]


def _explicit(state: State, name: str, otherwise: Any) -> Any:
    reg = state.registers.get(name)
    return otherwise if reg is None else reg.value


def with_base(state: State, base: Base | None) -> State:
    return state if base is None else replace(state, base=base)
