"""Connections (the three configurations in README, Configuration), a pool, error classes.

Connections are made on first use and kept for later invocations. A connection that fails with
a connection-level error is thrown away; the next use opens a new one.
"""

from __future__ import annotations

import select
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from ledger.config import ConfigError, Settings

if TYPE_CHECKING:
    from pg8000.core import CoreConnection

T = TypeVar("T")

# SQLSTATE classes a single event's data can cause (data exception, integrity constraint,
# program limit such as an index row too large): retrying the same event cannot help.
_REFUSED_CLASSES = ("22", "23", "54")
# A table or one of the writer's functions is missing: the schema is older than the code.
_NOT_MIGRATED = ("42P01", "42883", "42704")
# Worth retrying: the connection, the server going down, resources, a deadlock or a timeout.
_TRANSIENT_CLASSES = ("08", "53", "40", "57")
# lock_timeout (55P03) and a held object (55006) pass once the holder finishes.
_TRANSIENT_CODES = ("55P03", "55006")
NOT_MIGRATED = (
    "the database is not migrated, or this user may not use its schema: run python -m ledger "
    "migrate, then python -m ledger grant"
)


def text_array(values: list[str | None]) -> str:
    """A Postgres array literal of text, for `CAST(:param AS text[])` (or any array type whose
    elements read from text). pg8000 converts a list character by character: 40 ms for 128
    events, against microseconds for these string methods."""
    parts = [
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    ]
    return "{" + ",".join(parts) + "}"


class Transient(RuntimeError):
    """A failure that may pass: raise it so Pub/Sub (or the caller) retries."""


class NotMigrated(Transient):
    """The writer's tables or functions are missing: `python -m ledger migrate` first."""

    def __init__(self) -> None:
        super().__init__(NOT_MIGRATED)


class NotPermitted(Transient):
    """The database user lacks a privilege (SQLSTATE 42501): `python -m ledger grant` fixes it,
    so the path retries rather than dropping the event."""


class Refused(Exception):
    """Postgres refused the data itself (SQLSTATE classes 22, 23, 54): the event is rejected
    and recorded rather than retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sqlstate(exc: BaseException) -> str | None:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], dict):
        code = args[0].get("C")
        return str(code) if code else None
    return None


def describe(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], dict):
        return f"{args[0].get('C', '?')}: {args[0].get('M', '')}"
    return str(exc)


def is_connection_error(exc: BaseException) -> bool:
    import pg8000.exceptions

    if isinstance(exc, pg8000.exceptions.InterfaceError | OSError | EOFError):
        return True
    code = sqlstate(exc) or ""
    # 57P0x: the server shut down; 25P03: it ended a session left idle in a transaction.
    return code.startswith("08") or code in ("57P01", "57P02", "57P03", "25P03")


def classify(exc: Exception) -> Exception:
    """The one place database errors are sorted: what callers should see instead."""
    code = sqlstate(exc) or ""
    if code[:2] in _REFUSED_CLASSES:
        return Refused(describe(exc))
    if code in _NOT_MIGRATED:
        return NotMigrated()
    if code == "42501":
        return NotPermitted(
            f"database: {describe(exc)} (the user needs a ledger role: python -m ledger grant)"
        )
    if (code[:2] in _TRANSIENT_CLASSES or code in _TRANSIENT_CODES) and not is_connection_error(
        exc
    ):
        return Transient(f"database: {describe(exc)}")
    return exc


@dataclass(frozen=True, slots=True)
class UrlParams:
    user: str
    password: str | None
    host: str | None
    port: int
    database: str
    unix_sock: str | None
    ssl_context: ssl.SSLContext | None


def parse_url(url: str) -> UrlParams:
    """A libpq-style postgresql:// URL; `?host=/dir` or a percent-encoded host path is a socket."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError("DATABASE_URL must start with postgresql://")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = unquote(parts.hostname or "") or query.get("host") or None
    port = parts.port or int(query.get("port", "5432"))
    unix_sock = None
    if host and host.startswith("/"):
        unix_sock, host = f"{host}/.s.PGSQL.{port}", None
    elif host is None:
        host = "localhost"
    sslmode = query.get("sslmode", "disable" if unix_sock else "prefer")
    context: ssl.SSLContext | None = None
    if sslmode in ("require", "verify-ca", "verify-full"):
        context = ssl.create_default_context()
        if sslmode != "verify-full":
            context.check_hostname = False
        if sslmode == "require":
            context.verify_mode = ssl.CERT_NONE
    return UrlParams(
        user=unquote(parts.username or query.get("user", "postgres")),
        password=unquote(parts.password) if parts.password else query.get("password"),
        host=host,
        port=port,
        database=unquote(parts.path.lstrip("/")) or query.get("dbname", "postgres"),
        unix_sock=unix_sock,
        ssl_context=context,
    )


_connector: Any = None
_connector_lock = threading.Lock()


def _cloud_sql_connect(settings: Settings) -> CoreConnection:
    global _connector
    with _connector_lock:
        if _connector is None:
            # Imported here: a cold start that never reaches Cloud SQL does not pay for it.
            from ledger.logs import quiet_python_version_notices

            quiet_python_version_notices()
            from google.cloud.sql.connector import Connector, IPTypes

            _connector = Connector(refresh_strategy="lazy", ip_type=IPTypes[settings.db_ip_type])
    kwargs: dict[str, Any] = {"user": settings.db_user, "db": settings.db_name}
    if settings.db_pass:
        kwargs["password"] = settings.db_pass
    else:
        kwargs["enable_iam_auth"] = settings.db_iam_auth
    conn: CoreConnection = _connector.connect(
        settings.instance_connection_name,
        "pg8000",
        timeout=settings.db_connect_timeout_s,
        startup_params=startup_params(settings),
        **kwargs,
    )
    return conn


def startup_params(settings: Settings) -> dict[str, str]:
    """Session settings sent with the connection request itself (no extra round trip). The
    formats are pinned so that no database or role default changes what a rule computes or a
    read returns: a database whose TimeZone is Europe/Amsterdam prints 1850 with an offset of
    +00:19:32, which pg8000 cannot read."""
    params = {
        "TimeZone": "UTC",
        "DateStyle": "ISO, YMD",
        "IntervalStyle": "postgres",
        "extra_float_digits": "3",
        "statement_timeout": str(int(settings.statement_timeout_s * 1000)),
        "lock_timeout": str(int(settings.lock_timeout_s * 1000)),
        "idle_in_transaction_session_timeout": str(
            int(settings.idle_in_transaction_timeout_s * 1000)
        ),
    }
    if settings.db_schema:
        params["search_path"] = settings.db_schema
    return params


def _bound_reads(conn: CoreConnection, settings: Settings) -> None:
    """After connecting, a read may wait as long as a statement may run, and a little more:
    a server that goes silent mid-statement cannot hang a request forever. (pg8000 has one
    timeout for connecting and reading; its socket is the place to set the second.)"""
    sock = getattr(conn, "_usock", None)
    if sock is not None:
        sock.settimeout(settings.statement_timeout_s + settings.db_connect_timeout_s)


def database_url(settings: Settings) -> str | None:
    """The URL to use: DATABASE_URL, or the embedded server's when nothing else is configured."""
    if settings.database_url:
        return settings.database_url
    if settings.instance_connection_name:
        return None
    from ledger.local import embedded

    return embedded.url(settings.data_dir)


def connect(settings: Settings) -> CoreConnection:
    import pg8000.native

    url = database_url(settings)
    try:
        if url is None:
            conn = _cloud_sql_connect(settings)
        else:
            p = parse_url(url)
            conn = pg8000.native.Connection(
                p.user,
                host=p.host or "localhost",
                port=p.port,
                database=p.database,
                password=p.password,
                unix_sock=p.unix_sock,
                ssl_context=p.ssl_context,
                timeout=settings.db_connect_timeout_s,
                application_name="vtid-ledger-writer",
                startup_params=startup_params(settings),
            )
    except Exception as exc:
        if isinstance(exc, ConfigError):
            raise
        raise _refused_connection(exc, url, settings) from exc
    _bound_reads(conn, settings)
    return conn


# The server answered, and said no: the configuration is wrong, retrying cannot help.
_CONFIG_CODES = {
    "3D000": "there is no database {database} on {where}: create it, or fix DATABASE_URL",
    "28P01": "password authentication failed for user {user} on {where}: fix DATABASE_URL "
    "(or DB_PASS)",
    "28000": "{where} refused user {user} (no such role, or pg_hba.conf): fix DATABASE_URL",
    "42501": "user {user} may not connect to {database} on {where}: grant it CONNECT",
}


def _refused_connection(exc: Exception, url: str | None, settings: Settings) -> Exception:
    """One line that says what is wrong and what to do, not the driver's insides: a ConfigError
    (exit 2) when the server refused the configuration, else Transient (exit 3)."""
    if url is None:
        where, user, database = (
            f"Cloud SQL instance {settings.instance_connection_name}",
            settings.db_user or "?",
            settings.db_name or "?",
        )
    else:
        p = parse_url(url)
        where = f"the socket {p.unix_sock}" if p.unix_sock else f"{p.host}:{p.port}"
        user, database = p.user, p.database
    code = sqlstate(exc)
    if code in _CONFIG_CODES:
        return ConfigError(_CONFIG_CODES[code].format(where=where, user=user, database=database))
    if code:
        return Transient(f"{where} refused the connection: {describe(exc)}")
    cause = exc.__cause__ or exc.__context__
    reason = (
        cause.strerror or type(cause).__name__
        if isinstance(cause, OSError) and cause.strerror
        else "no answer in time"
        if isinstance(cause, TimeoutError)
        else str(exc).split(" (")[0]
    )
    return Transient(
        f"cannot reach the database at {where} ({reason}): is Postgres running there? "
        "(DATABASE_URL; unset it to use the embedded one)"
    )


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
            raise _classified(exc) from exc

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
            raise _classified(exc) from exc
        names = [c["name"] for c in context.columns or []]
        return [dict(zip(names, row, strict=True)) for row in context.rows or []]

    def script(self, sql: str) -> None:
        try:
            self.conn.execute_simple(sql)
        except Exception as exc:
            raise _classified(exc) from exc

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


def _classified(exc: Exception) -> Exception:
    return exc if is_connection_error(exc) else classify(exc)


class PoolExhausted(Transient):
    """Every connection of the pool stayed busy for the whole wait: retry later (503)."""


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
