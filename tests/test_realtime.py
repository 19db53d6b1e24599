"""The real-time apply path on a real Postgres: platform cases, order independence, concurrency."""

import json
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import fold, store
from ledger.db import Database, Session
from ledger.events import Event, decode
from ledger.outcome import Outcome
from ledger.pubsub_message import Message
from ledger.realtime import apply_event, handle_message
from ledger.vtid import of_event
from tests.conftest import apply_all, event, examples, ledger_row, run_together
from tests.strategies import events

DB_EXAMPLES = settings(
    max_examples=examples(0.4),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def test_newer_task_completed_moves_active_row_to_complete(session: Session) -> None:
    apply_event(session, decode(event(topic="task_started", created_at="2025-11-29T10:00:00Z")))
    assert ledger_row(session, "VTID-0001")["status"] == "active"  # type: ignore[index]
    done = decode(event(topic="task_completed", created_at="2025-11-29T11:00:00Z"))
    assert apply_event(session, done) is Outcome.UPDATED
    assert ledger_row(session, "VTID-0001")["status"] == "complete"  # type: ignore[index]


def test_older_deployment_started_does_not_downgrade_complete(session: Session) -> None:
    apply_event(
        session, decode(event(topic="deployment_succeeded", created_at="2025-11-29T12:00:00Z"))
    )
    old = decode(event(topic="deployment_started", created_at="2025-11-29T09:00:00Z"))
    apply_event(session, old)
    row = ledger_row(session, "VTID-0001")
    assert row is not None
    assert row["status"] == "complete"
    assert row["last_event_at"].isoformat() == "2025-11-29T12:00:00+00:00"


def test_batch_vtids_end_complete_and_active(session: Session) -> None:
    for raw in [
        event(vtid="VTID-BATCH-1", topic="task_created", created_at="2025-11-29T10:00:00Z"),
        event(vtid="VTID-BATCH-1", topic="task_completed", created_at="2025-11-29T10:05:00Z"),
        event(vtid="VTID-BATCH-2", topic="task_started", created_at="2025-11-29T10:01:00Z"),
    ]:
        apply_event(session, decode(raw))
    assert ledger_row(session, "VTID-BATCH-1")["status"] == "complete"  # type: ignore[index]
    assert ledger_row(session, "VTID-BATCH-2")["status"] == "active"  # type: ignore[index]


def test_outcomes_created_updated_stale_skipped_ignored(session: Session) -> None:
    e = decode(event())
    assert apply_event(session, e) is Outcome.CREATED
    assert apply_event(session, e) is Outcome.STALE
    newer = decode(event(created_at="2025-11-30T00:00:00Z"))
    assert apply_event(session, newer) is Outcome.UPDATED
    assert apply_event(session, decode(event(vtid="SYSTEM-HEALTH"))) is Outcome.SKIPPED
    sync = decode(event(service="oasis-projector", topic="ledger_sync"))
    assert apply_event(session, sync) is Outcome.IGNORED
    assert session.scalar("SELECT count(*) FROM vtid_ledger") == 1


def test_skipped_events_write_no_row(session: Session) -> None:
    for raw in [event(vtid=...), event(vtid="VTID-ABC"), event(vtid="0521", message="VTID-0521")]:
        assert apply_event(session, decode(raw)) is Outcome.SKIPPED
    assert session.scalar("SELECT count(*) FROM vtid_ledger") == 0


def test_pre_existing_row_is_folded_from_its_own_columns(session: Session) -> None:
    session.run(
        "INSERT INTO vtid_ledger (vtid, status, description, tenant, metadata, last_event_at) "
        "VALUES ('VTID-0001', 'complete', 'From the planner', 'acme', '{\"owner\": \"ops\"}', "
        "'2025-12-01T00:00:00Z')"
    )
    assert apply_event(session, decode(event(metadata={"branch": "b"}))) is Outcome.UPDATED
    row = ledger_row(session, "VTID-0001")
    assert row is not None
    assert (row["status"], row["description"], row["tenant"]) == (
        "complete",
        "From the planner",
        "acme",
    )
    assert row["metadata"] == {"owner": "ops", "branch": "b"}


def _expected(evs: list[Event]) -> dict[str, fold.Row]:
    by_vtid: dict[str, list[Event]] = defaultdict(list)
    for e in evs:
        vtid = of_event(e)
        if vtid is not None:
            by_vtid[vtid].append(e)
    return {v: fold.render(s) for v, es in by_vtid.items() if (s := fold.fold_events(es))}


def _ledger(session: Session) -> dict[str, fold.Row]:
    out = {}
    for row in session.rows("SELECT vtid, fold_state FROM vtid_ledger"):
        state = store.read(session, row["vtid"]).state
        assert state is not None
        out[row["vtid"]] = fold.render(state)
    return out


def _columns(session: Session) -> dict[str, dict[str, Any]]:
    rows = session.rows(
        "SELECT vtid, status, service, environment, last_event_id, last_event_at, description, "
        "task_family, task_type, assigned_to, tenant, metadata FROM vtid_ledger"
    )
    return {r.pop("vtid"): r for r in rows}


def _as_columns(rows: dict[str, fold.Row]) -> dict[str, dict[str, Any]]:
    return {v: {k: getattr(r, k) for k in fold.Row.__slots__} for v, r in rows.items()}


@DB_EXAMPLES
@given(st.data(), events(max_size=16))
def test_one_at_a_time_in_any_order_equals_the_fold(
    db: Database, data: st.DataObject, evs: list[Event]
) -> None:
    delivered = data.draw(
        st.permutations(evs + data.draw(st.lists(st.sampled_from(evs), max_size=5)))
    )
    with db.session() as s:
        s.run("TRUNCATE vtid_ledger")
        for e in delivered:
            apply_event(s, e)
        assert _columns(s) == _as_columns(_expected(evs))


@DB_EXAMPLES
@given(st.data(), events(vtids=["VTID-0001", "VTID-0002"], max_size=24))
def test_concurrent_writers_equal_the_fold(
    db: Database, data: st.DataObject, evs: list[Event]
) -> None:
    delivered = data.draw(st.permutations(evs + evs))  # every event at least twice
    lanes = [delivered[i::4] for i in range(4)]
    db.run(lambda s: s.run("TRUNCATE vtid_ledger"))
    errors = run_together(*[lambda lane=lane: apply_all(db, lane) for lane in lanes])
    assert not errors
    with db.session() as s:
        assert _columns(s) == _as_columns(_expected(evs))
        assert _ledger(s) == _expected(evs)


def test_progress_is_spread_over_shards(session: Session) -> None:
    for i in range(40):
        apply_event(session, decode(event(id=f"s{i}")))
    shards = session.run("SELECT count(*), sum(events_processed) FROM projector_progress")
    assert shards[0][0] > 1 and shards[0][1] == 40  # not one row every instance queues on


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
