"""Migrations: fresh, repeated, concurrent, on top of the platform's existing tables, and from
a database that the eighteen migrations before the baseline made (their files as of commit
7873c84, in tests/data)."""

import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.config import Settings
from ledger.counters import Outcome
from ledger.db import Database, Session
from ledger.migrate import (
    BASELINE,
    BASELINE_REPLACES,
    MigrationError,
    discover,
    discover_functions,
    migrate,
    migration_status,
)
from ledger.sweep import sweep_until_caught_up
from ledger.verify import verify
from tests.conftest import _schema_settings, event, ledger_row, ledger_rows, push, store

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
    assert applied == [m.name for m in discover() + discover_functions()]
    assert BASELINE in applied
    assert bare_db.run(migrate) == []
    with bare_db.session() as s:
        assert set(TABLES) <= tables(s)
        offset = s.one("SELECT events_processed FROM projection_offsets")
        assert offset == {"events_processed": 0}


def test_every_file_is_idempotent_on_its_own(bare_db: Database) -> None:
    bare_db.run(migrate)
    with bare_db.session() as s:
        for migration in discover() + discover_functions():
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
    assert sorted(len(r) for r in results) == [0, 0, len(discover() + discover_functions())]


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
    bare_db.run(lambda s: migrate(s, tmp_path, NO_FUNCTIONS))
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (x bigint);")
    with pytest.raises(MigrationError, match="changed"):
        bare_db.run(lambda s: migrate(s, tmp_path, NO_FUNCTIONS))


def test_a_changed_function_file_is_applied_again_and_nothing_else(
    bare_db: Database, tmp_path: Path
) -> None:
    schema, functions = tmp_path / "schema", tmp_path / "functions"
    schema.mkdir(), functions.mkdir()
    (schema / "001_a.sql").write_text("CREATE TABLE a (x int);")
    (functions / "10_f.sql").write_text(
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"
    )
    (functions / "20_g.sql").write_text(
        "CREATE OR REPLACE FUNCTION g() RETURNS int LANGUAGE sql AS 'SELECT f() + 1';"
    )
    assert bare_db.run(lambda s: migrate(s, schema, functions)) == [
        "001_a.sql",
        "sql/10_f.sql",
        "sql/20_g.sql",
    ]
    (functions / "10_f.sql").write_text(
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 41';"
    )
    listed = bare_db.run(lambda s: migration_status(s, schema, functions))
    assert [m["name"] for m in listed if m["pending"]] == ["sql/10_f.sql"]
    assert bare_db.run(lambda s: migrate(s, schema, functions)) == ["sql/10_f.sql"]
    assert bare_db.run(lambda s: s.scalar("SELECT g()")) == 42
    assert bare_db.run(lambda s: migrate(s, schema, functions)) == []


def test_a_function_file_that_fails_leaves_the_schema_as_it_was(
    bare_db: Database, tmp_path: Path
) -> None:
    """One run is one transaction: new schema and new functions land together or not at all."""
    schema, functions = tmp_path / "schema", tmp_path / "functions"
    schema.mkdir(), functions.mkdir()
    (schema / "001_a.sql").write_text("CREATE TABLE a (x int);")
    (functions / "10_f.sql").write_text("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'nope';")
    with pytest.raises(Exception, match="syntax"):
        bare_db.run(lambda s: migrate(s, schema, functions))
    assert bare_db.run(lambda s: s.scalar("SELECT to_regclass('a') IS NULL")) is True


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
    assert json.loads(out.stdout)["ok"] is True
    with bare_db.session() as s:
        assert set(TABLES) <= tables(s)


V1 = json.loads((Path(__file__).parent / "data" / "v1_fold_state.json").read_text())


def test_v1_fold_states_are_converted(bare_db: Database, tmp_path: Path) -> None:
    """Rows folded by the first release (fold_state documents) carry on under the SQL fold:
    verify is clean, and a redelivered event changes nothing."""
    old = old_migrations(tmp_path)
    first = tmp_path / "first"
    first.mkdir()
    for migration in discover(old):
        if migration.name <= "20251201":
            (first / migration.name).write_text(migration.sql)
    bare_db.run(lambda s: migrate(s, first, NO_FUNCTIONS))
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
    with pytest.raises(
        MigrationError, match=r"stopped before 20251201_rejections_and_progress\.sql.*7873c84"
    ):
        bare_db.run(migrate)
    bare_db.run(lambda s: migrate(s, old, NO_FUNCTIONS))  # what that commit's checkout does
    bare_db.run(migrate)
    assert bare_db.run(lambda s: [f for f in verify(s) if f.kind == "drift"]) == []
    base_row = bare_db.run(lambda s: ledger_row(s, "VTID-0702"))
    assert base_row is not None
    assert (base_row["task_family"], base_row["description"]) == (None, "Planned by hand")
    assert "lastEventType" not in base_row["metadata"]  # the rules for such rows now
    for raw in V1["events"]:
        assert push(bare_db, raw) is Outcome.STALE


NO_FUNCTIONS = Path("/nonexistent")
OLD_MIGRATIONS = Path(__file__).parent / "data" / "migrations-2025-12-15.tar.gz"


def old_migrations(into: Path) -> Path:
    """migrations/ as it was before the baseline (commit 7873c84): eighteen files."""
    with tarfile.open(OLD_MIGRATIONS) as archive:
        archive.extractall(into, filter="data")
    return into / "migrations"


@pytest.fixture
def second_db(server_url: str) -> Iterator[Database]:
    for settings in _schema_settings(server_url):
        database = Database(settings)
        yield database
        database.close()


CATALOG = {
    "columns": """
        SELECT c.relname AS owner, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_value,
            a.attidentity AS identity, co.collname AS collation
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
        WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0
          AND NOT a.attisdropped AND c.relkind IN ('r', 'c')
        ORDER BY c.relname, a.attnum""",
    "indexes": """
        SELECT indexname AS name, replace(indexdef, current_schema() || '.', '') AS definition
        FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname""",
    "constraints": """
        SELECT conrelid::regclass::text AS owner, contype AS kind,
            pg_get_constraintdef(oid) AS definition
        FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
        ORDER BY 1, 2, 3""",
    "functions": """
        SELECT p.proname AS name, pg_get_function_identity_arguments(p.oid) AS arguments,
            replace(pg_get_functiondef(p.oid), current_schema(), 'SCHEMA') AS definition
        FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace ORDER BY 1, 2""",
    "settings": "SELECT name, value FROM ledger_settings ORDER BY name",
}


def catalog(db: Database) -> dict[str, list[dict[str, Any]]]:
    return {part: db.run(lambda s, q=query: s.rows(q)) for part, query in CATALOG.items()}


def test_a_database_of_the_eighteen_migrations_upgrades_to_what_a_fresh_one_is(
    bare_db: Database, second_db: Database, settings: Settings, tmp_path: Path
) -> None:
    """A schema at the state of commit 7873c84 (its eighteen migrations applied, events swept
    by its own functions), migrated by this checkout: the baseline is adopted, not run; every
    column, index, constraint, function and setting equals a fresh database's, and no function
    of the old layout is left behind; verify stays clean and the writer carries on."""
    bare_db.run(lambda s: migrate(s, old_migrations(tmp_path), NO_FUNCTIONS))
    before = [event(vtid=f"VTID-{n % 7:04d}", topic="task_started") for n in range(40)]
    store(bare_db, *before)
    bare_db.run(lambda s: s.rows("SELECT * FROM ledger_sweep_batch(100)"))

    applied = bare_db.run(migrate)
    assert applied == [m.name for m in discover() + discover_functions()]  # the baseline adopted
    recorded = bare_db.run(lambda s: s.rows("SELECT name FROM schema_migrations"))
    assert set(BASELINE_REPLACES) <= {r["name"] for r in recorded}

    second_db.run(migrate)
    assert catalog(bare_db) == catalog(second_db)

    assert bare_db.run(lambda s: [f for f in verify(s) if f.kind != "unswept"]) == []
    store(bare_db, *(event(vtid="VTID-0001", topic="task_completed") for _ in range(3)))
    sweep_until_caught_up(bare_db)
    assert bare_db.run(lambda s: list(verify(s))) == []
    assert ledger_rows(bare_db)["VTID-0001"]["status"] == "complete"
    assert push(bare_db, event(vtid="VTID-0008", topic="task_created")) is Outcome.CREATED
    assert bare_db.run(migrate) == []
