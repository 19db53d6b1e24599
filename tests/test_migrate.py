"""Migrations: fresh, repeated, concurrent, and on top of the platform's existing tables."""

import json
import threading
from pathlib import Path

import pytest

from ledger.counters import Outcome
from ledger.db import Database, Session
from ledger.migrate import MigrationError, discover, migrate
from ledger.verify import verify
from tests.conftest import event, ledger_row, push, store

PLATFORM_SCHEMA = """
CREATE TABLE oasis_events (
    id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    created_at timestamptz NOT NULL DEFAULT now(),
    vtid text, topic text, service text, status text, message text, metadata jsonb
);
CREATE TABLE vtid_ledger (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vtid text NOT NULL UNIQUE,
    status text NOT NULL DEFAULT 'pending',
    task_family text, task_type text, description text, assigned_to text,
    tenant text, metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- An older writer added this without a time zone.
ALTER TABLE vtid_ledger ADD COLUMN last_event_at timestamp;
CREATE TABLE projection_offsets (
    projector_name text PRIMARY KEY,
    last_event_id text, last_event_time timestamptz, last_processed_at timestamptz,
    events_processed bigint DEFAULT 0
);
INSERT INTO oasis_events (id, created_at, vtid, topic, service, status)
VALUES ('old-1', '2025-11-01T00:00:00Z', 'VTID-0100', 'task_created', 'planner', 'info');
INSERT INTO vtid_ledger (vtid, status, description, tenant, last_event_at)
VALUES ('VTID-0100', 'active', 'Planned by hand', 'acme', '2025-11-01 00:00:00');
INSERT INTO projection_offsets (projector_name, events_processed)
VALUES ('vtid_ledger_writer', 42);
"""

TABLES = ["oasis_events", "vtid_ledger", "projection_offsets", "ledger_rejections"]


def tables(session: Session) -> set[str]:
    rows = session.run("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {r[0] for r in rows}


def test_fresh_apply_then_reapply(bare_db: Database) -> None:
    applied = bare_db.run(migrate)
    assert applied == [m.name for m in discover()]
    assert "20251129_vtid_ledger_event_tracking.sql" in applied
    assert bare_db.run(migrate) == []
    with bare_db.session() as s:
        assert set(TABLES) <= tables(s)
        offset = s.one("SELECT events_processed FROM projection_offsets")
        assert offset == {"events_processed": 0}


def test_every_file_is_idempotent_on_its_own(bare_db: Database) -> None:
    bare_db.run(migrate)
    with bare_db.session() as s:
        for migration in discover():
            s.script(migration.sql)  # running any file again changes nothing and fails nothing


def test_concurrent_runners_apply_each_file_once(bare_db: Database) -> None:
    results: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(bare_db.run(migrate))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 0, len(discover())]


def test_on_top_of_the_platform_schema(bare_db: Database) -> None:
    with bare_db.session() as s:
        s.script(PLATFORM_SCHEMA)
    bare_db.run(migrate)
    with bare_db.session() as s:
        assert s.one("SELECT events_processed FROM projection_offsets") == {"events_processed": 42}
        assert s.scalar("SELECT tx_id IS NOT NULL AND seq IS NOT NULL FROM oasis_events") is True
        assert s.scalar("SELECT count(*) FROM oasis_events") == 1
    push(bare_db, event(vtid="VTID-0100", topic="task_completed"))
    with bare_db.session() as s:
        row = ledger_row(s, "VTID-0100")
        assert row is not None
        assert (row["status"], row["description"], row["tenant"]) == (
            "complete",
            "Planned by hand",
            "acme",
        )
        assert row["environment"] == "dev"


def test_a_changed_migration_is_refused(bare_db: Database, tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (x int);")
    bare_db.run(lambda s: migrate(s, tmp_path))
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (x bigint);")
    with pytest.raises(MigrationError, match="changed"):
        bare_db.run(lambda s: migrate(s, tmp_path))


def test_cli_migrate(bare_db: Database, settings: object) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT, env_for

    out = subprocess.run(
        [sys.executable, "-m", "ledger", "migrate"],
        env=env_for(settings),  # type: ignore[arg-type]
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"ok": true' in out.stdout
    with bare_db.session() as s:
        assert set(TABLES) <= tables(s)


V1 = json.loads((Path(__file__).parent / "data" / "v1_fold_state.json").read_text())


def test_v1_fold_states_are_converted(bare_db: Database, tmp_path: Path) -> None:
    """Rows folded by the first release (fold_state documents) carry on under the SQL fold:
    verify is clean, and a redelivered event changes nothing."""
    for migration in discover():
        if migration.name <= "20251201":
            (tmp_path / migration.name).write_text(migration.sql)
    bare_db.run(lambda s: migrate(s, tmp_path))
    store(bare_db, *V1["events"])
    for row in V1["rows"]:
        bare_db.run(
            lambda s, row=row: s.run(
                "INSERT INTO vtid_ledger (vtid, status, service, environment, last_event_id, "
                "last_event_at, description, task_family, task_type, assigned_to, tenant, "
                "metadata, fold_state) VALUES (:vtid, :status, :service, :environment, "
                ":last_event_id, CAST(:last_event_at AS timestamptz), :description, "
                ":task_family, :task_type, :assigned_to, :tenant, CAST(:metadata AS jsonb), "
                "CAST(:fold_state AS jsonb))",
                **{
                    **row,
                    "metadata": json.dumps(row["metadata"]),
                    "fold_state": json.dumps(row["fold_state"]),
                },
            )
        )
    bare_db.run(migrate)
    assert bare_db.run(lambda s: [f for f in verify(s) if f.kind == "drift"]) == []
    base_row = bare_db.run(lambda s: ledger_row(s, "VTID-0702"))
    assert base_row is not None
    assert (base_row["task_family"], base_row["description"]) == (None, "Planned by hand")
    assert "lastEventType" not in base_row["metadata"]  # the rules for such rows now
    for raw in V1["events"]:
        assert push(bare_db, raw) is Outcome.STALE
