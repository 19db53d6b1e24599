"""`rebuild` online: readers never see the ledger emptied or older, an interrupted rebuild
changes nothing, the table keeps its identity; one task at a time; rules that carry a version."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from ledger import rebuild
from ledger.config import Settings
from ledger.db import Database
from ledger.fold import Base
from ledger.sweep import sweep
from ledger.writer_status import status
from tests.conftest import FunctionServer, event, made_elsewhere, push, run_cli, store

BULK = """
INSERT INTO oasis_events (id, created_at, vtid, topic, service, status, message, metadata)
SELECT 'bulk-' || i, timestamptz '2025-11-29 10:00:00+00' + i * interval '1 second',
    'VTID-' || lpad((i % :vtids)::text, 5, '0'),
    (ARRAY['task_created', 'task_started', 'build_succeeded', 'task_completed'])[1 + i % 4],
    'ci', 'info', 'step ' || i, jsonb_build_object('branch', 'b' || (i % 13), 'run', i)
FROM generate_series(1, :n) AS i"""


def snapshot(db: Database) -> list[dict[str, Any]]:
    return db.run(
        lambda s: s.rows(
            "SELECT vtid, status, service, environment, last_event_id, last_event_at, "
            "description, task_family, task_type, assigned_to, tenant, metadata::text AS m, "
            "fold_newest, fold_founding FROM vtid_ledger ORDER BY vtid"
        )
    )


@pytest.fixture
def big(db: Database) -> Database:
    db.run(lambda s: s.run(BULK, n=100_000, vtids=2_000))
    sweep(db, batch_size=50_000)
    return db


def test_readers_never_see_the_ledger_emptied_or_older_while_it_rebuilds(
    big: Database, settings: Settings
) -> None:
    """100,000 events: while the rebuild runs, readers keep every row, each at least as new as
    before; pushes and stored events meanwhile are kept; afterwards verify is clean."""
    before = {r["vtid"]: r["last_event_at"] for r in snapshot(big)}
    big.run(lambda s: s.run("UPDATE vtid_ledger SET status = 'drifted' WHERE vtid = 'VTID-00007'"))
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        reader_db = Database(settings)
        while not stop.is_set():
            rows = reader_db.run(lambda s: s.run("SELECT vtid, last_event_at FROM vtid_ledger"))
            reads += 1
            if len(rows) < len(before):
                problems.append(f"{len(rows)} rows seen, {len(before)} before")
            problems.extend(f"{v} went back" for v, at in rows if v in before and at < before[v])
        reader_db.close()

    def writer() -> None:
        writer_db = Database(settings)
        for i in range(40):  # real-time deliveries and producers' rows during the rebuild
            raw = event(id=f"live-{i}", vtid=f"VTID-{i % 5:05d}",
                        created_at=f"2025-12-01T00:00:{i:02d}Z")  # fmt: skip
            store(writer_db, raw)
            push(writer_db, raw)
            time.sleep(0.01)
        writer_db.close()

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    done = rebuild.rebuild(big, batch_size=20_000)
    threads[1].join()
    stop.set()
    threads[0].join()
    assert not problems[:5] and reads > 0
    assert done.events >= 100_000 and done.updated >= 1  # the drifted row is mended
    sweep(big)  # events committed after the rebuild's horizon are the sweep's
    verified = run_cli(settings, "verify")
    assert verified.returncode == 0, verified.stdout[:2000]


@pytest.mark.parametrize("where", ["during the fold", "just before the switch", "killed"])
def test_an_interrupted_rebuild_leaves_the_ledger_as_it_was(db: Database, where: str) -> None:
    db.run(lambda s: s.run(BULK, n=3_000, vtids=100))
    sweep(db)
    db.run(lambda s: s.run("UPDATE vtid_ledger SET status = 'drifted' WHERE vtid = 'VTID-00003'"))
    before = snapshot(db)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    def kill(*_: object) -> None:
        db.run(
            lambda s: s.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE '%ledger_rebuild%' AND pid <> pg_backend_pid()"
            )
        )

    hooks: dict[str, dict[str, Callable[..., None]]] = {
        "during the fold": {"on_batch": interrupt},
        "just before the switch": {"before_switch": interrupt},
        "killed": {"on_batch": kill},
    }
    with pytest.raises((KeyboardInterrupt, Exception)):
        rebuild.rebuild(db, batch_size=500, **hooks[where])  # type: ignore[arg-type]
    assert snapshot(db) == before
    assert rebuild.rebuild(db).updated == 1  # and the lock was let go


def test_the_table_keeps_its_identity(db: Database) -> None:
    """A rename swap would leave other systems' views on the old table: the view sees the
    rebuilt rows, and the table's OID is the same."""
    store(db, event(id="a", vtid="VTID-0001"), event(id="b", vtid="VTID-0002"))
    sweep(db)
    oid = db.run(lambda s: s.scalar("SELECT 'vtid_ledger'::regclass::oid"))
    db.run(lambda s: s.script("CREATE VIEW platform_tasks AS SELECT vtid, status FROM vtid_ledger"))
    db.run(lambda s: s.run("UPDATE vtid_ledger SET status = 'drifted'"))
    db.run(lambda s: s.run("INSERT INTO vtid_ledger (vtid, fold_founding) VALUES ('VTID-9', 'x')"))
    done = rebuild.rebuild(db)
    assert (done.updated, done.deleted) == (2, 1)
    assert db.run(lambda s: s.scalar("SELECT 'vtid_ledger'::regclass::oid")) == oid
    assert db.run(lambda s: s.run("SELECT vtid, status FROM platform_tasks ORDER BY vtid")) == [
        ["VTID-0001", "active"],
        ["VTID-0002", "active"],
    ]


def test_one_task_through_the_cli(db: Database, settings: Settings) -> None:
    """verify --vtid and rebuild --vtid: a drifted row, a task with no events, and a row another
    system made, which goes back to what it was before its events."""
    store(
        db, event(id="a", vtid="VTID-0001"), event(id="b", vtid="VTID-0002", topic="task_completed")
    )
    made_elsewhere(db, "VTID-0003", Base(status="archived", description="legacy"))
    store(db, event(id="c", vtid="VTID-0003", topic="task_completed"))
    sweep(db)
    db.run(lambda s: s.run("UPDATE vtid_ledger SET status = 'drifted' WHERE vtid = 'VTID-0001'"))
    drifted = run_cli(settings, "verify", "--vtid", "vtid-0001")
    assert drifted.returncode == 1 and '"vtid":"VTID-0001"' in drifted.stdout
    assert run_cli(settings, "verify", "--vtid", "VTID-0002").returncode == 0
    rebuilt = run_cli(settings, "rebuild", "--vtid", "VTID-0001")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["result"]["rows"]["updated"] == 1
    assert run_cli(settings, "verify", "--vtid", "VTID-0001").returncode == 0
    nothing = run_cli(settings, "rebuild", "--vtid", "VTID-4242")  # no events, no row
    assert json.loads(nothing.stdout)["result"] == {
        "events_read": 0,
        "rows": {"inserted": 0, "updated": 0, "deleted": 0},
        "vtids": ["VTID-4242"],
    }
    db.run(lambda s: s.run("DELETE FROM oasis_events WHERE id = 'c'"))  # its event is gone
    restored = run_cli(settings, "rebuild", "--vtid", "VTID-0003")
    assert json.loads(restored.stdout)["result"]["rows"]["updated"] == 1
    row = db.run(
        lambda s: s.one("SELECT status, description FROM vtid_ledger WHERE vtid = 'VTID-0003'")
    )
    assert row == {"status": "archived", "description": "legacy"}
    assert run_cli(settings, "rebuild", "--vtid", "not a vtid").returncode == 2


def test_one_task_over_http(
    db: Database, serve_function: Callable[..., FunctionServer], settings: Settings
) -> None:
    from tests.conftest import env_for

    fn = serve_function("ledger_http", env_for(settings, LEDGER_API_TOKEN="t0ken"))
    auth = {"Authorization": "Bearer t0ken"}
    store(db, event(id="a", vtid="VTID-0001"))
    sweep(db)
    db.run(lambda s: s.run("UPDATE vtid_ledger SET status = 'drifted'"))
    url = fn.url("/internal/oasis/ledger/verify?vtid=VTID-0001")
    assert requests.get(url, timeout=30).status_code == 401
    checked = requests.get(url, headers=auth, timeout=30).json()
    assert checked["ok"] is False and checked["findings"][0]["columns"]["status"]
    rebuilt = requests.post(
        fn.url("/internal/oasis/ledger/rebuild?vtid=VTID-0001"), headers=auth, timeout=30
    ).json()
    assert rebuilt["row"] == "updated"
    assert requests.get(url, headers=auth, timeout=30).json()["ok"] is True
    missing = requests.post(fn.url("/internal/oasis/ledger/rebuild"), headers=auth, timeout=30)
    assert missing.status_code == 400 and "vtid is required" in missing.json()["error"]


def test_rows_folded_under_older_rules_are_reported_and_refolded(
    db: Database, settings: Settings
) -> None:
    store(db, *(event(id=f"e{i}", vtid=f"VTID-{i:04d}") for i in range(5)))
    sweep(db)
    assert db.run(status)["status"]["outdated_rows"] == 0
    db.run(  # a migration that changes a rule bumps the version
        lambda s: s.script(
            "CREATE OR REPLACE FUNCTION ledger_rules_version() RETURNS text "
            "LANGUAGE sql IMMUTABLE AS $$ SELECT 'next' $$"
        )
    )
    assert db.run(status)["status"]["outdated_rows"] == 5
    metrics = run_cli(settings, "status")
    assert json.loads(metrics.stdout)["status"]["outdated_rows"] == 5
    refolded = run_cli(settings, "rebuild", "--outdated")
    assert refolded.returncode == 0, refolded.stderr
    assert len(json.loads(refolded.stdout)["result"]["vtids"]) == 5
    assert db.run(status)["status"]["outdated_rows"] == 0
