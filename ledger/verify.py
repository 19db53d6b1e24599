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
from itertools import groupby
from typing import Any

from ledger import fold, oasis_events, projection_offsets, vtid_ledger
from ledger.db import Database, Session
from ledger.events import Event, Rejected, decode, parse_json, parse_time
from ledger.sweep import LOCK, UNLOCK, SweepRunning
from ledger.vtid import of_event

COLUMNS = tuple(fold.Row.__slots__)
FETCH = 2000


@dataclass(frozen=True, slots=True)
class Drift:
    vtid: str
    problem: str
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)


def _cursor(session: Session, name: str) -> Iterator[dict[str, Any]]:
    while True:
        rows = session.rows(f"FETCH {FETCH} FROM {name}")
        yield from rows
        if len(rows) < FETCH:
            return


def _json(text: str | None) -> Any:
    return None if text is None else parse_json(text)


def _reference(raw: dict[str, Any]) -> tuple[Event | None, str | None]:
    """The event as the reference decodes it, and its VTID (None: rejected, skipped or own)."""
    obj = {**raw, "metadata": _json(raw["metadata"])}
    if obj["created_at"] is None:
        obj["created_at"] = raw["created_at_text"]
    try:
        event = decode(obj)
    except Rejected:
        return None, None
    return event, None if event.is_own_sync else of_event(event)


def _base(row: dict[str, Any]) -> fold.Base | None:
    if not row["made_elsewhere"]:
        return None
    was = _json(row["fold_base"]) if row["fold_base"] is not None else None
    if was is None:
        was = {name: row[name] for name in fold.Base.__dataclass_fields__}
        was["metadata"] = _json(row["metadata"])
    at = was.get("last_event_at")
    return fold.Base(**{**was, "last_event_at": parse_time(at) if at is not None else None})


def _compare(vtid: str, row: dict[str, Any] | None, events: list[Event]) -> Drift | None:
    if row is None:
        return Drift(vtid, "row is missing") if events else None
    if not events:
        return None if row["made_elsewhere"] else Drift(vtid, "row has no events in the log")
    state = fold.fold_events(events, _base(row))
    assert state is not None
    expected = fold.render(state)
    actual = {**row, "metadata": _json(row["metadata"])}
    differs = {
        name: {"ledger": actual[name], "log": getattr(expected, name)}
        for name in COLUMNS
        if actual[name] != getattr(expected, name)
    }
    return Drift(vtid, "row differs from the fold of its events", differs) if differs else None


def _groups(session: Session) -> Iterator[tuple[str, list[Event], list[Drift]]]:
    """The log grouped by VTID: each group's events as the reference decodes them, and any
    event on which the reference and Postgres's rules disagree."""
    for sql_vtid, raws in groupby(_cursor(session, "ledger_events"), lambda r: r["sql_vtid"]):
        events: list[Event] = []
        disagree: list[Drift] = []
        for raw in raws:
            event, vtid = _reference(raw)
            if (event is None) != (raw["sql_reason"] is not None) or vtid != sql_vtid:
                disagree.append(
                    Drift(
                        str(sql_vtid or vtid or ""),
                        f"event {raw['id']!r}: Postgres reads VTID {sql_vtid!r} "
                        f"(rejected: {raw['sql_reason']!r}), the reference VTID {vtid!r} "
                        f"(rejected: {event is None})",
                    )
                )
            elif event is not None and vtid is not None:
                events.append(event)
        if sql_vtid is not None:
            yield sql_vtid, events, disagree
        elif disagree:
            yield "", [], disagree


def verify(session: Session) -> Iterator[Drift]:
    """Every row that differs from the fold of its events, and every event read differently."""
    session.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        session.script(f"DECLARE ledger_events NO SCROLL CURSOR FOR {oasis_events.STREAM}")
        session.script(f"DECLARE ledger_rows NO SCROLL CURSOR FOR {vtid_ledger.FOLDED}")
        rows = _cursor(session, "ledger_rows")
        row = next(rows, None)
        for vtid, events, disagree in _groups(session):
            yield from disagree
            if not vtid:
                continue
            while row is not None and row["vtid"] < vtid:
                drift = _compare(row["vtid"], row, [])
                if drift:
                    yield drift
                row = next(rows, None)
            current = row if row is not None and row["vtid"] == vtid else None
            drift = _compare(vtid, current, events)
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


def reset_for_rebuild(db: Database) -> None:
    """Empty the ledger of what the writer made and rewind the offset, under the sweep's lock."""

    def work(session: Session) -> None:
        if not session.scalar(LOCK):
            raise SweepRunning("a sweep is running; try again when it finishes")
        try:
            with session.transaction():
                session.run(vtid_ledger.RESTORE_BASES)
                session.run(vtid_ledger.DELETE_FOLDED)
                projection_offsets.reset(session)
        finally:
            session.run(UNLOCK)

    db.run(work)
