"""Connections: URL parsing, the pool, reconnecting after a dropped connection, savepoints."""

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import requests

from ledger import writer_status
from ledger.config import ConfigError, Settings
from ledger.db import Database, Refused, Session, Transient, parse_url
from ledger.sweep import sweep
from tests.conftest import FunctionServer, env_for, event, free_port, push, store


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
    with pytest.raises(Transient, match="cannot reach the database"):
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
    import ledger.db_connect

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud credentials either
    monkeypatch.setattr(ledger.db_connect, "_connector", None)
    cloud = Database(
        Settings.from_env(
            {"INSTANCE_CONNECTION_NAME": "p:r:i", "DB_NAME": "oasis", "DB_USER": "sa@p.iam"}
        )
    )
    with pytest.raises(Transient, match=r"cannot reach the database .*credentials"):
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


# --- Bounded waits -------------------------------------------------------------------------


@pytest.fixture
def row_lock(db: Database) -> Iterator[Callable[[str], None]]:
    """Hold a lock on a ledger row in an open transaction of another connection, as a slow
    writer elsewhere would; released at the end of the test."""
    holder = Database(db.settings)
    session_cm = holder.session()
    session = session_cm.__enter__()

    def lock(vtid: str) -> None:
        session.conn.execute_simple("BEGIN")
        session.run("INSERT INTO vtid_ledger (vtid, status) VALUES (:v, 'active')", v=vtid)

    yield lock
    session._rollback_quietly()
    session_cm.__exit__(None, None, None)
    holder.close()


def waits(settings: Settings, **seconds: float) -> Database:
    return Database(replace(settings, **seconds))


@pytest.mark.parametrize(
    ("bounds", "error"),
    [
        ({"statement_timeout_s": 0.5, "lock_timeout_s": 30}, "statement timeout"),
        ({"statement_timeout_s": 30, "lock_timeout_s": 0.5}, "lock timeout"),
    ],
)
def test_a_wait_past_its_bound_is_transient_on_the_realtime_path(
    db: Database, row_lock: Callable[[str], None], bounds: dict[str, float], error: str
) -> None:
    row_lock("VTID-0042")
    bounded = waits(db.settings, **bounds)
    started = time.monotonic()
    with pytest.raises(Transient, match=error):
        push(bounded, event(vtid="VTID-0042"))  # the event function raises: Pub/Sub retries
    assert time.monotonic() - started < 5
    bounded.close()


def test_a_sweep_past_its_bound_reports_and_the_next_one_continues(
    db: Database, row_lock: Callable[[str], None]
) -> None:
    store(db, event(id="t1", vtid="VTID-0042"), event(id="t2", vtid="VTID-0043"))
    row_lock("VTID-0042")
    bounded = waits(db.settings, lock_timeout_s=0.5)
    with pytest.raises(Transient, match="lock timeout"):
        sweep(bounded)
    state = db.run(writer_status.status)["status"]
    assert state["running"] is False and "lock timeout" in state["last_error"]
    assert state["backlog"] == 2  # nothing half-done: the batch rolled back with its offset


def test_the_next_sweep_continues_once_the_wait_is_over(db: Database) -> None:
    store(db, event(id="t1", vtid="VTID-0042"))
    holder = Database(db.settings)
    with holder.session() as s:
        s.conn.execute_simple("BEGIN")
        s.run("INSERT INTO vtid_ledger (vtid, status) VALUES ('VTID-0042', 'active')")
        with pytest.raises(Transient):
            sweep(waits(db.settings, lock_timeout_s=0.5))
        s._rollback_quietly()
    holder.close()
    assert sweep(db).counters.created == 1
    assert db.run(writer_status.status)["status"]["running"] is True


def test_a_session_left_idle_in_a_transaction_is_ended_and_replaced(db: Database) -> None:
    bounded = waits(db.settings, idle_in_transaction_timeout_s=1)
    with bounded.session() as s:
        s.conn.execute_simple("BEGIN")
        s.scalar("SELECT 1")
        forgotten = s.scalar("SELECT pg_backend_pid()")
    time.sleep(1.5)  # idle in its transaction past the bound: the server ends it
    alive = db.run(lambda s: s.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = :p",
                                      p=forgotten))  # fmt: skip
    assert alive == 0  # it no longer holds the snapshot horizon back
    assert bounded.run(lambda s: s.scalar("SELECT 2")) == 2  # the pool replaced it
    bounded.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_server_that_accepts_and_stays_silent_cannot_hang_a_caller(silent_server: int) -> None:
    settings = Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{silent_server}/test",
        db_connect_timeout_s=1,
    )
    started = time.monotonic()
    with pytest.raises(Transient, match="cannot reach the database"):
        Database(settings).run(lambda s: s.scalar("SELECT 1"))
    assert time.monotonic() - started < 3


def test_both_functions_answer_within_their_bound_when_the_server_is_silent(
    settings: Settings, silent_server: int, serve_function: Callable[..., FunctionServer]
) -> None:
    from tests.test_main_oasis_event import push_body, send_push

    silent = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{silent_server}/test",
              "DB_CONNECT_TIMEOUT_S": "1"}  # fmt: skip
    http = serve_function("ledger_http", env_for(settings, **silent))
    started = time.monotonic()
    ready = requests.get(http.url("/ready"), timeout=30)
    assert ready.status_code == 503 and time.monotonic() - started < 5
    events = serve_function("oasis_event", env_for(settings, **silent))
    started = time.monotonic()
    pushed = send_push(events, push_body(b'{"id": "e1", "vtid": "VTID-0001"}'))
    assert pushed.status_code >= 500 and time.monotonic() - started < 5  # redelivered later


def test_the_pool_never_holds_more_than_db_pool_size_connections(settings: Settings) -> None:
    """Sixteen callers on a pool of two wait for a connection rather than opening more."""
    import dataclasses
    import threading

    from ledger.migrate import migrate

    pool = Database(dataclasses.replace(settings, db_pool_size=2))
    pool.run(migrate)
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(20):
            pid = pool.run(lambda s: s.scalar("SELECT pg_backend_pid() FROM pg_sleep(0.001)"))
            with lock:
                seen.append(pid)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.close()
    assert len(seen) == 320
    assert len(set(seen)) <= 2 and pool.opened <= 2


def test_a_caller_that_finds_no_free_connection_waits_then_gets_a_transient_error(
    settings: Settings,
) -> None:
    import dataclasses

    from ledger.db import PoolExhausted

    pool = Database(dataclasses.replace(settings, db_pool_size=1, db_connect_timeout_s=0.3))
    with pool.session(), pytest.raises(PoolExhausted, match="DB_POOL_SIZE"):
        pool.run(lambda s: s.scalar("SELECT 1"))
    assert pool.run(lambda s: s.scalar("SELECT 1")) == 1  # freed: the next caller gets it
    pool.close()


def test_a_mistake_in_a_call_is_not_taken_for_a_lost_connection(db: Database) -> None:
    """pg8000 raises InterfaceError for a placeholder without its argument as for a dead
    socket: the first is a bug to show, not an outage to retry, and the connection stays."""
    with db.session() as s:
        before = s.scalar("SELECT pg_backend_pid()")
        with pytest.raises(Exception) as raised:
            s.run("SELECT :missing")
        assert not isinstance(raised.value, Transient)
        assert "placeholder" in str(raised.value)
        assert s.scalar("SELECT pg_backend_pid()") == before
