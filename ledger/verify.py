"""`verify` and `rebuild`: the ledger checked against, and rebuilt from, the whole log.

verify folds the log with the Python reference (`events`, `vtid`, `fold`), independently of the
SQL the writers run, and compares every row. It streams: the log comes grouped by VTID and the
ledger ordered the same way, through two cursors of one read-only snapshot (a read-only
transaction takes no transaction id, so it does not hold the sweep back), and only one VTID's
events are in memory at a time. Each event's VTID is checked too: Postgres's rules group the
log, the reference must find the same VTID for every event.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

from ledger import fold, oasis_events, vtid_ledger
from ledger.db import Session
from ledger.events import Event, Rejected, decode, jsonb_text, parse_json, parse_time
from ledger.ledger_settings import max_future
from ledger.vtid import of_event

COLUMNS = tuple(fold.Row.__slots__)
FETCH = 2000


@dataclass(frozen=True, slots=True)
class Drift:
    """A finding: a row that differs from the fold of its events or an event the two rule sets
    read differently (kind "drift"); a row that differs while some of its events still wait for
    the sweep (kind "unswept": behind, not wrong); or an event of the log that neither can read
    (kind "unreadable": recorded in ledger_rejections by the sweep, not a fault of the
    ledger)."""

    vtid: str
    problem: str
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    kind: str = "drift"
    event_id: str | None = None


def _cursor(session: Session, name: str) -> Iterator[dict[str, Any]]:
    while True:
        rows = session.rows(f"FETCH {FETCH} FROM {name}")
        yield from rows
        if len(rows) < FETCH:
            return


def _json(text: str | None) -> Any:
    """What the ledger holds, read back: no event limits (a row gathers many events' keys)."""
    return None if text is None else parse_json(text, limited=False)


def _reference(raw: dict[str, Any], max_future: timedelta) -> tuple[Event | str, str | None]:
    """The event as the reference decodes it (or why it cannot), and its VTID (None: rejected,
    skipped or own). Whatever the log holds, this returns."""
    try:
        metadata = None if raw["metadata"] is None else parse_json(raw["metadata"])
        obj = {**raw, "metadata": metadata}
        del obj["stored_at"], obj["unswept"]
        if obj["created_at"] is None:
            obj["created_at"] = raw["created_at_text"]
        event = decode(obj, received_at=raw["stored_at"], max_future=max_future)
    except Rejected as exc:
        return exc.reason, None
    return event, None if event.is_own_sync else of_event(event)


def _base(row: dict[str, Any]) -> fold.Base | None:
    if not row["made_elsewhere"]:
        return None
    was = _json(row["fold_base"]) if row["fold_base"] is not None else None
    if was is None:
        was = {name: row[name] for name in fold.Base.__dataclass_fields__}
        was["metadata"] = _json(row["metadata"])
    at = was.get("last_event_at")
    return fold.Base(**{**was, "last_event_at": _base_time(at)})


def _base_time(text: str | None) -> datetime | None:
    """A stored base's time: written as ledger_time_text writes it, or (rows converted before
    that) in whatever zone the session had, such as +00:19:32."""
    if text is None:
        return None
    try:
        return parse_time(text)
    except Rejected:
        return datetime.fromisoformat(text).astimezone(UTC)


def _metadata_text(value: Any) -> str | None:
    return None if value is None else jsonb_text(value)


def _compare(vtid: str, row: dict[str, Any] | None, events: list[Event]) -> Drift | None:
    if row is None:
        return Drift(vtid, "row is missing") if events else None
    if not events:
        return None if row["made_elsewhere"] else Drift(vtid, "row has no events in the log")
    try:
        base = _base(row)
    except (Rejected, ValueError) as exc:
        return Drift(vtid, f"the row's stored base cannot be read: {exc}")
    state = fold.fold_events(events, base)
    assert state is not None
    expected = fold.render(state)
    # Metadata is compared as jsonb prints it, so that 1.50 against 1.5 is drift too.
    differs = {
        name: {"ledger": row[name], "log": getattr(expected, name)}
        for name in COLUMNS
        if name != "metadata" and row[name] != getattr(expected, name)
    }
    if row["metadata"] != _metadata_text(expected.metadata):
        differs["metadata"] = {"ledger": row["metadata"], "log": _metadata_text(expected.metadata)}
    return Drift(vtid, "row differs from the fold of its events", differs) if differs else None


def _counted(
    items: Iterator[dict[str, Any]], tally: dict[str, int], name: str
) -> Iterator[dict[str, Any]]:
    for item in items:
        tally[name] += 1
        yield item


def _groups(
    session: Session, max_future: timedelta, tally: dict[str, int]
) -> Iterator[tuple[str, list[Event], list[Drift], bool]]:
    """The log grouped by VTID: each group's events as the reference decodes them, and any
    event on which the reference and Postgres's rules disagree."""
    stream = _counted(_cursor(session, "ledger_events"), tally, "events")
    for sql_vtid, raws in groupby(stream, lambda r: r["sql_vtid"]):
        events: list[Event] = []
        disagree: list[Drift] = []
        unswept = False
        for raw in raws:
            unswept = unswept or bool(raw["unswept"])
            event, vtid = _reference(raw, max_future)
            rejected = None if isinstance(event, Event) else event
            if (rejected is None) != (raw["sql_reason"] is None) or vtid != sql_vtid:
                disagree.append(
                    Drift(
                        str(sql_vtid or vtid or ""),
                        f"event {raw['id']!r}: Postgres reads VTID {sql_vtid!r} "
                        f"(rejected: {raw['sql_reason']!r}), the reference VTID {vtid!r} "
                        f"(rejected: {rejected!r})",
                        event_id=raw["id"],
                    )
                )
            elif rejected is not None:
                disagree.append(
                    Drift("", f"event cannot be read: {rejected}", kind="unreadable",
                          event_id=raw["id"])
                )  # fmt: skip
            elif isinstance(event, Event) and vtid is not None:
                events.append(event)
        if sql_vtid is not None:
            yield sql_vtid, events, disagree, unswept
        elif disagree:
            yield "", [], disagree, False


def verify(
    session: Session, vtid: str | None = None, checked: dict[str, int] | None = None
) -> Iterator[Drift]:
    """Every row that differs from the fold of its events, every event read differently, and
    every event that cannot be read; of one task only when `vtid` is given (its events found
    through the log's index: milliseconds on any log). `checked` counts the events read and the
    rows compared."""
    tally = checked if checked is not None else {}
    tally.update(events=0, rows=0)
    session.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        tolerance = max_future(session)
        if vtid is None:
            session.script(f"DECLARE ledger_events NO SCROLL CURSOR FOR {oasis_events.STREAM}")
            session.script(f"DECLARE ledger_rows NO SCROLL CURSOR FOR {vtid_ledger.FOLDED}")
        else:
            stream, folded = oasis_events.STREAM_FOR_VTID, vtid_ledger.FOLDED_ONE
            session.run(f"DECLARE ledger_events NO SCROLL CURSOR FOR {stream}", vtid=vtid)
            session.run(f"DECLARE ledger_rows NO SCROLL CURSOR FOR {folded}", vtid=vtid)
        rows = _counted(_cursor(session, "ledger_rows"), tally, "rows")
        row = next(rows, None)
        for task, events, disagree, unswept in _groups(session, tolerance, tally):
            yield from disagree
            if not task:
                continue
            while row is not None and row["vtid"] < task:
                drift = _compare(row["vtid"], row, [])
                if drift:
                    yield drift
                row = next(rows, None)
            current = row if row is not None and row["vtid"] == task else None
            drift = _compare(task, current, events)
            if drift and unswept:
                # Events of this task wait for the sweep: the row is behind, not wrong.
                problem = f"{drift.problem}; the task has events not swept yet (sync, then verify)"
                drift = Drift(task, problem, drift.columns, kind="unswept")
            if drift:
                yield drift
            if current is not None:
                row = next(rows, None)
        while row is not None:
            drift = _compare(row["vtid"], row, [])
            if drift:
                yield drift
            row = next(rows, None)
    finally:
        session._rollback_quietly()
