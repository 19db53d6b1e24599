"""`explain`: each column of a row and the event that set it, held to the reference fold; and
the two ways a user asks for it, the CLI and `GET /api/v1/vtid/{vtid}/explain`."""

import json
from typing import Any

import pytest
import requests
from hypothesis import given

from ledger.config import Settings
from ledger.db import Database
from ledger.explain import explain
from ledger.fold import Base, State, fold_events, render
from ledger.sweep import sweep
from tests.conftest import (
    FunctionServer,
    database_examples,
    empty_log,
    event,
    events_by_vtid,
    made_elsewhere,
    run_cli,
    store,
)
from tests.strategies import bases, raw_event_lists
from tests.test_sweep import distinct_ids

EXPLAIN_EXAMPLES = database_examples(0.3)


def reference(raws: list[dict[str, Any]], base: Base | None) -> dict[str, tuple[State, int]]:
    """The reference fold's state of every VTID, and how many logged events it has."""
    return {
        vtid: (state, len(events))
        for vtid, events in events_by_vtid(raws).items()
        if (state := fold_events(events, base if vtid == "VTID-0001" else None)) is not None
    }


def set_by(explained: dict[str, Any]) -> str | None:
    """The id of the event an explained value names, or None when no event set it."""
    found = explained.get("event")
    return found["id"] if found else None


def check_against_reference(got: dict[str, Any], state: State, count: int) -> None:
    row, base = render(state), state.base
    assert got["events_in_log"] == count
    assert got["made_by"] == ("another system" if base else "the writer")
    shown_is_base = base is not None and base.key is not None and base.key >= state.newest.key
    newest = None if shown_is_base else state.newest.key[2]
    assert (got["newest_event"] or {}).get("id") == newest
    assert (got["founding_event"] or {}).get("id") == (None if base else state.founding.key[2])
    for name in ("status", "service", "environment", "last_event_id"):
        assert got["columns"][name]["value"] == getattr(row, name), name
        assert set_by(got["columns"][name]) == newest, name
    for name in ("description", "task_family", "task_type", "assigned_to"):
        assert got["columns"][name]["value"] == getattr(row, name), name
        register = state.registers.get(name)
        if register is not None:
            assert set_by(got["columns"][name]) == register.key[2], name
        elif base is not None:
            assert got["columns"][name]["set_by"] == "kept from the row another system made"
        elif name != "assigned_to":
            assert set_by(got["columns"][name]) == state.founding.key[2], name
    metadata = row.metadata if isinstance(row.metadata, dict) else {}
    assert set(got["metadata"]) == set(metadata)
    for name, explained in got["metadata"].items():
        register = state.registers.get("meta." + name)
        if register is not None:
            assert set_by(explained) == register.key[2], name
        elif base is not None:
            assert explained["set_by"] == "kept from the row another system made", name
        else:
            assert explained["set_by"] == "the writer", name
    for explained in [*got["columns"].values(), *got["metadata"].values()]:
        if explained.get("event"):
            assert explained["event"]["in_log"] is True


@EXPLAIN_EXAMPLES
@given(raw_event_lists(max_size=14), bases)
def test_explain_names_the_events_the_reference_fold_chose(
    db: Database, raws: list[dict[str, Any]], base: Base | None
) -> None:
    empty_log(db)
    log = distinct_ids(raws)
    if base is not None:
        made_elsewhere(db, "VTID-0001", base)
    store(db, *log)
    sweep(db)
    for vtid, (state, count) in reference(log, base).items():
        got = db.run(lambda s, v=vtid: explain(s, v))
        assert got is not None
        check_against_reference(got, state, count)


BLOCKED_STORY = [
    event(id="e1", vtid="VTID-0042", topic="task_created", title="Ship the thing",
          created_at="2025-11-29T09:00:00Z", metadata={"priority": "low"}),
    event(id="e2", vtid="VTID-0042", topic="task_started", created_at="2025-11-29T10:00:00Z",
          metadata={"assignee": "ana", "priority": "high"}),
    event(id="e3", vtid="VTID-0042", topic="task_blocked", status="blocked",
          created_at="2025-11-29T11:00:00Z", metadata={"reason": "waiting on review"}),
]  # fmt: skip


def assert_blocked_story(explained: dict[str, Any]) -> None:
    columns, metadata = explained["columns"], explained["metadata"]
    assert columns["status"] == {
        "value": "blocked",
        "set_by": "newest event",
        "event": {"id": "e3", "type": "task_blocked", "created_at": "2025-11-29T11:00:00.000Z",
                  "in_log": True},
    }  # fmt: skip
    assert (columns["description"]["set_by"], set_by(columns["description"])) == (
        "founding event",
        "e1",
    )
    assert columns["assigned_to"]["value"] == "ana" and set_by(columns["assigned_to"]) == "e2"
    assert metadata["priority"]["value"] == "high" and set_by(metadata["priority"]) == "e2"
    assert set_by(metadata["reason"]) == "e3"
    assert explained["events_in_log"] == 3


def test_explain_command_answers_why_a_task_is_blocked(settings: Settings, db: Database) -> None:
    store(db, *BLOCKED_STORY)
    assert run_cli(settings, "sync").returncode == 0
    done = run_cli(settings, "explain", "vtid-0042")
    assert done.returncode == 0, done.stderr
    assert_blocked_story(json.loads(done.stdout))
    missing = run_cli(settings, "explain", "VTID-9999")
    assert missing.returncode == 1 and "VTID-9999 is not in the ledger" in missing.stderr
    bad = run_cli(settings, "explain", "nonsense")
    assert bad.returncode == 2 and "not a valid VTID" in bad.stderr


def test_explain_route_answers_why_a_task_is_blocked(
    http_function: FunctionServer, db: Database
) -> None:
    from tests.test_main_ledger_http import call

    store(db, *BLOCKED_STORY)
    sweep(db)
    found = call(http_function, "GET", "/api/v1/vtid/VTID-0042/explain")
    assert found.status_code == 200
    assert_blocked_story(found.json()["data"])
    assert call(http_function, "GET", "/api/v1/vtid/VTID-9999/explain").status_code == 404
    assert call(http_function, "GET", "/api/v1/vtid/x/explain").status_code == 400


@pytest.mark.parametrize("path", ["/api/v1/vtid/VTID-0042/explain/", "/api/v1/vtid//explain"])
def test_explain_route_edges(http_function: FunctionServer, path: str) -> None:
    response = requests.get(http_function.url(path), timeout=30)
    assert response.status_code in (400, 404) and response.json()["ok"] is False


def test_an_environment_no_event_names_is_explained_as_the_default(db: Database) -> None:
    from tests.conftest import event, store

    store(db, event(id="a", vtid="VTID-0001"))
    store(db, event(id="b", vtid="VTID-0002", metadata={"environment": "prod"}))
    sweep(db)
    plain = db.run(lambda s: explain(s, "VTID-0001"))
    named = db.run(lambda s: explain(s, "VTID-0002"))
    assert plain is not None and named is not None
    assert plain["columns"]["environment"]["value"] == "dev"
    assert plain["columns"]["environment"]["set_by"].startswith("default")
    assert named["columns"]["environment"]["set_by"] == "newest event"
