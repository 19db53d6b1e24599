"""The database roles (sql/95_roles.sql) and `python -m ledger grant`: the functions work as
members of their role, no role can destroy anything, and only people may delete ledger rows."""

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from ledger.config import Settings
from ledger.db import Database, NotPermitted, Session
from ledger.local.serve import SMOKE_EVENT
from tests.conftest import FunctionServer, env_for, event, ledger_row, run_cli, store
from tests.test_main_oasis_event import push_body, send_push

Login = Callable[[], tuple[str, Settings]]


def as_user(settings: Settings, user: str) -> Settings:
    assert settings.database_url is not None
    parts = urlsplit(settings.database_url)
    host = parts.netloc.rpartition("@")[2]
    return replace(settings, database_url=urlunsplit(parts._replace(netloc=f"{user}@{host}")))


@pytest.fixture
def login(settings: Settings, db: Database) -> Iterator[Login]:
    """New login users of the test's database (no role yet), dropped afterwards."""
    made: list[str] = []

    def make() -> tuple[str, Settings]:
        name = "u_" + uuid.uuid4().hex[:10]
        db.run(lambda s: s.run(f'CREATE ROLE "{name}" LOGIN'))
        made.append(name)
        return name, as_user(settings, name)

    yield make
    for name in made:
        db.run(
            lambda s, n=name: s.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :n", n=n
            )
        )
        db.run(lambda s, n=name: s.run(f'DROP OWNED BY "{n}"'))
        db.run(lambda s, n=name: s.run(f'DROP ROLE "{n}"'))


@pytest.fixture
def writer(settings: Settings, login: Login) -> Settings:
    name, as_writer = login()
    assert run_cli(settings, "grant", "--writer", name).returncode == 0
    return as_writer


@pytest.fixture
def service(settings: Settings, login: Login) -> Settings:
    name, as_service = login()
    assert run_cli(settings, "grant", "--service", name).returncode == 0
    return as_service


@pytest.fixture
def operator(settings: Settings, login: Login) -> Settings:
    name, as_operator = login()
    assert run_cli(settings, "grant", "--operator", name).returncode == 0
    return as_operator


def test_grant_makes_users_members_of_the_roles(
    settings: Settings, db: Database, login: Login
) -> None:
    (w, _), (o, _) = login(), login()
    done = run_cli(settings, "grant", "--writer", w, "--operator", o)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["vtid_ledger_writer"] == [w] and answer["vtid_ledger_operator"] == [o]
    members = db.run(
        lambda s: s.rows(
            "SELECT r.rolname AS role, m.rolname AS member FROM pg_auth_members a "
            "JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
            "WHERE m.rolname IN (:w, :o) ORDER BY 1",
            w=w,
            o=o,
        )
    )
    assert members == [
        {"role": "vtid_ledger_operator", "member": o},
        {"role": "vtid_ledger_writer", "member": w},
    ]
    again = run_cli(settings, "grant", "--writer", w)  # granting twice is harmless
    assert again.returncode == 0


def test_grant_refuses_a_user_that_does_not_exist(settings: Settings, db: Database) -> None:
    done = run_cli(settings, "grant", "--writer", "nobody_here")
    assert done.returncode == 1 and "no database user 'nobody_here'" in done.stderr
    assert run_cli(settings, "grant").returncode == 2


@pytest.mark.parametrize("role", ["writer", "service", "operator"])
@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE vtid_ledger",
        "TRUNCATE vtid_ledger",
        "ALTER TABLE vtid_ledger ADD COLUMN x int",
        "DROP TABLE oasis_events",
        "TRUNCATE oasis_events",
        "DELETE FROM oasis_events",
        "UPDATE oasis_events SET status = 'x'",
        "ALTER TABLE projection_offsets DROP COLUMN last_error",
        "DROP FUNCTION ledger_write(ledger_state[])",
        "CREATE TABLE intruder (x int)",
    ],
)
def test_neither_role_can_destroy_or_alter(
    request: pytest.FixtureRequest, role: str, statement: str
) -> None:
    settings: Settings = request.getfixturevalue(role)
    member = Database(settings)
    try:
        with pytest.raises(NotPermitted):
            member.run(lambda s: s.run(statement))
    finally:
        member.close()


def test_the_writer_cannot_move_the_offset_or_delete_rows(writer: Settings) -> None:
    member = Database(writer)
    try:
        for statement in (
            "UPDATE projection_offsets SET events_processed = 0",
            "DELETE FROM vtid_ledger",
            "INSERT INTO oasis_events (id) VALUES ('x')",
        ):
            with pytest.raises(NotPermitted):
                member.run(lambda s, sql=statement: s.run(sql))  # fmt: skip
    finally:
        member.close()


def test_the_event_function_works_as_a_writer(
    writer: Settings, db: Database, serve_function: Callable[..., FunctionServer]
) -> None:
    fn = serve_function("oasis_event", env_for(writer))
    applied = send_push(fn, push_body(json.dumps(event(vtid="VTID-0042")).encode()))
    assert applied.status_code == 200, fn.output()
    assert db.run(lambda s: ledger_row(s, "VTID-0042")) is not None
    rejected = send_push(fn, push_body(b'{"id": "bad", "metadata": [1]}'))
    assert rejected.status_code == 200, fn.output()
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM ledger_rejections")) == 1
    assert db.run(lambda s: s.scalar("SELECT sum(events_processed) FROM projector_progress")) == 2


def test_a_user_without_a_role_is_retried_with_a_hint(
    settings: Settings, login: Login, serve_function: Callable[..., FunctionServer]
) -> None:
    _, nobody = login()
    fn = serve_function("oasis_event", env_for(nobody))
    response = send_push(fn, push_body(json.dumps(event()).encode()))
    assert response.status_code >= 500  # Pub/Sub redelivers once grant has run
    assert "python -m ledger grant" in fn.output()


def test_the_http_function_and_the_cli_work_as_an_operator(
    operator: Settings, db: Database, serve_function: Callable[..., FunctionServer]
) -> None:
    fn = serve_function("ledger_http", env_for(operator))
    url = fn.url
    stored = requests.post(url("/api/v1/events/ingest"), json=SMOKE_EVENT, timeout=30)
    assert stored.status_code == 200, fn.output()
    store(db, event(vtid="VTID-0007", topic="task_completed"))
    synced = requests.post(url("/internal/oasis/ledger/sync"), timeout=30).json()
    assert synced["result"]["created"] == 2, fn.output()
    for path in (
        "/internal/oasis/ledger/status",
        "/metrics",
        "/ready",
        "/api/v1/tasks",
        "/api/v1/vtid/VTID-0007",
        "/api/v1/vtid/VTID-0007/explain",
    ):
        answer = requests.get(url(path), timeout=30)
        assert answer.status_code == 200, (path, fn.output())
    assert run_cli(operator, "verify").returncode == 0
    rebuilt = run_cli(operator, "rebuild", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM vtid_ledger")) == 2


def test_the_http_functions_role_deletes_no_row_but_rebuilds_one_task(
    service: Settings, db: Database, serve_function: Callable[..., FunctionServer]
) -> None:
    """vtid_ledger_service (the HTTP function) sweeps, ingests and reads, and rebuilds one
    task through ledger_rebuild_one, even where that deletes the task's row; it cannot delete
    a row itself, rebuild the whole ledger, or read other sessions (pg_monitor)."""
    fn = serve_function("ledger_http", env_for(service))
    url = fn.url
    assert requests.post(url("/api/v1/events/ingest"), json=SMOKE_EVENT, timeout=30).ok
    store(db, event(id="gone-1", vtid="VTID-0031", topic="task_started"))
    synced = requests.post(url("/internal/oasis/ledger/sync"), timeout=30).json()
    assert synced["result"]["created"] == 2, fn.output()
    for path in ("/internal/oasis/ledger/status", "/metrics", "/api/v1/tasks"):
        assert requests.get(url(path), timeout=30).status_code == 200, (path, fn.output())

    member = Database(service)
    try:
        with pytest.raises(NotPermitted):
            member.run(lambda s: s.run("DELETE FROM vtid_ledger WHERE vtid = 'VTID-0031'"))
        monitor = "SELECT pg_has_role(current_user, 'pg_monitor', 'USAGE')"
        assert member.run(lambda s: s.scalar(monitor)) is False
    finally:
        member.close()

    db.run(lambda s: s.run("DELETE FROM oasis_events WHERE id = 'gone-1'"))  # the log says none
    rebuilt = requests.post(url("/internal/oasis/ledger/rebuild?vtid=VTID-0031"), timeout=30)
    assert rebuilt.status_code == 200, fn.output()
    assert rebuilt.json()["result"]["rows"]["deleted"] == 1
    assert db.run(lambda s: ledger_row(s, "VTID-0031")) is None

    whole = run_cli(service, "rebuild", "--yes")
    assert whole.returncode != 0 and "Traceback" not in whole.stderr
    assert "grant" in whole.stderr


def test_a_temporary_table_cannot_stand_in_for_the_ledger_in_the_definers_rebuild(
    service: Settings, db: Database
) -> None:
    """ledger_rebuild_one runs with its owner's rights: its search_path puts pg_temp last, so
    a caller's temporary table named vtid_ledger is not what it writes."""
    store(db, event(vtid="VTID-0032", topic="task_completed"))
    member = Database(service)
    try:

        def attack(s: Session) -> Any:
            s.run("CREATE TEMP TABLE vtid_ledger (LIKE ledger_state)")
            found = s.one("SELECT * FROM ledger_rebuild_one('VTID-0032')")
            s.run("DROP TABLE pg_temp.vtid_ledger")
            return found

        done = member.run(attack)
    finally:
        member.close()
    assert done is not None and done["inserted"] == 1
    row = db.run(lambda s: ledger_row(s, "VTID-0032"))
    assert row is not None and row["status"] == "complete"
