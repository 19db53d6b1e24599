"""Migrations: fresh, repeated, concurrent, and on top of the platform's existing tables."""

import threading
from pathlib import Path

import pytest

from ledger.db import Database, Session
from ledger.events import decode
from ledger.migrate import MigrationError, discover, migrate
from ledger.realtime import apply_event
from tests.conftest import event, ledger_row

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
        apply_event(s, decode(event(vtid="VTID-0100", topic="task_completed")))
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
