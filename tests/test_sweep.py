"""The catch-up sweep against a real Postgres: commit order, ties, locks, crashes, the fold."""

import json
import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import oasis_events, projection_offsets, writer_status
from ledger.db import Database, Session, Transient
from ledger.sweep import sweep
from tests.conftest import (
    INSERT_RAW,
    database_examples,
    empty_log,
    event,
    expected_rows,
    ledger_row,
    ledger_rows,
    push,
    run_cli,
    run_together,
    store,
)
from tests.strategies import raw_event_lists


def insert(db: Database, *raws: dict[str, Any]) -> None:
    store(db, *raws)


def offset(db: Database) -> dict[str, Any]:
    return db.run(projection_offsets.read)


def sync_events(db: Database) -> list[dict[str, Any]]:
    return db.run(lambda s: oasis_events.recent_syncs(s, 100))


def store_in(session: Session, raw: dict[str, Any]) -> None:
    """One event inserted through a connection the test controls (its transaction stays open)."""
    from ledger.events import parse_time

    session.run(
        INSERT_RAW,
        id=raw["id"],
        created_at=parse_time(raw["created_at"]),
        vtid=raw.get("vtid"),
        topic=raw.get("topic"),
        event=None,
        service=raw.get("service"),
        source=None,
        status=raw.get("status"),
        message=None,
        notes=None,
        metadata=None,
        tenant=None,
        layer=None,
        module=None,
        kind=None,
        title=None,
        ref=None,
    )


@pytest.fixture
def held(db: Database) -> Iterator[Session]:
    """A second connection for a transaction the test keeps open."""
    with db.session() as s:
        yield s
        s._rollback_quietly()


def test_sweep_applies_and_reports(db: Database) -> None:
    insert(
        db,
        event(id="a", topic="task_created"),
        event(id="b", vtid="SYSTEM-X"),
        event(id="c", vtid="VTID-0002", created_at="2025-11-29T11:00:00Z"),
    )
    result = sweep(db)
    c = result.counters
    assert (c.processed, c.created, c.skipped, c.errors) == (3, 2, 1, 0)
    assert (result.last_event_id, result.more) == ("c", False)
    assert offset(db)["events_processed"] == 3
    [sync] = sync_events(db)
    assert sync["status"] == "success"
    stored = db.run(
        lambda s: s.one(
            "SELECT topic, event, service, source, tenant, vtid FROM oasis_events WHERE id = :id",
            id=sync["id"],
        )
    )
    assert stored == {
        "topic": "ledger_sync",
        "event": "ledger_sync",
        "service": "oasis-projector",
        "source": "oasis-projector",
        "tenant": "system",
        "vtid": None,
    }
    assert sync["notes"] == "Processed 3 events: 0 updated, 2 created, 0 errors"
    assert sync["metadata"] == {
        "processed": 3,
        "updated": 0,
        "created": 2,
        "errors": 0,
        "skipped": 1,
        "lastEventId": "c",
        "lastEventTime": "2025-11-29T11:00:00.000Z",
        "vtid": None,
    }


def test_idle_sweeps_write_nothing_and_ignore_own_events(db: Database) -> None:
    assert sweep(db).counters.processed == 0
    assert sync_events(db) == []
    insert(db, event())
    assert sweep(db).counters.processed == 1
    again = sweep(db)  # sees only its own ledger_sync event
    assert again.counters.processed == 0
    assert len(sync_events(db)) == 1
    assert offset(db)["events_processed"] == 1


def test_idle_sweep_touches_no_row(db: Database) -> None:
    insert(db, event())
    sweep(db)
    sweep(db)  # moves past its own ledger_sync event
    row_versions = "SELECT xmin::text, xmax::text FROM projection_offsets"
    before = db.run(lambda s: s.run(row_versions))
    assert sweep(db).counters.processed == 0
    assert db.run(lambda s: s.run(row_versions)) == before  # not updated, not even row-locked


def test_transaction_held_open_is_never_skipped(db: Database, held: Session) -> None:
    held.conn.execute_simple("BEGIN")
    store_in(held, event(id="late", vtid="VTID-0900", created_at="2025-11-29T09:00:00Z"))
    insert(db, event(id="after-1", vtid="VTID-0901"), event(id="after-2", vtid="VTID-0902"))
    first = sweep(db)
    assert first.counters.processed == 0  # the horizon holds everything back; nothing is lost
    status = db.run(writer_status.status)["status"]
    assert (status["backlog"], status["held_back"]) == (2, 2)  # committed, but behind the open one
    assert status["oldest_open_transaction"]["age_seconds"] >= 0
    assert status["oldest_open_transaction"]["xid"] == status["horizon_xid"]
    held.conn.execute_simple("COMMIT")
    second = sweep(db)
    assert second.counters.created == 3
    with db.session() as s:
        assert ledger_row(s, "VTID-0900") is not None


def test_late_commit_below_an_advanced_offset_is_still_applied(db: Database, held: Session) -> None:
    insert(db, event(id="first", vtid="VTID-0001"))
    held.conn.execute_simple("BEGIN")
    store_in(held, event(id="late", vtid="VTID-0002"))
    insert(db, event(id="third", vtid="VTID-0003"))
    assert sweep(db).counters.processed == 1  # only what is below the open transaction
    held.conn.execute_simple("COMMIT")
    assert sweep(db).counters.processed == 2
    with db.session() as s:
        assert {r[0] for r in s.run("SELECT vtid FROM vtid_ledger")} == {
            "VTID-0001",
            "VTID-0002",
            "VTID-0003",
        }


def test_a_thousand_ties_across_batch_boundaries(db: Database) -> None:
    raws = [
        event(id=f"tie-{i:04d}", vtid=f"VTID-{i:04d}", created_at="2025-11-29T10:00:00Z")
        for i in range(1000)
    ]
    insert(db, *raws[:500])
    insert(db, *raws[500:])
    result = sweep(db, batch_size=64)
    assert result.counters.created == 1000
    assert result.batches == 16
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM vtid_ledger")) == 1000


def test_concurrent_sweeps_one_runs_one_returns_at_once(db: Database, held: Session) -> None:
    insert(db, *[event(vtid="VTID-0001", id=f"e{i}") for i in range(5)])
    held.conn.execute_simple("BEGIN")
    held.run(
        "INSERT INTO vtid_ledger (vtid, status) VALUES ('VTID-0001', 'pending')"
    )  # blocks the sweep
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(sweep(db)))
    first.start()
    time.sleep(0.5)
    started = time.monotonic()
    second = sweep(db)
    assert second.busy and time.monotonic() - started < 2
    held.conn.execute_simple("ROLLBACK")
    first.join(timeout=30)
    assert results[0].counters.created == 1
    assert sweep(db).counters.processed == 0


def test_killed_connection_loses_no_progress(db: Database, held: Session) -> None:
    insert(db, *[event(vtid=f"VTID-{i:04d}", id=f"k{i}") for i in range(50)])
    held.conn.execute_simple("BEGIN")
    held.run("INSERT INTO vtid_ledger (vtid, status) VALUES ('VTID-0049', 'hand-made')")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sweep(db, batch_size=1000)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    killed = 0
    with db.session() as admin:
        # Kill the sweep inside its batch (waiting on our row lock), and its one retry on a new
        # connection the same way.
        deadline = time.monotonic() + 30
        while thread.is_alive() and time.monotonic() < deadline:
            pid = admin.scalar(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%ledger_sweep_batch%' AND pid <> pg_backend_pid()"
            )
            if pid:
                admin.run("SELECT pg_terminate_backend(:pid, 10000)", pid=pid)
                killed += 1
            time.sleep(0.05)
    thread.join(timeout=30)
    assert killed == 2
    assert errors and isinstance(errors[0], Transient)
    held.conn.execute_simple("ROLLBACK")
    assert offset(db)["events_processed"] == 0
    assert offset(db)["position_tx_id"] is None
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM vtid_ledger")) == 0
    failed = db.run(writer_status.status)["status"]
    assert failed["running"] is False and failed["last_error"]  # until the next success
    assert sweep(db).counters.created == 50
    assert db.run(writer_status.status)["status"]["running"] is True


def test_budget_spent_with_events_left_says_more(db: Database) -> None:
    insert(db, *[event(vtid=f"VTID-{i:04d}", id=f"m{i}") for i in range(30)])
    ticks = iter(range(1000))
    result = sweep(db, batch_size=10, budget_s=1.5, clock=lambda: float(next(ticks)))
    assert (result.counters.processed, result.more) == (20, True)
    rest = sweep(db, batch_size=10)
    assert (rest.counters.processed, rest.more) == (10, False)


def test_unreadable_rows_are_rejected_counted_and_never_retried(db: Database) -> None:
    def bad(s: Session) -> None:
        s.run(
            "INSERT INTO oasis_events (id, created_at, vtid, metadata) "
            "VALUES ('bad', now(), 'VTID-0001', '[1, 2]')"
        )

    db.run(bad)
    insert(db, event(id="good"))
    result = sweep(db)
    assert (result.counters.errors, result.counters.created) == (1, 1)
    assert sync_events(db)[0]["status"] == "warning"
    [rejection] = db.run(lambda s: s.rows("SELECT source, event_id, raw FROM ledger_rejections"))
    assert (rejection["source"], rejection["event_id"]) == ("sweep", "bad")
    assert json.loads(rejection["raw"])["metadata"] == [1, 2]
    assert sweep(db).counters.processed == 0


def test_event_postgres_refuses_is_rejected_and_does_not_stall_the_sweep(db: Database) -> None:
    # Decodes fine, but its environment is too large for the btree index on environment.
    poison = event(id="poison", vtid="VTID-0001", metadata={"environment": os.urandom(8000).hex()})
    insert(db, event(id="before", vtid="VTID-0002"), poison, event(id="after", vtid="VTID-0003"))
    result = sweep(db)
    assert (result.counters.errors, result.counters.created) == (1, 2)
    [rejection] = db.run(lambda s: s.rows("SELECT event_id, reason FROM ledger_rejections"))
    assert rejection["event_id"] == "poison" and "54000" in rejection["reason"]
    assert sweep(db).counters.processed == 0


def test_timestamp_python_cannot_hold_is_rejected(db: Database) -> None:
    db.run(
        lambda s: s.run(
            "INSERT INTO oasis_events (id, created_at, vtid) "
            "VALUES ('inf', 'infinity', 'VTID-0001')"
        )
    )
    insert(db, event(id="fine", vtid="VTID-0002"))
    result = sweep(db)
    assert (result.counters.errors, result.counters.created) == (1, 1)
    reason = db.run(lambda s: s.scalar("SELECT reason FROM ledger_rejections"))
    assert "infinity" in reason


def burn_xids_until_the_next_digit(db: Database, margin: int) -> int:
    """Consume transaction ids until the next power of ten is `margin` ids away; return it.
    Each sub-transaction that writes takes an id of its own, so one DO block burns thousands."""
    current = int(db.run(lambda s: s.scalar("SELECT pg_current_xact_id()::text")))
    boundary = 10 ** len(str(current))
    to_burn = boundary - margin - current - 2
    assert 0 <= to_burn <= 2_000_000, f"xid {current} is too far from {boundary} to burn"
    db.run(lambda s: s.script("CREATE TABLE IF NOT EXISTS burnt (x int)"))
    db.run(
        lambda s: s.script(
            "DO $$ BEGIN FOR i IN 1.." + str(to_burn) + " LOOP "
            "BEGIN INSERT INTO burnt VALUES (i); EXCEPTION WHEN others THEN NULL; END; "
            "END LOOP; END $$"
        )
    )
    return boundary


def test_positions_are_transaction_ids_not_text_across_a_new_digit(
    fresh_db: Database, fresh_settings: Any
) -> None:
    boundary = burn_xids_until_the_next_digit(fresh_db, margin=6)
    for i in range(12):  # one transaction each: their ids straddle the boundary
        insert(fresh_db, event(id=f"d{i:02d}", vtid=f"VTID-{i:04d}"))
    xids = fresh_db.run(lambda s: s.run("SELECT tx_id::text FROM oasis_events"))
    assert min(int(x[0]) for x in xids) < boundary <= max(int(x[0]) for x in xids)

    assert sweep(fresh_db, batch_size=4).counters.created == 12
    assert fresh_db.run(lambda s: s.scalar("SELECT count(*) FROM vtid_ledger")) == 12
    assert run_cli(fresh_settings, "verify").returncode == 0
    fresh_db.run(lambda s: s.run("DELETE FROM vtid_ledger"))  # the rebuild must find them all
    rebuilt = run_cli(fresh_settings, "rebuild", "--yes", SWEEP_BATCH_SIZE="4")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["result"]["rows"]["inserted"] == 12
    assert run_cli(fresh_settings, "verify").returncode == 0


SWEEP_EXAMPLES = database_examples(0.3)


def distinct_ids(raws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a producer can store in the log, keyed by id: a text id, a time Postgres reads as
    the reference does, text columns; the first event of each id."""
    from ledger.events import Rejected, check_storable, parse_time

    def storable(raw: dict[str, Any]) -> bool:
        try:
            parse_time(raw.get("created_at"))
            check_storable(raw, "event")  # no NUL, no lone surrogate: a table cannot hold them
        except Rejected:
            return False
        if raw.get("payload") not in (None, "") and raw.get("metadata") not in (None, ""):
            return False  # a row has one metadata column: the JSON would mean more than it
        texts = [v for k, v in raw.items() if k not in ("created_at", "metadata", "payload")]
        return isinstance(raw["id"], str) and all(v is None or isinstance(v, str) for v in texts)

    kept = [raw for raw in raws if storable(raw)]
    return list({raw["id"]: raw for raw in reversed(kept)}.values())[::-1]


def expected_counters(raws: list[dict[str, Any]], batch_size: int) -> dict[str, int]:
    """SPEC §5's counters from the reference fold: the log read in batches in commit order,
    and within a batch each VTID's events applied one at a time in the fold's order (oldest
    key first): created (first event of a VTID), updated (the fold changed), else stale;
    skipped (no VTID); errors (unreadable)."""
    from ledger import fold
    from ledger.events import Rejected, decode
    from ledger.vtid import of_event

    counts = dict.fromkeys(("processed", "created", "updated", "stale", "skipped", "errors"), 0)
    states: dict[str, fold.State] = {}
    for start in range(0, len(raws), batch_size):
        readable: list[tuple[str, Any]] = []
        for raw in raws[start : start + batch_size]:
            counts["processed"] += 1
            try:
                e = decode(raw)
            except Rejected:
                counts["errors"] += 1
                continue
            vtid = of_event(e)
            if vtid is None:
                counts["skipped"] += 1
            else:
                readable.append((vtid, e))
        for vtid, e in sorted(readable, key=lambda item: fold.event_key(item[1])):
            before = states.get(vtid)
            states[vtid] = fold.apply(before, e)
            if before is None:
                counts["created"] += 1
            else:
                counts["updated" if states[vtid] != before else "stale"] += 1
    return counts


@SWEEP_EXAMPLES
@given(st.data(), raw_event_lists(max_size=20, readable=False))
def test_sweep_in_any_commit_order_and_batch_size_equals_the_fold(
    db: Database, data: st.DataObject, raws: list[dict[str, Any]]
) -> None:
    empty_log(db)
    log = distinct_ids(raws)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(log)), max_size=4)))
    for start, end in zip([0, *cuts], [*cuts, len(log)], strict=True):
        if start < end:
            store(db, *log[start:end])  # each group commits as one transaction
    batch_size = data.draw(st.integers(1, 8))
    result = sweep(db, batch_size=batch_size)
    assert ledger_rows(db) == expected_rows(log)
    assert result.counters.as_dict() == expected_counters(log, batch_size)
    rejected = db.run(lambda s: s.scalar("SELECT count(*) FROM ledger_rejections"))
    assert rejected == result.counters.errors


@SWEEP_EXAMPLES
@given(st.data(), raw_event_lists(max_size=16))
def test_sweep_and_realtime_in_any_mix_equal_the_fold(
    db: Database, data: st.DataObject, raws: list[dict[str, Any]]
) -> None:
    empty_log(db)
    log = distinct_ids(raws)
    order = data.draw(st.permutations(log))
    cut = data.draw(st.integers(0, len(order)))
    pushed_first = data.draw(st.lists(st.sampled_from(raws), max_size=6))  # any, even ones
    for raw in pushed_first:  # the log never holds (same id, other content)
        push(db, raw)
    for chunk in (order[:cut], order[cut:]):
        if chunk:
            store(db, *chunk)
    sweep(db, batch_size=data.draw(st.integers(1, 7)))
    for raw in data.draw(st.lists(st.sampled_from(log), max_size=4)):  # late redeliveries
        push(db, raw)
    assert ledger_rows(db) == expected_rows(log + pushed_first)


@SWEEP_EXAMPLES
@given(st.data(), raw_event_lists(vtids=["VTID-0001", "vtid-0002"], max_size=24))
def test_sweep_running_alongside_realtime_writers_equals_the_fold(
    db: Database, data: st.DataObject, raws: list[dict[str, Any]]
) -> None:
    empty_log(db)
    log = distinct_ids(raws)
    store(db, *data.draw(st.permutations(log)))
    lanes = [data.draw(st.permutations(log)) for _ in range(3)]
    batch_size = data.draw(st.integers(1, 5))
    pools = [Database(db.settings) for _ in lanes]
    try:
        errors = run_together(
            lambda: sweep(db, batch_size=batch_size),
            *[
                lambda p=p, lane=lane: [push(p, r) for r in lane]
                for p, lane in zip(pools, lanes, strict=True)
            ],
        )
    finally:
        for p in pools:
            p.close()
    assert not errors
    assert ledger_rows(db) == expected_rows(log)


def test_an_older_event_that_sets_nothing_leaves_a_row_another_system_made_alone(
    db: Database,
) -> None:
    db.run(
        lambda s: s.run(
            "INSERT INTO vtid_ledger (vtid, status, last_event_at) "
            "VALUES ('VTID-0001', 'complete', '2025-11-29T12:00:10Z')"
        )
    )
    version = "SELECT xmin::text FROM vtid_ledger"
    before = db.run(lambda s: s.scalar(version))
    insert(db, event(created_at="2025-11-29T12:00:00Z"))  # older than the row's last event
    c = sweep(db).counters
    assert (c.processed, c.updated, c.stale) == (1, 0, 1)
    assert db.run(lambda s: s.scalar(version)) == before  # not rewritten
    row = db.run(lambda s: ledger_row(s, "VTID-0001"))
    assert row is not None and row["metadata"] is None and row["status"] == "complete"


def test_each_sweep_logs_what_is_left_for_the_lag_alert(db: Database) -> None:
    """terraform/monitoring.tf alerts on lag_seconds of these lines (a log-based metric)."""
    import logging

    from ledger.logs import CloudLoggingFormatter

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(CloudLoggingFormatter().format(record))  # type: ignore[method-assign]
    logging.getLogger("ledger.sweep").addHandler(handler)
    try:
        store(db, *(event(id=f"l{i}", created_at="2025-11-29T10:00:00Z") for i in range(3)))
        db.run(lambda s: s.run("UPDATE oasis_events SET stored_at = now() - interval '2 days'"))
        sweep(db, batch_size=2, budget_s=0)  # out of time after one batch
        sweep(db, batch_size=2)
    finally:
        logging.getLogger("ledger.sweep").removeHandler(handler)
    finished = [x for x in map(json.loads, lines) if x["message"] == "sweep finished"]
    assert [x["backlog"] for x in finished] == [1, 0]
    assert finished[0]["lag_seconds"] > 86400 and finished[1]["lag_seconds"] == 0


def test_a_killed_sweep_frees_its_lock_at_once(db: Database) -> None:
    """The lock is a session-level advisory lock: it dies with the sweep's session, so no lock
    can be left held by a sweep that no longer runs."""
    from ledger.sweep import LOCK

    store(db, event(id="f1"))
    holder = Database(db.settings)
    with holder.session() as running:
        assert running.scalar(LOCK) is True  # a sweep in progress
        assert sweep(db).busy is True
        pid = running.scalar("SELECT pg_backend_pid()")
        db.run(lambda s: s.run("SELECT pg_terminate_backend(:p, 5000)", p=pid))
        started = time.monotonic()
        result = sweep(db)
        assert not result.busy and result.counters.created == 1
        assert time.monotonic() - started < 1
    holder.close()


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# SPEC §2 "One edge for every path": each case with whether it is within the limits. Levels
# count the event object as 1 and its metadata as 2, so metadata's value nests 62 more at most.
EDGE_CASES = {
    "1,000 digits": ({"n": int("9" * 1000)}, True),
    "1,001 digits": ({"n": int("9" * 1001)}, False),
    "a fraction of 1,001 digits": ({"n": Decimal("1E-1000")}, False),
    "zero with a huge exponent (one digit as jsonb keeps it)": ({"n": Decimal("0E+131072")}, True),
    "64 levels": ({"d": _deep(62)}, True),
    "65 levels": ({"d": _deep(63)}, False),
    "1,000 levels": ({"d": _deep(1000)}, False),
    "just under 256 KiB": ({"s": "x" * (256 * 1024 - 400)}, True),
    "over 256 KiB": ({"s": "x" * (300 * 1024)}, False),
    "metadata as a string holding 1,001 digits": ('{"n": ' + "1" * 1001 + "}", False),
    "metadata as a string holding 65 levels": ('{"d": ' + "[" * 63 + "]" * 63 + "}", False),
    "jsonb numbers as written": ({"a": Decimal("1.50"), "b": Decimal("1E+2")}, True),
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_the_edge_is_one_for_every_path(db: Database, case: str) -> None:
    """The same event is applied, or rejected, alike from the log, from a push and by the
    reference; verify reads the log without a traceback either way."""
    from ledger.counters import Outcome
    from ledger.events import Rejected, decode

    metadata, within = EDGE_CASES[case]
    raw = event(id="edge", vtid="VTID-0001", metadata=metadata)
    try:
        decode(raw)
        by_reference = True
    except Rejected:
        by_reference = False
    insert(db, raw)
    swept = sweep(db).counters
    verified = run_cli(db.settings, "verify")
    assert verified.returncode == 0 and "Traceback" not in verified.stderr, verified.stderr
    assert ('"kind":"unreadable"' in verified.stdout) is not within
    outcome = push(db, {**raw, "id": "edge-pushed", "vtid": "VTID-0002"})
    assert (by_reference, swept.errors == 0, outcome is not Outcome.REJECTED) == (within,) * 3
    assert ledger_rows(db).keys() == ({"VTID-0001", "VTID-0002"} if within else set())


def test_an_equal_key_counts_by_its_digest(db: Database) -> None:
    """An event that shares (time, priority, id) with the row's newest but differs in content
    is newer or older by its digest, as the fold orders it: its count follows that order."""
    from ledger.events import decode

    founding = event(id="founding", created_at="2025-11-29T09:00:00Z")
    a, b = (event(id="same", message=m) for m in ("first content", "second content"))
    older, newer = sorted((a, b), key=lambda raw: decode(raw).digest)
    for pushed, stored, expected in ((older, newer, "updated"), (newer, older, "stale")):
        empty_log(db)
        push(db, founding)
        push(db, pushed)
        insert(db, stored)
        counters = sweep(db).counters
        assert (counters.updated, counters.stale) == (
            (1, 0) if expected == "updated" else (0, 1)
        ), expected
        assert ledger_rows(db) == expected_rows([founding, older, newer])


@pytest.mark.parametrize(("length", "valid"), [(64, True), (65, False)])
def test_a_vtid_longer_than_64_characters_is_skipped_on_every_path(
    db: Database, length: int, valid: bool
) -> None:
    from ledger.counters import Outcome

    vtid = "VTID-" + "0" * (length - 5)
    insert(db, event(id="long", vtid=vtid))
    counters = sweep(db).counters
    assert (counters.created, counters.skipped, counters.errors) == (
        (1, 0, 0) if valid else (0, 1, 0)
    )
    assert push(db, event(id="long", vtid=vtid)) is (Outcome.STALE if valid else Outcome.SKIPPED)
    assert ledger_rows(db) == expected_rows([event(id="long", vtid=vtid)])


# pg8000 reads this test's own session's times in the odd DateStyle it sets; the writer pins it.
@pytest.mark.filterwarnings("ignore:tzname")
def test_no_rule_depends_on_the_sessions_settings(db: Database) -> None:
    """The functions give the same rows, published copies and bases when a session (not one of
    the writer's, which pin them) has other TimeZone, DateStyle and IntervalStyle settings."""
    from ledger.events import parse_time
    from ledger.fold import Base
    from ledger.realtime import apply
    from ledger.sweep import apply_batch
    from tests.conftest import Message, made_elsewhere

    old = event(id="old", vtid="VTID-1850", created_at="1850-01-01T00:00:00Z", message="m")
    base = Base(status="active", last_event_at=parse_time("1850-06-01T00:00:00Z"))
    made_elsewhere(db, "VTID-0002", base)
    with db.session() as s:
        s.script(
            "SET TimeZone TO 'Europe/Amsterdam'; SET DateStyle TO 'SQL, DMY';"
            "SET IntervalStyle TO 'sql_standard'; SET extra_float_digits TO -3"
        )
        try:
            [stored] = s.call(
                oasis_events.INGEST, payload=json.dumps(old), received_at=None, caller=None
            )
            assert '"created_at": "1850-01-01T00:00:00.000000Z"' in stored["wire"]
            message = Message(data=stored["wire"].encode(), message_id="m-1", publish_time=None)
            assert apply(s, message, stored["wire"])["outcome"] == "created"
            pushed = event(id="p", vtid="VTID-0002", created_at="1851-01-01T00:00:00Z")
            message = Message(data=json.dumps(pushed).encode(), message_id="m-2", publish_time=None)
            assert apply(s, message, json.dumps(pushed))["outcome"] == "updated"
            assert apply_batch(s, 100).counters.stale == 1
            base_at = s.scalar("SELECT fold_base ->> 'last_event_at' FROM vtid_ledger "
                               "WHERE vtid = 'VTID-0002'")  # fmt: skip
        finally:
            s.script("RESET ALL")
    assert base_at == "1850-06-01T00:00:00.000000Z"
    assert ledger_rows(db)["VTID-1850"] == expected_rows([old])["VTID-1850"]
    assert ledger_rows(db)["VTID-0002"] == expected_rows([pushed], {"VTID-0002": base})["VTID-0002"]


def _wide(n: int, hour: int, keys: range) -> dict[str, Any]:
    return event(
        id=f"wide-{n}",
        created_at=f"2025-11-29T{hour:02d}:00:00Z",
        metadata={f"k{k:04d}": n for k in keys},
    )


@SWEEP_EXAMPLES
@given(st.data())
def test_a_row_keeps_the_512_newest_keys_whatever_the_order(
    db: Database, data: st.DataObject
) -> None:
    """Four events of 200 keys each (overlapping): the row keeps the 512 set by the newest
    events, ties by name, whichever path applies them and in whatever order."""
    raws = [_wide(n, 10 + n, range(n * 150, n * 150 + 200)) for n in range(4)]
    empty_log(db)
    order = data.draw(st.permutations(raws))
    cut = data.draw(st.integers(0, 4))
    for raw in order[:cut]:
        push(db, raw)
    store(db, *order[cut:])
    sweep(db, batch_size=data.draw(st.integers(1, 4)))
    for raw in data.draw(st.lists(st.sampled_from(raws), max_size=3)):
        push(db, raw)
    rows = ledger_rows(db)
    assert rows == expected_rows(raws)
    kept = json.loads(rows["VTID-0001"]["metadata"])
    assert len([k for k in kept if k.startswith("k")]) == 512
    # 500 keys come from the three newest events; of the oldest's own 150, the 12 first by name
    assert kept["k0649"] == 3 and kept["k0011"] == 0 and "k0012" not in kept


def test_an_event_with_more_than_256_metadata_keys_is_rejected_on_every_path(db: Database) -> None:
    from ledger.counters import Outcome

    raw = event(id="many", metadata={f"k{k}": k for k in range(257)})
    insert(db, raw)
    assert sweep(db).counters.errors == 1
    assert push(db, {**raw, "id": "many-pushed"}) is Outcome.REJECTED
    assert push(db, event(id="ok", metadata={f"k{k}": k for k in range(256)})) is Outcome.CREATED
