"""Opening a connection: a DATABASE_URL, the Cloud SQL connector, or the embedded server (the
three configurations in README, Configuration), each with the session settings pinned; and a
refusal said in one line."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from ledger.config import ConfigError, Settings
from ledger.db_errors import Transient, describe, sqlstate

if TYPE_CHECKING:
    from pg8000.core import CoreConnection


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
