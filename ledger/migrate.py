"""Bring a database up to this checkout: the schema of `migrations/` and the functions of `sql/`.

Schema changes are history, functions are code (as Flyway's versioned and repeatable
migrations). A file of `migrations/` is applied once, in name order, and may never change after;
a file of `sql/` always holds the current text of its functions and is applied again, in name
order after the schema, whenever its checksum differs from the one recorded. One run is one
transaction under a lock: a database has either the new schema and functions or the old ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ledger.db import Session
from ledger.timefmt import iso

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = ROOT / "migrations"
FUNCTIONS_DIR = ROOT / "sql"

# The schema that the eighteen migrations before it built, without their functions (which
# live in sql/ now). A database that applied all eighteen takes it as applied without running
# it; one that stopped part-way is refused, since only those files knew how to go on from there.
BASELINE = "20251216_baseline.sql"
BASELINE_REPLACES = (
    "20251128_core_tables.sql",
    "20251129_vtid_ledger_event_tracking.sql",
    "20251130_commit_order_and_fold_state.sql",
    "20251201_rejections_and_progress.sql",
    "20251202_fold_rules.sql",
    "20251203_fold_state.sql",
    "20251204_fold_apply.sql",
    "20251205_sweep_batch.sql",
    "20251206_ingest.sql",
    "20251207_roles.sql",
    "20251208_one_edge.sql",
    "20251209_hardening.sql",
    "20251210_rejections_retention.sql",
    "20251211_key_caps.sql",
    "20251212_group_commit.sql",
    "20251213_rebuild.sql",
    "20251214_operator_day.sql",
    "20251215_group_commit_cheaper.sql",
)
# The last commit whose migrations/ still held those eighteen files.
BEFORE_BASELINE = "7873c84"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
# Keyed by schema, so writers in different schemas of one database do not wait on each other;
# a transaction's lock, released by its commit or rollback whatever happens to the client.
_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('vtid-ledger-migrate:' || current_schema(), 0))"
)
_APPLIED = "SELECT name, checksum, applied_at FROM schema_migrations"
_RECORD = """
INSERT INTO schema_migrations (name, checksum) VALUES (:name, :checksum)
ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()"""

Kind = Literal["schema", "functions"]
Action = Literal["apply", "adopt", "none"]


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str
    kind: Kind

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Step:
    migration: Migration
    action: Action
    recorded: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        known = self.recorded
        return {
            "name": self.migration.name,
            "kind": self.migration.kind,
            "checksum": self.migration.checksum[:16],
            "applied": known is not None,
            "applied_at": None if known is None else iso(known["applied_at"]),
            "pending": self.action != "none",
            "action": self.action,
        }


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    return [Migration(p.name, p.read_text(), "schema") for p in sorted(directory.glob("*.sql"))]


def discover_functions(directory: Path = FUNCTIONS_DIR) -> list[Migration]:
    return [
        Migration(f"sql/{p.name}", p.read_text(), "functions")
        for p in sorted(directory.glob("*.sql"))
    ]


def plan(
    session: Session, migrations: Path = MIGRATIONS_DIR, functions: Path = FUNCTIONS_DIR
) -> list[Step]:
    """What a run would do with each file; raises when the database cannot be brought up."""
    session.script(_CREATE_TABLE)
    recorded = {r["name"]: r for r in session.rows(_APPLIED)}
    steps: list[Step] = []
    for migration in discover(migrations):
        known = recorded.get(migration.name)
        if known is not None:
            if known["checksum"] != migration.checksum:
                raise MigrationError(
                    f"{migration.name} changed after it was applied; add a new migration"
                )
            steps.append(Step(migration, "none", known))
        elif migration.name == BASELINE:
            steps.append(Step(migration, _baseline_action(set(recorded)), None))
        else:
            steps.append(Step(migration, "apply", None))
    for migration in discover_functions(functions):
        known = recorded.get(migration.name)
        unchanged = known is not None and known["checksum"] == migration.checksum
        steps.append(Step(migration, "none" if unchanged else "apply", known))
    return steps


def _baseline_action(recorded: set[str]) -> Action:
    before = [name for name in BASELINE_REPLACES if name in recorded]
    if not before:
        return "apply"
    if len(before) == len(BASELINE_REPLACES):
        return "adopt"
    missing = next(name for name in BASELINE_REPLACES if name not in recorded)
    raise MigrationError(
        f"this database stopped before {missing}: migrate it with a checkout of commit "
        f"{BEFORE_BASELINE} first (`python -m ledger migrate`), then with this one"
    )


def migration_status(
    session: Session, migrations: Path = MIGRATIONS_DIR, functions: Path = FUNCTIONS_DIR
) -> list[dict[str, Any]]:
    """Every file: applied (when) or not, and whether a run would apply it."""
    with session.transaction():
        return [step.as_dict() for step in plan(session, migrations, functions)]


def migrate(
    session: Session, migrations: Path = MIGRATIONS_DIR, functions: Path = FUNCTIONS_DIR
) -> list[str]:
    """Apply what is pending; return the names applied (or adopted). Safe to run concurrently
    and repeatedly: a runner that waited on the lock finds nothing left to do."""
    with session.transaction():
        session.run(_LOCK)
        done: list[str] = []
        for step in plan(session, migrations, functions):
            if step.action == "none":
                continue
            if step.action == "apply":
                session.script(step.migration.sql)
            session.run(_RECORD, name=step.migration.name, checksum=step.migration.checksum)
            done.append(step.migration.name)
        return done
