"""Apply `migrations/*.sql` in name order, each once, under a lock, recording what was applied."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.db import Session

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
# Keyed by schema, so writers in different schemas of one database do not wait on each other.
_LOCK = "SELECT pg_advisory_lock(hashtextextended('vtid-ledger-migrate:' || current_schema(), 0))"
_UNLOCK = (
    "SELECT pg_advisory_unlock(hashtextextended('vtid-ledger-migrate:' || current_schema(), 0))"
)
_APPLIED = "SELECT name, checksum FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (name, checksum) VALUES (:name, :checksum)"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    return [Migration(p.name, p.read_text()) for p in sorted(directory.glob("*.sql"))]


def migration_status(session: Session, directory: Path = MIGRATIONS_DIR) -> list[dict[str, Any]]:
    """Every migration file: applied (when, and whether the file still matches) or pending."""
    session.script(_CREATE_TABLE)
    applied = {
        r["name"]: r
        for r in session.rows("SELECT name, checksum, applied_at FROM schema_migrations")
    }
    listed: list[dict[str, Any]] = []
    for migration in discover(directory):
        known = applied.get(migration.name)
        listed.append(
            {
                "name": migration.name,
                "checksum": migration.checksum[:16],
                "applied": known is not None,
                "applied_at": None if known is None else known["applied_at"].isoformat(),
                "changed_since": known is not None and known["checksum"] != migration.checksum,
            }
        )
    return listed


def migrate(session: Session, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is pending; return the names applied. Safe to run concurrently and repeatedly."""
    session.run(_LOCK)
    try:
        session.script(_CREATE_TABLE)
        applied = {name: checksum for name, checksum in session.run(_APPLIED)}
        done: list[str] = []
        for migration in discover(directory):
            known = applied.get(migration.name)
            if known is not None:
                if known != migration.checksum:
                    raise MigrationError(
                        f"{migration.name} changed after it was applied; add a new migration"
                    )
                continue
            with session.transaction():
                session.script(migration.sql)
                session.run(_RECORD, name=migration.name, checksum=migration.checksum)
            done.append(migration.name)
        return done
    finally:
        session.run(_UNLOCK)
