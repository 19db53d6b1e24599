"""Sessions and the pool: named-parameter statements on one connection, and a small pool shared
by the requests of one process. Connections are made on first use (db_connect) and kept; one
that fails with a connection-level error is thrown away and the next use opens a new one.
Errors come out sorted (db_errors)."""

from __future__ import annotations

import select
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar

from ledger.config import Settings
from ledger.db_connect import connect, database_url, parse_url, startup_params
from ledger.db_errors import (
    NOT_MIGRATED,
    NotMigrated,
    NotPermitted,
    PoolExhausted,
    Refused,
    Transient,
    classified,
    classify,
    describe,
    is_connection_error,
    sqlstate,
)

if TYPE_CHECKING:
    from pg8000.core import CoreConnection

# What callers import from here: the database's one face to the rest of the package.
__all__ = [
    "NOT_MIGRATED",
    "Database",
    "NotMigrated",
    "NotPermitted",
    "PoolExhausted",
    "Refused",
    "Session",
    "Transient",
    "classify",
    "connect",
    "database_url",
    "default",
    "describe",
    "is_connection_error",
    "parse_url",
    "sqlstate",
    "startup_params",
    "text_array",
]

T = TypeVar("T")


def text_array(values: list[str | None]) -> str:
    """A Postgres array literal of text, for `CAST(:param AS text[])` (or any array type whose
    elements read from text). pg8000 converts a list character by character: 40 ms for 128
    events, against microseconds for these string methods."""
    parts = [
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    ]
    return "{" + ",".join(parts) + "}"


class Session:
    """One connection, with named-parameter statements (`:name`) and explicit transactions.
    Errors leave it classified (`classify`); connection errors are left for `Database`."""

    def __init__(self, conn: CoreConnection) -> None:
        self.conn = conn
        self._prepared: dict[str, Any] = {}

    def _execute(self, sql: str, params: dict[str, Any]) -> Any:
        from pg8000.native import to_statement

        statement, make_vals = to_statement(sql)
        try:
            return self.conn.execute_unnamed(statement, vals=make_vals(params))
        except Exception as exc:
            raise classified(exc) from exc

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        return list(self._execute(sql, params).rows or [])

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        context = self._execute(sql, params)
        names = [c["name"] for c in context.columns or []]
        return [dict(zip(names, row, strict=True)) for row in context.rows or []]

    def one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        found = self.rows(sql, **params)
        return found[0] if found else None

    def scalar(self, sql: str, **params: Any) -> Any:
        found = self.run(sql, **params)
        return found[0][0] if found else None

    def call(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """A hot statement, prepared on this connection the first time and reused after: it is
        parsed and planned once instead of on every event."""
        from pg8000.core import make_params
        from pg8000.native import to_statement

        try:
            prepared = self._prepared.get(sql)
            if prepared is None:
                statement, make_vals = to_statement(sql)
                name, columns, input_funcs = self.conn.prepare_statement(statement, ())
                prepared = self._prepared[sql] = (statement, make_vals, name, columns, input_funcs)
            statement, make_vals, name, columns, input_funcs = prepared
            values = make_params(self.conn.py_types, make_vals(params))
            context = self.conn.execute_named(name, values, columns, input_funcs, statement)
        except Exception as exc:
            raise classified(exc) from exc
        names = [c["name"] for c in context.columns or []]
        return [dict(zip(names, row, strict=True)) for row in context.rows or []]

    def script(self, sql: str) -> None:
        try:
            self.conn.execute_simple(sql)
        except Exception as exc:
            raise classified(exc) from exc

    @contextmanager
    def savepoint(self) -> Iterator[Session]:
        """Inside a transaction: on error, undo only what the block did, then re-raise."""
        self.conn.execute_simple("SAVEPOINT ledger_savepoint")
        try:
            yield self
        except BaseException:
            with suppress(Exception):
                self.conn.execute_simple("ROLLBACK TO SAVEPOINT ledger_savepoint")
            raise
        self.conn.execute_simple("RELEASE SAVEPOINT ledger_savepoint")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        self.conn.execute_simple("BEGIN")
        try:
            yield self
        except BaseException:
            self._rollback_quietly()
            raise
        self.conn.execute_simple("COMMIT")

    def _rollback_quietly(self) -> None:
        # The connection may already be gone; the caller's error is the one worth raising.
        with suppress(Exception):
            self.conn.execute_simple("ROLLBACK")

    def idle_and_alive(self) -> bool:
        """No round trip: an idle connection has nothing to read unless the server ended it
        (a restart, a failover, pg_terminate_backend send an error and close the socket)."""
        sock = getattr(self.conn, "_usock", None)
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        with suppress(Exception):  # closing a dead connection fails; nothing to do
            self.conn.close()


class Database:
    """A small LIFO pool of sessions, shared by the requests of one process. It holds at most
    DB_POOL_SIZE connections: a caller that finds none free waits for one (up to the connect
    timeout) rather than opening more, so a burst never churns connections or exceeds what the
    Terraform connection budget counts (instances x pool)."""

    def __init__(
        self, settings: Settings, connector: Callable[[Settings], CoreConnection] = connect
    ) -> None:
        self.settings = settings
        self._connector = connector
        self._idle: list[Session] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.db_pool_size)
        self.opened = 0
        """Connections opened so far (the benchmarks and tests read it)."""

    def _take(self) -> tuple[Session, bool]:
        """A slot, then a pooled session that is still alive, else a new one. One found dead
        makes the rest suspect (a restart ends them all), so the whole idle pool is dropped."""
        if not self._slots.acquire(timeout=self.settings.db_connect_timeout_s):
            raise PoolExhausted(
                f"all {self.settings.db_pool_size} database connections stayed busy for "
                f"{self.settings.db_connect_timeout_s:g} s (DB_POOL_SIZE)"
            )
        try:
            with self._lock:
                session = self._idle.pop() if self._idle else None
            if session is not None:
                if session.idle_and_alive():
                    return session, True
                session.close()
                self.close()
            fresh = Session(self._connector(self.settings))
            with self._lock:
                self.opened += 1
            return fresh, False
        except BaseException:
            self._slots.release()
            raise

    def _give_back(self, session: Session) -> None:
        with self._lock:
            self._idle.append(session)
        self._slots.release()

    def _discard(self, session: Session) -> None:
        session.close()
        self._slots.release()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A live session for the block; a connection error inside discards it (and the idle
        pool, which is suspect too) and raises Transient."""
        session, _ = self._take()
        try:
            yield session
        except Exception as exc:
            if is_connection_error(exc):
                self._discard(session)
                self.close()
                raise Transient(f"database connection lost: {exc}") from exc
            self._give_back(session)
            raise
        except BaseException:
            self._discard(session)  # interrupted mid-statement: its state is unknown
            raise
        else:
            self._give_back(session)

    def run(self, work: Callable[[Session], T]) -> T:
        """Run `work` on a session. If a pooled connection fails (one that died without a word,
        as after a failover), the idle pool is dropped and the work runs once more on a new
        connection: all work here is idempotent, so repeating it after an unknown outcome is
        safe."""
        for attempt in (1, 2):
            session, reused = self._take()
            try:
                result = work(session)
            except Exception as exc:
                if is_connection_error(exc):
                    self._discard(session)
                    self.close()
                    if reused and attempt == 1:
                        continue
                    raise Transient(f"database connection lost: {exc}") from exc
                self._give_back(session)
                raise
            except BaseException:
                self._discard(session)
                raise
            self._give_back(session)
            return result
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()


_default: Database | None = None
_default_lock = threading.Lock()


def default() -> Database:
    """The process-wide database, made on first use from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Database(Settings.from_env())
        return _default
