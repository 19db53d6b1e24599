"""`python -m ledger` as an operator runs it."""

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ledger.cli import SMOKE_EVENT
from ledger.config import Settings
from ledger.db import Database
from tests.conftest import ROOT, env_for, event, free_port, run_cli, wait_for_port
from tests.test_sweep import insert


def snapshot(db: Database) -> list[dict[str, Any]]:
    return db.run(
        lambda s: s.rows(
            "SELECT vtid, status, service, environment, last_event_id, last_event_at, description, "
            "task_family, task_type, assigned_to, tenant, metadata FROM vtid_ledger ORDER BY vtid"
        )
    )


@pytest.fixture
def logged(db: Database) -> Database:
    """A log of 350 events over 40 VTIDs, not yet swept."""
    raws = [
        event(
            id=f"c{i}",
            vtid=f"VTID-{i % 40:04d}",
            topic=["task_created", "task_started", "task_completed"][i % 3],
            created_at=f"2025-11-29T10:{i % 60:02d}:00Z",
            metadata={"n": i % 5},
        )
        for i in range(350)
    ]
    insert(db, *raws)
    return db


def test_sync_shows_progress_and_reports(settings: Settings, logged: Database) -> None:
    done = run_cli(settings, "sync")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["processed"] == 350
    assert "sync [" in done.stderr and "350/350 events" in done.stderr
    status = run_cli(settings, "status")
    assert json.loads(status.stdout)["status"]["events_processed"] == 350


def test_verify_finds_drift_and_rebuild_reproduces_the_ledger(
    settings: Settings, logged: Database
) -> None:
    run_cli(settings, "sync", "--quiet")
    assert run_cli(settings, "verify").returncode == 0
    before = snapshot(logged)
    logged.run(
        lambda s: s.run("UPDATE vtid_ledger SET status = 'blocked' WHERE vtid = 'VTID-0007'")
    )
    drift = run_cli(settings, "verify")
    assert drift.returncode == 1
    [line] = drift.stdout.splitlines()
    assert json.loads(line)["vtid"] == "VTID-0007"
    assert json.loads(line)["columns"]["status"]["ledger"] == "blocked"
    rebuilt = run_cli(settings, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuild [" in rebuilt.stderr
    assert snapshot(logged) == before
    assert run_cli(settings, "verify").returncode == 0


def test_rebuild_keeps_rows_other_systems_made(settings: Settings, db: Database) -> None:
    db.run(
        lambda s: s.run(
            "INSERT INTO vtid_ledger (vtid, status, description) "
            "VALUES ('VTID-0001', 'pending', 'Planned'), ('VTID-0777', 'active', 'Only here')"
        )
    )
    insert(db, event(vtid="VTID-0001", topic="task_completed"))
    run_cli(settings, "sync", "--quiet")
    before = snapshot(db)
    assert run_cli(settings, "rebuild").returncode == 0
    assert snapshot(db) == before
    assert before[0]["description"] == "Planned" and before[1]["vtid"] == "VTID-0777"


def test_ingest_command(settings: Settings, db: Database) -> None:
    done = run_cli(settings, "ingest", "-", stdin=json.dumps({**SMOKE_EVENT, "vtid": "VTID-0042"}))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    bad = run_cli(settings, "ingest", '{"id": 1}')
    assert bad.returncode == 1 and "id must be a string" in bad.stderr
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM oasis_events")) == 1


def test_rejections_lists_the_newest(settings: Settings, db: Database) -> None:
    assert run_cli(settings, "ingest", '{"id": "r1", "metadata": [1]}').returncode == 1
    done = run_cli(settings, "rejections", "--limit", "5")
    [line] = done.stdout.splitlines()
    row = json.loads(line)
    assert (row["source"], row["event_id"]) == ("ingest", "r1")
    assert "JSON object" in row["reason"] and row["raw_start"].startswith('{"id": "r1"')


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """`serve` exactly as the README runs it: no DATABASE_URL, so an embedded Postgres."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger", "serve", "--port", str(port)],
        env=env_for(
            settings, DATABASE_URL="", LEDGER_DB_SCHEMA="", LEDGER_DATA_DIR=str(tmp_path / "pg")
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for_port(port, proc, timeout=60)
    wait_for_port(port + 1, proc, timeout=60)
    yield f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "curl -s -X POST" in out  # it told the user how to post an event


def test_serve_fails_when_a_function_cannot_start(settings: Settings, db: Database) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(settings, "serve", "--port", str(port))
    assert done.returncode == 1 and "exited" in done.stderr


def test_seed_smoke_test_verbatim_against_serve(served: str) -> None:
    assert requests.post(f"{served}/api/v1/events/ingest", json=SMOKE_EVENT, timeout=30).json()[
        "ok"
    ]
    assert requests.post(f"{served}/internal/oasis/ledger/sync", timeout=30).json()["ok"]
    deadline = time.monotonic() + 10
    tasks = requests.get(f"{served}/api/v1/tasks?vtid=VTID-TEST-0521", timeout=30).json()
    while not tasks["data"] and time.monotonic() < deadline:
        time.sleep(0.2)
        tasks = requests.get(f"{served}/api/v1/tasks?vtid=VTID-TEST-0521", timeout=30).json()
    assert tasks["data"][0]["status"] == "pending"
