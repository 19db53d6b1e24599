import json
from datetime import UTC, datetime
from functools import reduce

from hypothesis import given
from hypothesis import strategies as st

from ledger import fold
from ledger.events import Event, decode
from ledger.fold import Base, apply, fold_events, merge, render
from tests.conftest import event
from tests.strategies import bases, events

WORKED_EXAMPLE = (
    '{"id":"evt-123","vtid":"VTID-0521","topic":"deployment_succeeded","service":"ci-cd",'
    '"status":"success","message":"Deployment completed successfully","metadata":'
    '{"environment":"dev","taskFamily":"deployment","taskType":"backend"},'
    '"created_at":"2025-11-29T10:00:00.000Z"}'
)


def row_of(*raws: dict[str, object], base: Base | None = None) -> fold.Row:
    state = fold_events([decode(r) for r in raws], base)
    assert state is not None
    return render(state)


def test_spec_worked_example() -> None:
    row = row_of(json.loads(WORKED_EXAMPLE))
    assert row == fold.Row(
        status="complete",
        service="ci-cd",
        environment="dev",
        last_event_id="evt-123",
        last_event_at=datetime(2025, 11, 29, 10, tzinfo=UTC),
        description="Deployment completed successfully",
        task_family="deployment",
        task_type="backend",
        assigned_to=None,
        tenant="system",
        metadata={
            "autoCreated": True,
            "sourceEvent": "evt-123",
            "sourceType": "deployment_succeeded",
            "environment": "dev",
        },
    )


def test_docs_worked_example_then_an_older_event() -> None:
    """docs/behaviour.md's continuation: an older event arrives after the example."""
    older = {"id": "evt-100", "vtid": "VTID-0521", "topic": "task_created", "title": "Ship it",
             "created_at": "2025-11-29T09:00:00Z"}  # fmt: skip
    row = row_of(json.loads(WORKED_EXAMPLE), older)
    assert (row.status, row.last_event_id) == ("complete", "evt-123")
    assert (row.description, row.task_family, row.task_type) == ("Ship it", "deployment", "backend")
    assert row.metadata == {
        "autoCreated": True,
        "sourceEvent": "evt-100",
        "sourceType": "task_created",
        "lastEventType": "deployment_succeeded",
        "environment": "dev",
    }


def test_newest_by_time_then_priority_then_id() -> None:
    t = "2025-11-29T10:00:00Z"
    done = event(id="a", topic="task_completed", created_at=t)
    started = event(id="z", topic="task_started", created_at=t)
    assert row_of(started, done).status == "complete"  # equal time: higher priority is newer
    later = event(id="b", topic="task_started", created_at="2025-11-29T10:00:01Z")
    assert row_of(done, later).status == "active"  # a newer event may lower the status
    same = event(id="y", topic="task_started", created_at=t)
    assert row_of(same, started).last_event_id == "z"  # then the greater id


def test_description_prefers_newest_explicit_then_founding_fallbacks() -> None:
    first = event(id="1", title="Title", message="Msg", created_at="2025-01-01T00:00:00Z")
    second = event(id="2", metadata={"summary": "S"}, created_at="2025-01-02T00:00:00Z")
    third = event(id="3", created_at="2025-01-03T00:00:00Z")
    assert row_of(first, third).description == "Title"
    assert row_of(first, second, third).description == "S"
    assert row_of(event(title=..., message="M")).description == "M"
    assert row_of(event(topic="x_y")).description == "Auto-created from OASIS event: x_y"


def test_founding_columns_follow_the_oldest_event() -> None:
    old = event(id="o", layer="OASIS", kind="fix", tenant="acme", created_at="2025-01-01T00:00:00Z")
    new = event(id="n", layer="OTHER", tenant="other", created_at="2025-02-01T00:00:00Z")
    row = row_of(new, old)
    assert (row.task_family, row.task_type, row.tenant) == ("OASIS", "fix", "acme")
    assert row.metadata["sourceEvent"] == "o"
    assert row.metadata["lastEventType"] == "task_started"
    assert row_of(event(topic=..., kind=...)).task_type == "event"
    assert row_of(event(metadata={"tenant": "m"})).tenant == "m"


def test_metadata_keys_each_from_newest_carrier_and_writer_keys_win() -> None:
    a = event(
        id="a",
        metadata={"branch": "x", "env": "prod", "autoCreated": False},
        created_at="2025-01-01T00:00:00Z",
    )
    b = event(
        id="b",
        metadata={"assignee": "kim", "taskFamily": "F", "description": "D"},
        created_at="2025-01-02T00:00:00Z",
    )
    row = row_of(a, b)
    assert row.metadata == {
        "branch": "x",
        "env": "prod",
        "autoCreated": True,
        "sourceEvent": "a",
        "sourceType": "task_started",
        "lastEventType": "task_started",
    }
    assert (row.assigned_to, row.task_family, row.description) == ("kim", "F", "D")
    assert row.environment == "dev"  # environment is the newest event's, not the newest carrier's


def test_one_event_has_no_last_event_type() -> None:
    assert "lastEventType" not in row_of(event()).metadata


def test_a_row_another_system_made_keeps_what_no_event_set_explicitly() -> None:
    base = Base(
        status="complete",
        description="Hand made",
        tenant="t1",
        last_event_at=datetime(2025, 6, 1, tzinfo=UTC),
        metadata={"owner": "ops"},
    )
    older = event(created_at="2025-05-01T00:00:00Z", metadata={"taskType": "T"}, layer="L")
    row = row_of(older, base=base)
    assert (row.status, row.description, row.task_type, row.tenant) == (
        "complete",
        "Hand made",
        "T",
        "t1",
    )
    assert row.task_family is None  # kept as it was: only an explicit value changes it
    assert row.metadata == {"owner": "ops"}  # and none of the writer's own keys
    newer = event(created_at="2025-07-01T00:00:00Z")
    assert row_of(newer, base=base).status == "active"
    assert row_of(older, newer, base=base).metadata == {"owner": "ops"}  # no lastEventType
    assert row_of(event(), base=Base(status="complete")).status == "active"  # no last_event_at
    assert row_of(event(), base=Base(metadata=None)).metadata is None
    assert row_of(event(metadata={"k": 1}), base=Base(metadata=None)).metadata == {"k": 1}


def _shuffled_with_duplicates(draw: st.DrawFn, evs: list[Event]) -> list[Event]:
    extra = draw(st.lists(st.sampled_from(evs), max_size=len(evs)))
    return draw(st.permutations(evs + extra))


@given(st.data(), events(vtids=["VTID-0001"]), bases)
def test_any_order_and_duplication_gives_the_literal_fold(
    data: st.DataObject, evs: list[Event], base: Base | None
) -> None:
    delivered = _shuffled_with_duplicates(data.draw, evs)
    incremental = fold.with_base(reduce(apply, delivered, None), base)  # type: ignore[arg-type]
    assert incremental == fold_events(evs, base)


@given(st.data(), events(vtids=["VTID-0001"]))
def test_merging_partial_states_in_any_grouping_agrees(
    data: st.DataObject, evs: list[Event]
) -> None:
    split = data.draw(st.integers(0, len(evs)))
    left, right = fold_events(evs[:split]), fold_events(evs[split:])
    whole = fold_events(evs)
    if left is None or right is None:
        return
    assert merge(left, right) == merge(right, left) == whole
    assert merge(whole, left) == whole  # idempotent
