"""The real-time path on a real Postgres: one statement per event, platform rows, order
independence and concurrency, each held to the Python reference fold."""

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.counters import Outcome
from ledger.db import Database, Session
from ledger.pubsub_message import Message
from ledger.realtime import handle_message
from tests.conftest import (
    Base,
    database_examples,
    event,
    expected_rows,
    ledger_row,
    ledger_rows,
    made_elsewhere,
    push,
    run_together,
)
from tests.strategies import bases, raw_event_lists

DB_EXAMPLES = database_examples(0.4)


def test_newer_task_completed_moves_active_row_to_complete(db: Database, session: Session) -> None:
    push(db, event(topic="task_started", created_at="2025-11-29T10:00:00Z"))
    assert ledger_row(session, "VTID-0001")["status"] == "active"  # type: ignore[index]
    done = event(topic="task_completed", created_at="2025-11-29T11:00:00Z")
    assert push(db, done) is Outcome.UPDATED
    assert ledger_row(session, "VTID-0001")["status"] == "complete"  # type: ignore[index]


def test_older_deployment_started_does_not_downgrade_complete(
    db: Database, session: Session
) -> None:
    push(db, event(topic="deployment_succeeded", created_at="2025-11-29T12:00:00Z"))
    assert push(db, event(topic="deployment_started", created_at="2025-11-29T09:00:00Z")) is (
        Outcome.UPDATED  # it is the new founding event (sourceEvent changes), not the newest
    )
    row = ledger_row(session, "VTID-0001")
    assert row is not None
    assert row["status"] == "complete"
    assert row["last_event_at"].isoformat() == "2025-11-29T12:00:00+00:00"


def test_batch_vtids_end_complete_and_active(db: Database, session: Session) -> None:
    for raw in [
        event(vtid="VTID-BATCH-1", topic="task_created", created_at="2025-11-29T10:00:00Z"),
        event(vtid="VTID-BATCH-1", topic="task_completed", created_at="2025-11-29T10:05:00Z"),
        event(vtid="VTID-BATCH-2", topic="task_started", created_at="2025-11-29T10:01:00Z"),
    ]:
        push(db, raw)
    assert ledger_row(session, "VTID-BATCH-1")["status"] == "complete"  # type: ignore[index]
    assert ledger_row(session, "VTID-BATCH-2")["status"] == "active"  # type: ignore[index]


def test_outcomes_created_updated_stale_skipped_ignored(db: Database, session: Session) -> None:
    e = event()
    assert push(db, e) is Outcome.CREATED
    assert push(db, e) is Outcome.STALE
    assert push(db, event(created_at="2025-11-30T00:00:00Z")) is Outcome.UPDATED
    assert push(db, event(vtid="SYSTEM-HEALTH")) is Outcome.SKIPPED
    assert push(db, event(service="oasis-projector", topic="ledger_sync")) is Outcome.IGNORED
    assert push(db, event(metadata=[1])) is Outcome.REJECTED
    assert session.scalar("SELECT count(*) FROM vtid_ledger") == 1
    totals = session.one(
        "SELECT sum(events_processed) AS n, sum(created) AS c, sum(updated) AS u, "
        "sum(skipped) AS s, sum(errors) AS e FROM projector_progress"
    )
    assert totals == {"n": 5, "c": 1, "u": 1, "s": 1, "e": 1}  # the ignored one is not counted


def test_skipped_events_write_no_row(db: Database, session: Session) -> None:
    for raw in [event(vtid=...), event(vtid="VTID-ABC"), event(vtid="0521", message="VTID-0521")]:
        assert push(db, raw) is Outcome.SKIPPED
    assert session.scalar("SELECT count(*) FROM vtid_ledger") == 0


PLANNER_ROW = (
    "INSERT INTO vtid_ledger (vtid, status, description, tenant, metadata, last_event_at) "
    "VALUES ('VTID-0001', 'complete', 'From the planner', 'acme', :m, '2025-12-01T00:00:00Z')"
)


def test_a_row_another_system_made_keeps_its_founding_columns(
    db: Database, session: Session
) -> None:
    session.run(PLANNER_ROW, m=json.dumps({"owner": "ops"}))
    assert push(db, event(metadata={"branch": "b"})) is Outcome.UPDATED
    row = ledger_row(session, "VTID-0001")
    assert row is not None
    assert (row["status"], row["description"], row["tenant"], row["task_family"]) == (
        "complete",
        "From the planner",
        "acme",
        None,  # kept as it was: no event set it explicitly
    )
    assert row["metadata"] == {"owner": "ops", "branch": "b"}  # none of the writer's own keys


def test_an_older_event_that_sets_nothing_leaves_such_a_row_alone(
    db: Database, session: Session
) -> None:
    session.run(PLANNER_ROW, m=None)
    version = "SELECT xmin::text FROM vtid_ledger"
    before = session.scalar(version)
    older = event(created_at="2025-11-29T10:00:00Z")  # the row's last event is newer
    assert push(db, older) is Outcome.STALE
    assert session.scalar(version) == before  # not even rewritten
    assert ledger_row(session, "VTID-0001")["metadata"] is None  # type: ignore[index]


def _rows_equal_the_fold(db: Database, raws: list[dict[str, Any]]) -> None:
    assert ledger_rows(db) == expected_rows(raws)


@DB_EXAMPLES
@given(st.data(), raw_event_lists(max_size=16, readable=False))
def test_deliveries_in_any_order_with_redeliveries_equal_the_fold(
    db: Database, data: st.DataObject, raws: list[dict[str, Any]]
) -> None:
    db.run(lambda s: s.script("TRUNCATE vtid_ledger"))
    delivered = data.draw(
        st.permutations(raws + data.draw(st.lists(st.sampled_from(raws), max_size=5)))
    )
    for raw in delivered:
        push(db, raw)
    _rows_equal_the_fold(db, raws)


@DB_EXAMPLES
@given(st.data(), raw_event_lists(vtids=["VTID-0001", "vtid-0002"], max_size=24))
def test_concurrent_deliveries_equal_the_fold(
    db: Database, data: st.DataObject, raws: list[dict[str, Any]]
) -> None:
    delivered = data.draw(st.permutations(raws + raws))  # every event at least twice
    lanes = [delivered[i::4] for i in range(4)]
    db.run(lambda s: s.script("TRUNCATE vtid_ledger"))
    pools = [Database(db.settings) for _ in lanes]  # four instances, four connections
    try:
        errors = run_together(
            *[
                lambda p=p, lane=lane: [push(p, raw) for raw in lane]
                for p, lane in zip(pools, lanes, strict=True)
            ]
        )
    finally:
        for p in pools:
            p.close()
    assert not errors
    _rows_equal_the_fold(db, raws)


@DB_EXAMPLES
@given(st.data(), raw_event_lists(max_size=10), bases.filter(lambda b: b is not None))
def test_rows_other_systems_made_equal_the_fold_from_them(
    db: Database, data: st.DataObject, raws: list[dict[str, Any]], base: Base
) -> None:
    db.run(lambda s: s.script("TRUNCATE vtid_ledger"))
    made_elsewhere(db, "VTID-0001", base)
    untouched = ledger_rows(db)["VTID-0001"]
    for raw in data.draw(st.permutations(raws)):
        push(db, raw)
    expected = {"VTID-0001": untouched, **expected_rows(raws, {"VTID-0001": base})}
    assert ledger_rows(db) == expected


def test_each_connection_counts_into_its_own_shard(db: Database) -> None:
    pools = [Database(db.settings) for _ in range(4)]
    try:
        run_together(*[lambda p=p, i=i: push(p, event(id=f"s{i}")) for i, p in enumerate(pools)])
    finally:
        for p in pools:
            p.close()
    shards = db.run(
        lambda s: s.run("SELECT count(*), sum(events_processed) FROM projector_progress")
    )
    assert shards[0][0] > 1 and shards[0][1] == 4  # not one row every instance queues on


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)
near_events = st.fixed_dictionaries(
    {"id": st.text(max_size=5) | st.integers(), "vtid": st.text(max_size=12) | st.none()},
    optional={
        "created_at": st.text(max_size=30) | st.integers(),
        "metadata": json_values,
        "topic": json_values,
        "message": st.text(max_size=40),
    },
)


@DB_EXAMPLES
@given(
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_events.map(lambda v: json.dumps(v).encode())
)
def test_any_payload_is_applied_or_recorded_never_raised(db: Database, data: bytes) -> None:
    db.run(lambda s: s.script("TRUNCATE vtid_ledger, ledger_rejections"))
    outcome = handle_message(db, Message(data=data, message_id="m", publish_time=None))
    rejected = db.run(lambda s: s.scalar("SELECT count(*) FROM ledger_rejections"))
    assert (outcome is Outcome.REJECTED) == (rejected == 1)
    rows = db.run(lambda s: s.scalar("SELECT count(*) FROM vtid_ledger"))
    assert rows == (1 if outcome is Outcome.CREATED else 0)


def test_only_deliveries_with_a_publish_time_have_a_lag_and_each_lands_in_its_bucket(
    db: Database,
) -> None:
    from ledger import projector_progress, writer_status

    with db.session() as s:
        s.run("SELECT ledger_count_realtime('rejected', NULL)")  # recorded by Python: no lag
        s.run("SELECT ledger_count_realtime('updated', now(), now() - interval '3 seconds', 1)")
        s.run(
            "SELECT ledger_count_realtime_many(ARRAY['created', 'ignored', 'stale'], "
            "ARRAY[now(), now(), now()], ARRAY[now() - interval '45 seconds', now(), NULL], "
            "ARRAY[1, 1, 2])"
        )
        totals = s.one(projector_progress.TOTALS, name=projector_progress.PROJECTOR)
        metrics = writer_status.metrics(s)["projectors"][projector_progress.PROJECTOR]
    assert totals is not None
    assert (totals["events_processed"], totals["delivery_lag_count"]) == (4, 2)
    assert (totals["redelivered"], totals["stale"]) == (1, 1)
    buckets = metrics["delivery_lag_buckets"]
    assert (buckets["2.5"], buckets["5.0"], buckets["30.0"], buckets["60.0"]) == (0, 1, 1, 2)
    assert buckets["+Inf"] == 2
