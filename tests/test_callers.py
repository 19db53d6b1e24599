"""Per-route authorisation by the caller's identity (ledger/callers.py): the scheduler may
sync, producers may ingest, operators may read and rebuild, and each write names its caller."""

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from ledger.callers import caller, capability
from ledger.config import ConfigError, Settings
from ledger.db import Database
from tests.conftest import FunctionServer, env_for, event

SCHEDULER = "scheduler@proj.iam.gserviceaccount.com"
PRODUCER = "ci@proj.iam.gserviceaccount.com"
OPERATOR = "alice@example.com"


def id_token(email: str, signature: str = "c2lnbmF0dXJl") -> str:
    """An ID token as it reaches the function: Cloud Run has checked it already."""

    def part(claims: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    header = part({"alg": "RS256", "typ": "JWT"})
    return f"{header}.{part({'email': email, 'aud': 'https://x.run.app'})}.{signature}"


def headers_of(email: str | None, name: str = "Authorization") -> dict[str, str]:
    return {} if email is None else {name: f"Bearer {id_token(email)}"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": f"Bearer {id_token('Alice@Example.com')}"}, "alice@example.com"),
        ({"X-Serverless-Authorization": f"Bearer {id_token(SCHEDULER)}"}, SCHEDULER),
        (  # Cloud Run prefers X-Serverless-Authorization when both are sent
            {
                "X-Serverless-Authorization": f"Bearer {id_token(SCHEDULER)}",
                "Authorization": f"Bearer {id_token(PRODUCER)}",
            },
            SCHEDULER,
        ),
        ({"Authorization": f"Bearer {id_token(OPERATOR, signature='')}"}, OPERATOR),
        ({"Authorization": "Bearer not-a-token"}, None),
        ({"Authorization": "Bearer a.!!!.b"}, None),
        ({"Authorization": "Bearer a." + "x" * 20_000 + ".b"}, None),
        ({"Authorization": f"Basic {id_token(OPERATOR)}"}, None),
        ({"Authorization": "Bearer e30.e30.x"}, None),  # {} claims: no email
        ({}, None),
    ],
)
def test_the_caller_is_the_email_of_the_id_token(
    headers: dict[str, str], expected: str | None
) -> None:
    assert caller(headers.get) == expected


def test_each_route_needs_one_capability() -> None:
    assert capability("POST", "/internal/oasis/ledger/sync") == "sync"
    assert capability("POST", "/api/v1/events/ingest") == "ingest"
    assert capability("POST", "/internal/oasis/ledger/rebuild") == "rebuild"
    for method, path in (
        ("GET", "/internal/oasis/ledger/status"),
        ("HEAD", "/metrics"),
        ("GET", "/api/v1/vtid/VTID-0001"),
        ("GET", "/internal/oasis/ledger/verify"),
        ("GET", "/ready"),
    ):
        assert capability(method, path) == "read", path
    assert capability("GET", "/alive") is None


def test_the_lists_take_emails_or_a_star() -> None:
    settings = Settings.from_env({"LEDGER_SYNC_CALLERS": f" {SCHEDULER.upper()} , *"})
    assert settings.callers is not None
    assert settings.callers.sync == frozenset({SCHEDULER, "*"})
    assert settings.callers.read == frozenset()
    assert Settings.from_env({}).callers is None
    with pytest.raises(ConfigError, match="LEDGER_INGEST_CALLERS takes emails or \\*"):
        Settings.from_env({"LEDGER_INGEST_CALLERS": "serviceAccount:ci"})


@pytest.fixture
def guarded(
    settings: Settings, db: Database, serve_function: Callable[..., FunctionServer]
) -> FunctionServer:
    return serve_function(
        "ledger_http",
        env_for(
            settings,
            LEDGER_SYNC_CALLERS=SCHEDULER,
            LEDGER_INGEST_CALLERS=PRODUCER,
            LEDGER_READ_CALLERS=OPERATOR,
            LEDGER_REBUILD_CALLERS=OPERATOR,
        ),
    )


def test_each_caller_may_use_its_routes_and_no_other(guarded: FunctionServer, db: Database) -> None:
    def call(method: str, path: str, who: str | None, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, guarded.url(path), headers=headers_of(who), timeout=30, **kwargs
        )

    posted = event(id="from-ci", vtid="VTID-0041", topic="task_started", status="info")
    posted.update(source="ci", message="started")
    assert call("POST", "/api/v1/events/ingest", PRODUCER, json=posted).status_code == 200
    assert call("POST", "/internal/oasis/ledger/sync", SCHEDULER).status_code == 200
    assert call("GET", "/internal/oasis/ledger/status", OPERATOR).status_code == 200
    rebuilt = call("POST", "/internal/oasis/ledger/rebuild?vtid=VTID-0041", OPERATOR)
    assert rebuilt.status_code == 200

    for method, path, who in (
        ("POST", "/api/v1/events/ingest", SCHEDULER),  # the scheduler may not write events
        ("POST", "/internal/oasis/ledger/sync", PRODUCER),
        ("GET", "/internal/oasis/ledger/status", PRODUCER),
        ("GET", "/metrics", SCHEDULER),
        ("POST", "/internal/oasis/ledger/rebuild?vtid=VTID-0041", PRODUCER),
        ("POST", "/api/v1/events/ingest", OPERATOR),
    ):
        refused = call(method, path, who, json=posted)
        assert refused.status_code == 403, (method, path, who, refused.text)
        assert refused.json()["ok"] is False and who in refused.json()["error"]
    anonymous = call("GET", "/internal/oasis/ledger/status", None)
    assert anonymous.status_code == 401 and "ID token" in anonymous.json()["error"]
    assert call("GET", "/alive", None).status_code == 200

    stored = db.run(lambda s: s.scalar("SELECT ingested_by FROM oasis_events WHERE id = 'from-ci'"))
    assert stored == PRODUCER
    lines = [json.loads(line) for line in guarded.output().splitlines() if line.startswith("{")]
    writes = [line for line in lines if line.get("message", "").startswith("POST ")]
    assert {(line["message"].split()[1], line.get("caller")) for line in writes} >= {
        ("/api/v1/events/ingest", PRODUCER),
        ("/internal/oasis/ledger/sync", SCHEDULER),
        ("/internal/oasis/ledger/rebuild", OPERATOR),
    }


def test_the_cli_stores_its_database_user_as_who_ingested(
    settings: Settings, db: Database, tmp_path: Any
) -> None:
    from tests.conftest import run_cli

    given = event(id="by-cli", vtid="VTID-0042", topic="task_started", status="info")
    given.update(source="ci", message="started")
    (tmp_path / "one.ndjson").write_text(json.dumps(given) + "\n")
    assert run_cli(settings, "ingest", str(tmp_path / "one.ndjson")).returncode == 0
    who = db.run(lambda s: s.one("SELECT ingested_by, session_user AS me FROM oasis_events"))
    assert who is not None and who["ingested_by"] == who["me"]
