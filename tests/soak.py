"""The soak: the whole system under load while several things go wrong at once.

Four producers insert events into oasis_events in transactions of random sizes, with delays
inside them, and publish the same events (shuffled, some twice, plus unreadable messages) to a
Pub/Sub emulator, whose messages two relays push to the event function as a push subscription
would. A sweep runs every 100 ms. Meanwhile every connection is terminated, Postgres restarts,
a sweep is killed inside a batch and another between batches, and the event function's process
is killed and restarted. At the end the ledger must equal the reference fold, with nothing lost.

`tests/test_soak.py` runs it sized for CI; `bench/soak.py` runs it longer and prints figures.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ledger.config import Settings
from ledger.db import Database, Session
from ledger.events import Rejected, decode, jsonb_text
from ledger.local import embedded
from ledger.local import relay as relays
from ledger.local.serve import function_command
from ledger.migrate import migrate
from ledger.sweep import SweepRunning, sweep, sweep_until_caught_up
from ledger.verify import verify
from ledger.writer_status import status

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "soak"
TYPES = ["task_created", "task_started", "task_completed", "task_failed", "build_started",
         "deployment_succeeded", "pr_merged", "custom.thing", None]  # fmt: skip
STATUSES = ["info", "success", "error", None]
INSERT = """
INSERT INTO oasis_events (id, created_at, vtid, topic, service, status, message, metadata)
VALUES (:id, CAST(:created_at AS timestamptz), :vtid, :topic, :service, :status, :message,
    CAST(:metadata AS jsonb))
ON CONFLICT (id) DO NOTHING"""


@dataclass
class Figures:
    events: int = 0
    bad_rows: int = 0
    published: int = 0
    published_twice: int = 0
    bad_messages: int = 0
    deliveries: int = 0
    redeliveries: int = 0
    failed_deliveries: int = 0
    connections_terminated: int = 0
    terminations: int = 0
    fault_errors: list[str] = field(default_factory=list)
    restarts: int = 0
    sweeps_killed_in_batch: int = 0
    sweeps_killed_between_batches: int = 0
    function_kills: int = 0
    sweeps: int = 0
    sweeps_failed: int = 0
    producer_retries: int = 0
    unacknowledged_left: int = 0
    drifted_rows: int = 0
    lost: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_events(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Random VTIDs, types and times (few minutes, so ties are common); about 2% unreadable
    (metadata that is not an object)."""
    vtids = [f"VTID-{i:04d}" for i in range(max(20, n // 20))]
    events = []
    for i in range(n):
        metadata: Any = {"branch": rng.choice(["main", "dev", "x"]), "run": rng.randrange(50)}
        if rng.random() < 0.1:
            metadata["assignee"] = rng.choice(["ana", "bo"])
        if rng.random() < 0.02:
            metadata = [1, i]
        events.append(
            {
                "id": f"soak-{i}",
                "vtid": rng.choice(vtids),
                "topic": rng.choice(TYPES),
                "service": rng.choice(["ci", "deployer", "planner"]),
                "status": rng.choice(STATUSES),
                "message": f"step {i}",
                "created_at": f"2025-11-29T10:{rng.randrange(30):02d}:{rng.randrange(3):02d}Z",
                "metadata": metadata,
            }
        )
    return events


def readable(raw: dict[str, Any]) -> bool:
    try:
        decode(raw)
    except Rejected:
        return False
    return True


@dataclass
class Soak:
    """One run. `events` sizes it; `seconds` paces the producers so faults land under load."""

    data_dir: Path
    emulator_host: str
    events: int = 2000
    seconds: float = 40.0
    seed: int = 0
    figures: Figures = field(default_factory=Figures)
    log: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.stop = threading.Event()
        self.inserted = 0
        self.progress = threading.Lock()
        self.answers: dict[str, list[int]] = defaultdict(list)
        self.answers_lock = threading.Lock()
        self.last_answer = time.monotonic()
        self.function: subprocess.Popen[bytes] | None = None
        self.pause_between_batches = threading.Event()

    # --- the parts ---------------------------------------------------------------------------

    def start_database(self) -> None:
        self.pgdata = (self.data_dir / "pg").resolve()
        url = embedded.url(self.pgdata)
        Database(Settings(database_url=url)).run(
            lambda s: s.run(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        )
        self.settings = Settings(
            database_url=url, db_schema=SCHEMA, sweep_batch_size=200, lock_timeout_s=5
        )
        self.db = Database(self.settings)
        self.db.run(migrate)
        self.admin = Database(replace(self.settings, db_schema=None))

    def restart_database(self) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[import-untyped]

        server = embedded._servers[self.pgdata]
        pg_ctl(["-w", "restart", "-m", "fast"], pgdata=self.pgdata, user=server.system_user,
               timeout=60)  # fmt: skip

    def start_function(self) -> None:
        if not hasattr(self, "port"):
            with __import__("socket").socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        env = {
            **os.environ,
            "DATABASE_URL": self.settings.database_url or "",
            "LEDGER_DB_SCHEMA": SCHEMA,
            "LEDGER_LOCK_TIMEOUT_S": "5",
            "PYTHONPATH": str(ROOT),
        }
        log = (self.data_dir / "function.log").open("ab")
        self.function = subprocess.Popen(
            function_command("oasis_event", self.port), env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 60
        while not relays.post(f"http://127.0.0.1:{self.port}/", {"ping": 1}):
            assert self.function.poll() is None, "the event function did not start"
            assert time.monotonic() < deadline, "the event function did not start in time"
            time.sleep(0.1)

    def answered(self, message_id: str, status_code: int) -> None:
        with self.answers_lock:
            self.answers[message_id].append(status_code)
            self.last_answer = time.monotonic()

    def start_pubsub(self) -> None:
        os.environ["PUBSUB_EMULATOR_HOST"] = self.emulator_host
        from google.cloud.pubsub_v1 import PublisherClient

        self.topic = f"projects/soak/topics/events-{uuid.uuid4().hex[:8]}"
        self.publisher = PublisherClient()
        endpoint = f"http://127.0.0.1:{self.port}/"
        self.relays = [relays.start(self.topic, endpoint, self.answered) for _ in range(2)]

    def publish(self, data: bytes) -> None:
        self.publisher.publish(self.topic, data).result(timeout=30)
        self.figures.published += 1

    # --- load --------------------------------------------------------------------------------

    def produce(self, events: list[dict[str, Any]], rng: random.Random, delay: float) -> None:
        db = Database(self.settings)
        later: list[bytes] = []
        try:
            i = 0
            while i < len(events):
                chunk = events[i : i + rng.randint(1, 25)]
                self.insert(db, chunk, rng, delay)
                i += len(chunk)
                with self.progress:
                    self.inserted += len(chunk)
                for raw in rng.sample(chunk, len(chunk)):  # out of commit order
                    data = jsonb_text(raw).encode()
                    self.publish(data)
                    if rng.random() < 0.1:
                        later.append(data)  # published again, much later
                if rng.random() < 0.05:
                    bad = rng.choice([b"{not json %d", b"[%d]", b'"event %d"'])
                    self.publish(bad % rng.randrange(10**9))
                    self.figures.bad_messages += 1
            for data in later:
                self.publish(data)
                self.figures.published_twice += 1
        finally:
            db.close()

    def insert(
        self, db: Database, chunk: list[dict[str, Any]], rng: random.Random, delay: float
    ) -> None:
        """One transaction, with delays inside it; retried whole after a fault (ids make the
        retry idempotent: a commit whose answer was lost is not inserted twice)."""

        def work(s: Session) -> None:
            with s.transaction():
                for raw in chunk:
                    s.run(INSERT, **{**raw, "metadata": jsonb_text(raw["metadata"])})
                    time.sleep(rng.uniform(0, 2 * delay))

        while True:
            try:
                db.run(work)
                return
            except Exception:  # noqa: BLE001 - faults are the point; retry until it lands
                self.figures.producer_retries += 1
                time.sleep(0.2)

    def sweep_forever(self) -> None:
        def between(_: Any) -> None:
            if self.pause_between_batches.is_set():
                time.sleep(0.5)  # long enough for the fault to find the sweep idle

        while not self.stop.is_set():
            try:
                sweep(self.db, on_batch=between)
                self.figures.sweeps += 1
            except Exception:  # noqa: BLE001 - reported by status; the next sweep continues
                self.figures.sweeps_failed += 1
            time.sleep(0.1)

    # --- faults ------------------------------------------------------------------------------

    def terminate_all(self) -> None:
        killed = self.admin.run(
            lambda s: s.scalar(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        )
        self.figures.terminations += 1
        self.figures.connections_terminated += int(killed)

    def kill_sweep_in_batch(self) -> bool:
        """Lock every ledger row in an open transaction: the next batch that touches one waits
        inside its statement, and is killed there."""
        with self.admin.session() as s:
            s.conn.execute_simple("BEGIN")
            s.run(f"SELECT 1 FROM {SCHEMA}.vtid_ledger FOR UPDATE")
            try:
                return self.kill_sweep(
                    "wait_event_type = 'Lock' AND query LIKE '%ledger_sweep_batch%'"
                )
            finally:
                s._rollback_quietly()

    def kill_sweep_between_batches(self) -> bool:
        self.pause_between_batches.set()
        try:
            return self.kill_sweep("state = 'idle'")
        finally:
            self.pause_between_batches.clear()

    def kill_sweep(self, condition: str) -> bool:
        """Terminate the session holding the sweep's advisory lock once it matches."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = self.admin.run(
                lambda s: s.scalar(
                    "SELECT a.pid FROM pg_stat_activity AS a JOIN pg_locks AS l "
                    "ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted "
                    f"WHERE {condition} LIMIT 1"
                )
            )
            if pid:
                self.admin.run(lambda s, p=pid: s.run("SELECT pg_terminate_backend(:p)", p=p))
                return True
            time.sleep(0.005)
        return False

    def kill_function(self) -> None:
        assert self.function is not None
        self.function.send_signal(signal.SIGKILL)
        self.function.wait(timeout=10)
        self.figures.function_kills += 1
        time.sleep(1)
        self.start_function()

    def faults(self) -> None:
        plan: list[tuple[float, Callable[[], object]]] = [
            (0.10, self.terminate_all),
            (0.20, lambda: self.count("sweeps_killed_in_batch", self.kill_sweep_in_batch())),
            (0.30, self.terminate_all),
            (0.40, self.restart),
            (0.55, self.kill_function),
            (0.65, lambda: self.count("sweeps_killed_between_batches",
                                      self.kill_sweep_between_batches())),
            (0.80, self.terminate_all),
        ]  # fmt: skip
        for at, fault in plan:
            while self.inserted < at * self.events and not self.stop.is_set():
                time.sleep(0.05)
            for _ in range(3):  # the database may be mid-restart: try again shortly
                try:
                    fault()
                    break
                except Exception as exc:  # noqa: BLE001 - kept for the report; not landed
                    self.figures.fault_errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    time.sleep(0.5)

    def restart(self) -> None:
        self.restart_database()
        self.figures.restarts += 1

    def count(self, name: str, landed: bool) -> None:
        setattr(self.figures, name, getattr(self.figures, name) + int(landed))

    # --- the run -----------------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator[Soak]:
        self.start_database()
        self.start_function()
        self.start_pubsub()
        try:
            yield self
        finally:
            self.stop.set()
            for relay in getattr(self, "relays", []):
                relay.stop()
            if self.function is not None:
                self.function.terminate()
                with suppress(Exception):
                    self.function.wait(timeout=10)
            self.db.close()
            self.admin.close()

    def run(self) -> list[dict[str, Any]]:
        """Load with faults, then quiesce; returns every event produced."""
        started = time.monotonic()
        events = make_events(self.events, self.rng)
        self.figures.events = len(events)
        self.figures.bad_rows = sum(not readable(e) for e in events)
        per_thread = self.seconds * 4 / max(1, len(events))
        shares = [events[i::4] for i in range(4)]
        producers = [
            threading.Thread(target=self.produce, args=(share, random.Random(self.seed + i),
                                                        per_thread / 2))
            for i, share in enumerate(shares)
        ]  # fmt: skip
        sweeper = threading.Thread(target=self.sweep_forever)
        faults = threading.Thread(target=self.faults)
        for thread in (*producers, sweeper, faults):
            thread.start()
        for thread in (*producers, faults):
            thread.join()
        self.quiesce()
        self.stop.set()
        sweeper.join()
        self.figures.seconds = round(time.monotonic() - started, 1)
        return events

    def quiesce(self, quiet_s: float = 5.0, timeout_s: float = 180.0) -> None:
        """Until the relays have had nothing to deliver for `quiet_s`, and the sweep has no
        backlog."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            quiet = time.monotonic() - self.last_answer > quiet_s
            if quiet and self.db.run(status)["status"]["backlog"] == 0:
                return
            time.sleep(0.5)
        raise AssertionError("the system did not settle")

    def finish(self) -> None:
        """Stop the relays, count what is left on the subscription, sweep to the head."""
        for relay in self.relays:
            relay.stop()
        from google.cloud.pubsub_v1 import SubscriberClient

        subscriber = SubscriberClient()
        try:
            left = subscriber.pull(
                subscription=relays.subscription_path(self.topic), max_messages=100, timeout=5
            )
            self.figures.unacknowledged_left = len(left.received_messages)
        except Exception:  # noqa: BLE001 - no message to return within the timeout
            self.figures.unacknowledged_left = 0
        finally:
            subscriber.close()
        with suppress(SweepRunning):
            sweep_until_caught_up(self.db)
        with self.answers_lock:
            answers = dict(self.answers)
        self.figures.deliveries = sum(len(a) for a in answers.values())
        self.figures.redeliveries = self.figures.deliveries - len(answers)
        self.figures.failed_deliveries = sum(
            1 for a in answers.values() for code in a if not 200 <= code < 300
        )
        self.final_answers = {m: a[-1] for m, a in answers.items()}

    def drift(self) -> int:
        def work(s: Session) -> int:
            return sum(1 for finding in verify(s) if finding.kind == "drift")

        return int(self.db.run(work))


def rejections(db: Database) -> list[tuple[str, str | None, bytes]]:
    rows = db.run(lambda s: s.rows("SELECT source, event_id, raw FROM ledger_rejections"))
    return [(r["source"], r["event_id"], bytes(r["raw"])) for r in rows]


def expected_rejections(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Each unreadable event, once by the sweep (the row) and once by the push path."""
    return {(source, e["id"]) for e in events if not readable(e) for source in ("sweep", "pubsub")}


def figures_json(figures: Figures) -> str:
    return json.dumps(figures.as_dict(), indent=2)
