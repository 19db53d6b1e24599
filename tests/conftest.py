"""Fixtures: a real Postgres (the machine's, else an embedded one), a schema per test, the
functions served by functions-framework over real HTTP, and a Pub/Sub emulator."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from ledger.config import Settings
from ledger.counters import Outcome
from ledger.db import Database, Session, parse_url
from ledger.events import Event, Rejected, decode, jsonb_text, parse_time
from ledger.fold import Base, Row, fold_events, render
from ledger.local.serve import function_command
from ledger.migrate import migrate
from ledger.pubsub_message import Message
from ledger.vtid import of_event

ROOT = Path(__file__).resolve().parent.parent

# Example counts scale from one number. CI runs derandomized, so a run is reproducible;
# HYPOTHESIS_PROFILE=thorough ./dev test explores ten times further.
hypothesis_settings.register_profile("default", max_examples=100)
hypothesis_settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True)
hypothesis_settings.register_profile("thorough", max_examples=1000)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "default")
)


def examples(share: float) -> int:
    """A share of the profile's example count, for tests whose examples hit the database."""
    return max(2, int(hypothesis_settings.default.max_examples * share))


def database_examples(share: float) -> hypothesis_settings:
    """Settings of a property test whose examples hit the database: a share of the profile's
    examples, no deadline (a round trip is not a slow example), and fixtures shared by the
    examples (each example empties what it uses first)."""
    return hypothesis_settings(
        max_examples=examples(share),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _reachable(url: str) -> bool:
    p = parse_url(url)
    try:
        with socket.create_connection((p.host or "127.0.0.1", p.port), timeout=1):
            return True
    except OSError:
        return p.unix_sock is not None and Path(p.unix_sock).exists()


ICU_DATABASE = "ledger_test_icu"


def _linguistic(url: str) -> str:
    """A database whose default collation is ICU's en-US, where 'a' < 'B' and upper() maps the
    dotless i (U+0131) to 'I': text compared or case-mapped without COLLATE "C" fails a test here.
    The server's own database when it has no ICU (the embedded build has none)."""
    admin = Database(Settings(database_url=url))
    try:
        exists = admin.run(
            lambda s: s.scalar("SELECT 1 FROM pg_database WHERE datname = :n", n=ICU_DATABASE)
        )
        if not exists:
            admin.run(
                lambda s: s.script(
                    f"CREATE DATABASE {ICU_DATABASE} TEMPLATE template0 LOCALE_PROVIDER icu "
                    "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
                )
            )
    except Exception:  # noqa: BLE001 - no ICU (or no right to create databases): use url as is
        return url
    finally:
        admin.close()
    p = urlsplit(url)
    return urlunsplit(p._replace(path="/" + ICU_DATABASE))


NON_UTC = "Europe/Amsterdam"


def away_from_utc(url: str) -> str:
    """A database the tests made, set to read and write times in Europe/Amsterdam (where 1850
    is +00:19:32) and dates day first, as a user's may be: nothing may depend on it."""
    admin = Database(Settings(database_url=url))
    try:
        admin.run(
            lambda s: s.script(
                f"ALTER DATABASE {parse_url(url).database} SET TimeZone TO '{NON_UTC}';"
                f"ALTER DATABASE {parse_url(url).database} SET DateStyle TO 'SQL, DMY'"
            )
        )
    finally:
        admin.close()
    return url


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_DATABASE_URL as given; else the machine's Postgres (an ICU database on it), else an
    embedded one started here. A database the tests made is away from UTC."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    if _reachable(LOCAL_URL):
        url = _linguistic(LOCAL_URL)
        yield away_from_utc(url) if url != LOCAL_URL else url
        return
    from ledger.local import embedded

    yield away_from_utc(embedded.url(tmp_path_factory.mktemp("pg")))


@pytest.fixture(scope="session")
def fresh_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A cluster initialised for this run, as a new user's is: its transaction ids start in the
    hundreds, so they gain a digit early (a long-lived server's all have the same length)."""
    from ledger.local import embedded

    return away_from_utc(embedded.url(tmp_path_factory.mktemp("fresh-pg")))


def _schema_settings(server_url: str) -> Iterator[Settings]:
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = Database(Settings(database_url=server_url))
    admin.run(lambda s: s.run(f'CREATE SCHEMA "{schema}"'))
    yield Settings(database_url=server_url, db_schema=schema, sweep_batch_size=100)
    admin.run(lambda s: s.run(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.close()


@pytest.fixture
def settings(server_url: str) -> Iterator[Settings]:
    """A fresh schema for this test, dropped afterwards."""
    yield from _schema_settings(server_url)


@pytest.fixture
def fresh_settings(fresh_server_url: str) -> Iterator[Settings]:
    """A fresh schema on the fresh cluster."""
    yield from _schema_settings(fresh_server_url)


@pytest.fixture
def fresh_db(fresh_settings: Settings) -> Iterator[Database]:
    database = Database(fresh_settings)
    database.run(migrate)
    yield database
    database.close()


@pytest.fixture
def bare_db(settings: Settings) -> Iterator[Database]:
    """A database handle on the test's empty schema (not migrated)."""
    database = Database(settings)
    yield database
    database.close()


@pytest.fixture
def db(bare_db: Database) -> Database:
    bare_db.run(migrate)
    return bare_db


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        yield s


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "DB_", "PUBSUB_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        DATABASE_URL=settings.database_url or "",
        LEDGER_DB_SCHEMA=settings.db_schema or "",
        PYTHONPATH=str(ROOT),
        SWEEP_BATCH_SIZE=str(settings.sweep_batch_size),
    )
    env.update(extra)
    return env


def run_cli(
    settings: Settings, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m ledger ARGS` as an operator runs it, against the test's schema."""
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        env=env_for(settings, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A free port whose next one is free too: `serve --port P` takes P and P + 1."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port}")


class FunctionServer:
    def __init__(self, base: str, proc: subprocess.Popen[Any], log: Path) -> None:
        self.base, self.proc, self.log = base, proc, log

    def url(self, path: str = "/") -> str:
        return self.base + path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def serve_function(
    tmp_path: Path,
) -> Iterator[Callable[..., FunctionServer]]:
    """Start `functions-framework --target T` on main.py with the given environment."""
    started: list[subprocess.Popen[Any]] = []

    def start(target: str, env: dict[str, str]) -> FunctionServer:
        port = free_port()
        log = tmp_path / f"{target}-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                function_command(target, port),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(proc)
        wait_for_port(port, proc)
        return FunctionServer(f"http://127.0.0.1:{port}", proc, log)

    yield start
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def event_function(
    settings: Settings, db: Database, serve_function: Callable[..., FunctionServer]
) -> FunctionServer:
    return serve_function("oasis_event", env_for(settings))


@pytest.fixture
def http_function(
    settings: Settings, db: Database, serve_function: Callable[..., FunctionServer]
) -> FunctionServer:
    return serve_function("ledger_http", env_for(settings))


# --- Pub/Sub emulator -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[str]:
    """The address of a Pub/Sub emulator: PUBSUB_EMULATOR_HOST if set, else pstest started here.
    Under CI=true a missing emulator fails the tests that need it instead of skipping them."""
    from ledger.local import pubsub_emulator as emulators

    try:
        emulator = emulators.start()
    except emulators.NoEmulator as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield emulator.host
    emulator.stop()


# --- Events -----------------------------------------------------------------------------------


def event(**fields: Any) -> dict[str, Any]:
    """A raw OASIS event with sensible defaults; override any field."""
    raw: dict[str, Any] = {
        "id": "evt-" + uuid.uuid4().hex[:12],
        "vtid": "VTID-0001",
        "topic": "task_started",
        "service": "test",
        "status": "info",
        "created_at": "2025-11-29T10:00:00Z",
    }
    raw.update(fields)
    return {k: v for k, v in raw.items() if v is not ...}


def run_together(*work: Callable[[], object]) -> list[BaseException]:
    """Run each callable in its own thread, all released at once; return what they raised."""
    barrier = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


# --- Events in, rows out ------------------------------------------------------------------------


def json_text(raw: Any) -> str:
    """A raw event's JSON text as a producer writes it: numbers as written (Decimal is printed
    as is), a lone surrogate as its escape (`\\ud800`), which is the only way JSON carries one."""
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", jsonb_text(raw))


def as_json(raw: Any) -> bytes:
    """A raw event as a producer sends it."""
    return json_text(raw).encode()


def _present(raw: dict[str, Any], *names: str) -> Any:
    return next((raw[n] for n in names if raw.get(n) not in (None, "")), None)


INSERT_RAW = """
INSERT INTO oasis_events (id, created_at, vtid, topic, event, service, source, status, message,
    notes, metadata, tenant, layer, module, kind, title, ref)
VALUES (:id, :created_at, :vtid, :topic, :event, :service, :source, :status, :message, :notes,
    CAST(:metadata AS jsonb), :tenant, :layer, :module, :kind, :title, :ref)"""


def store(db: Database, *raws: dict[str, Any]) -> None:
    """Insert raw events into oasis_events as a producer does, all in one transaction. Each
    JSON name goes to its column, so the row means what the JSON means."""

    def work(s: Session) -> None:
        with s.transaction():
            for raw in raws:
                metadata = _present(raw, "metadata", "payload")
                s.run(
                    INSERT_RAW,
                    id=raw["id"],
                    created_at=parse_time(_present(raw, "created_at", "createdAt")),
                    topic=raw.get("topic"),
                    event=_present(raw, "event", "type"),
                    metadata=None if metadata is None else jsonb_text(metadata),
                    **{
                        name: raw.get(name)
                        for name in ("vtid", "service", "source", "status", "message", "notes",
                                     "tenant", "layer", "module", "kind", "title", "ref")
                    },
                )  # fmt: skip

    db.run(work)


def push(db: Database, raw: Any, publish_time: datetime | None = None) -> Outcome:
    """One delivery of the event function, as a Pub/Sub push hands it over."""
    from ledger.realtime import handle_message

    message = Message(data=as_json(raw), message_id=uuid.uuid4().hex, publish_time=publish_time)
    return handle_message(db, message)


LEDGER_COLUMNS = (
    "status, service, environment, last_event_id, last_event_at, description, task_family, "
    "task_type, assigned_to, tenant"
)


def ledger_rows(db: Database) -> dict[str, dict[str, Any]]:
    """The columns the fold determines, by VTID; metadata as jsonb prints it, so that a number
    that lost its digits (1.50 against 1.5) is a difference."""
    rows = db.run(
        lambda s: s.rows(
            f"SELECT vtid, {LEDGER_COLUMNS}, metadata::text AS metadata FROM vtid_ledger"
        )
    )
    return {r.pop("vtid"): r for r in rows}


def ledger_row(session: Session, vtid: str) -> dict[str, Any] | None:
    return session.one(
        f"SELECT vtid, {LEDGER_COLUMNS}, metadata FROM vtid_ledger WHERE vtid = :v", v=vtid
    )


def events_by_vtid(raws: list[dict[str, Any]]) -> dict[str, list[Event]]:
    """The readable events of each VTID, as the reference decodes them (own syncs left out)."""
    by_vtid: dict[str, list[Event]] = defaultdict(list)
    for raw in raws:
        try:
            event = decode(raw)
        except Rejected:
            continue
        vtid = None if event.is_own_sync else of_event(event)
        if vtid is not None:
            by_vtid[vtid].append(event)
    return by_vtid


def expected_rows(
    raws: list[dict[str, Any]], bases: dict[str, Base] | None = None
) -> dict[str, dict[str, Any]]:
    """What the reference fold makes of these events (unreadable ones left out)."""
    out = {}
    for vtid, events in events_by_vtid(raws).items():
        state = fold_events(events, (bases or {}).get(vtid))
        assert state is not None
        row = render(state)
        out[vtid] = {name: getattr(row, name) for name in Row.__slots__}
        out[vtid]["metadata"] = None if row.metadata is None else jsonb_text(row.metadata)
    return out


def made_elsewhere(db: Database, vtid: str, base: Base) -> None:
    """A row another system made before any event reached it."""
    fields = {name: getattr(base, name) for name in Base.__dataclass_fields__}
    fields["metadata"] = None if base.metadata is None else jsonb_text(base.metadata)
    db.run(
        lambda s: s.run(
            "INSERT INTO vtid_ledger (vtid, status, service, environment, last_event_id, "
            "last_event_at, description, task_family, task_type, assigned_to, tenant, metadata) "
            "VALUES (:vtid, :status, :service, :environment, :last_event_id, :last_event_at, "
            ":description, :task_family, :task_type, :assigned_to, :tenant, "
            "CAST(:metadata AS jsonb))",
            vtid=vtid,
            **fields,
        )
    )


def empty_log(db: Database) -> None:
    """A fresh log and ledger (between Hypothesis examples), offset rewound to the start."""
    from ledger import projection_offsets

    def work(s: Session) -> None:
        s.script("TRUNCATE vtid_ledger, oasis_events, ledger_rejections, projector_progress")
        projection_offsets.reset(s)

    db.run(work)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
