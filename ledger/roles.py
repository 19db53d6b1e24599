"""The database roles of sql/95_roles.sql, and `python -m ledger grant`: one command that makes
the functions' and the operators' database users members of them, so nobody writes GRANTs by
hand. Run it as a user with CREATEROLE that owns the tables (postgres on Cloud SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.db import NotPermitted, Session

WRITER = "vtid_ledger_writer"
SERVICE = "vtid_ledger_service"
OPERATOR = "vtid_ledger_operator"

ENSURE = "SELECT ledger_ensure_roles()"
GRANT_TABLES = "SELECT ledger_grant_roles()"
MEMBERSHIP = "SELECT ledger_grant_membership(:role, :member)"
USER_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :name)"
# Lets status name the session that holds the sweep back (other users' rows of
# pg_stat_activity); optional, so refused quietly where the granting user may not.
MONITOR = "GRANT pg_monitor TO vtid_ledger_operator"


class GrantError(RuntimeError):
    """The roles or a user cannot be granted; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Granted:
    members: dict[str, list[str]]
    pg_monitor: bool

    def as_dict(self) -> dict[str, Any]:
        return {"ok": True, **self.members, "pg_monitor": self.pg_monitor}


def grant(
    session: Session,
    *,
    writers: Sequence[str] = (),
    services: Sequence[str] = (),
    operators: Sequence[str] = (),
) -> Granted:
    """Create the roles if needed, grant them the tables of this schema, and grant the users
    membership, all in one transaction: either everything is granted or nothing."""
    with session.transaction():
        if not session.scalar(ENSURE):
            raise GrantError("cannot create the roles: run grant as a user with CREATEROLE")
        session.run(GRANT_TABLES)
        members = {WRITER: list(writers), SERVICE: list(services), OPERATOR: list(operators)}
        for role, users in members.items():
            for member in users:
                if not session.scalar(USER_EXISTS, name=member):
                    raise GrantError(f"no database user {member!r}: create it first")
                session.run(MEMBERSHIP, role=role, member=member)
        monitored = True
        try:
            with session.savepoint():
                session.run(MONITOR)
        except NotPermitted:
            monitored = False
    return Granted(members, monitored)
