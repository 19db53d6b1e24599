"""Connections: URL parsing, the pool, reconnecting after a dropped connection, savepoints."""

import ssl

import pytest

from ledger.config import ConfigError, Settings
from ledger.db import Database, Refused, Session, Transient, parse_url
from tests.conftest import free_port


def test_parse_tcp_url() -> None:
    p = parse_url("postgresql://alice:p%40ss@db.internal:6543/ledger?sslmode=require")
    assert (p.user, p.password, p.host, p.port, p.database) == (
        "alice",
        "p@ss",
        "db.internal",
        6543,
        "ledger",
    )
    assert p.unix_sock is None
    assert p.ssl_context is not None and p.ssl_context.verify_mode == ssl.CERT_NONE


def test_parse_socket_urls() -> None:
    p = parse_url("postgresql://postgres:@/postgres?host=/run/pg")
    assert (p.unix_sock, p.host, p.ssl_context) == ("/run/pg/.s.PGSQL.5432", None, None)
    encoded = parse_url("postgres://u@%2Fvar%2Frun%2Fpostgresql:5433/db")
    assert encoded.unix_sock == "/var/run/postgresql/.s.PGSQL.5433"


def test_verify_full_checks_the_host() -> None:
    context = parse_url("postgresql://u@h/db?sslmode=verify-full").ssl_context
    assert (
        context is not None and context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    )


def test_other_schemes_are_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        parse_url("mysql://u@h/db")


def test_unreachable_database_is_transient(settings: Settings) -> None:
    dead = Database(Settings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/test"))
    with pytest.raises(Transient, match="cannot connect"):
        dead.run(lambda s: s.scalar("SELECT 1"))


def test_pool_reuses_and_reconnects_after_a_dropped_connection(db: Database) -> None:
    first = db.run(lambda s: s.scalar("SELECT pg_backend_pid()"))
    assert db.run(lambda s: s.scalar("SELECT pg_backend_pid()")) == first  # reused
    admin = Database(db.settings)  # another pool: the first connection stays idle in db's
    admin.run(lambda s: s.run("SELECT pg_terminate_backend(:pid)", pid=first))
    admin.close()
    second = db.run(lambda s: s.scalar("SELECT pg_backend_pid()"))
    assert second != first  # the dead one was noticed, dropped and replaced, with no error


def test_connection_lost_inside_a_session_is_transient(db: Database) -> None:
    with pytest.raises(Transient), db.session() as s:
        s.run("SELECT pg_terminate_backend(pg_backend_pid())")
    assert db.run(lambda s: s.scalar("SELECT 1")) == 1


def test_savepoint_undoes_only_its_block(session: Session) -> None:
    session.run("CREATE TABLE t (x int)")
    with session.transaction():
        session.run("INSERT INTO t VALUES (1)")
        with pytest.raises(Refused, match="22012"), session.savepoint():
            session.run("INSERT INTO t VALUES (1 / 0)")
        session.run("INSERT INTO t VALUES (2)")
    assert session.run("SELECT x FROM t ORDER BY x") == [[1], [2]]


def test_schema_setting_isolates(settings: Settings, db: Database) -> None:
    assert db.run(lambda s: s.scalar("SELECT current_schema()")) == settings.db_schema


def test_cloud_sql_without_credentials_is_a_clear_transient_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import ledger.db

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud credentials either
    monkeypatch.setattr(ledger.db, "_connector", None)
    cloud = Database(
        Settings.from_env(
            {"INSTANCE_CONNECTION_NAME": "p:r:i", "DB_NAME": "oasis", "DB_USER": "sa@p.iam"}
        )
    )
    with pytest.raises(Transient, match=r"cannot connect to the database: .*credentials"):
        cloud.run(lambda s: s.scalar("SELECT 1"))


def test_after_a_restart_every_dead_pooled_connection_is_replaced_without_an_error(
    db: Database,
) -> None:
    held = [db._take()[0] for _ in range(3)]  # three connections, then all idle in the pool
    pids = {s.scalar("SELECT pg_backend_pid()") for s in held}
    for s in held:
        db._give_back(s)
    admin = Database(db.settings)
    admin.run(
        lambda s: s.run(
            "SELECT pg_terminate_backend(pid, 10000) FROM unnest(CAST(:p AS int[])) pid",
            p=list(pids),
        )
    )
    admin.close()
    with db.session() as s:  # the sweep's way in
        assert s.scalar("SELECT pg_backend_pid()") not in pids
    assert db.run(lambda s: s.scalar("SELECT pg_backend_pid()")) not in pids
    assert all(session.idle_and_alive() for session in db._idle)
