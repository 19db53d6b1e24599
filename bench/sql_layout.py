"""The fold's SQL as it is against the SQL of commit 7873c84 (before sql/), in one run.

    .venv/bin/python bench/sql_layout.py [--events 200000] [--vtids 5000] [--rounds 3]

Two throw-away schemas on the same server: "before" migrated by the eighteen migrations of
commit 7873c84 (tests/data/migrations-2025-12-15.tar.gz), "after" by this checkout. Each gets
the same log (bench/sweep_throughput.py's LOAD) and the same deliveries, and each measurement
alternates between them, `--rounds` times, keeping each side's best:
  * the sweep: `ledger_sweep_batch(50000)` until the log is read, on an emptied ledger;
  * group commit: `ledger_apply_batch` with 8 deliveries a call (2,000 calls);
  * one delivery: `ledger_apply_event` (2,000 calls);
  * the whole rebuild (`ledger.rebuild.rebuild`, the same Python on both) of the swept log.
Prints each side's rate and after/before (1.00x: the same; above: faster now).

Uses DATABASE_URL, else the local server at 127.0.0.1:5432/test, else an embedded Postgres.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sweep_throughput import LOAD, server_url

from ledger.config import Settings
from ledger.db import Database, Session, text_array
from ledger.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
BEFORE = ROOT / "tests" / "data" / "migrations-2025-12-15.tar.gz"
RESET = """
TRUNCATE vtid_ledger, ledger_rejections, projector_progress;
UPDATE projection_offsets SET position_tx_id = NULL, position_seq = NULL, events_processed = 0
"""
SWEEP = "SELECT read_count FROM ledger_sweep_batch(50000)"
BATCH = """
SELECT count(*) FROM ledger_apply_batch(CAST(:payloads AS text[]),
    CAST(:message_ids AS text[]), CAST(:publish_times AS timestamptz[]),
    CAST(:attempts AS integer[]))"""
ONE = """
SELECT outcome FROM ledger_apply_event(:payload, :message_id,
    CAST(:publish_time AS timestamptz), 1)"""


class Side:
    def __init__(self, url: str, label: str, migrations: Path | None) -> None:
        self.label, self.url, self.name = label, url, "bench_" + uuid.uuid4().hex[:8]
        Database(Settings(database_url=url)).run(lambda s: s.run(f'CREATE SCHEMA "{self.name}"'))
        self.db = Database(Settings(database_url=url, db_schema=self.name))
        if migrations is None:
            self.db.run(migrate)
        else:
            self.db.run(lambda s: migrate(s, migrations, Path("/nonexistent")))

    def drop(self) -> None:
        self.db.close()
        Database(Settings(database_url=self.url)).run(
            lambda s: s.run(f'DROP SCHEMA "{self.name}" CASCADE')
        )


def deliveries(n: int, vtids: int) -> list[str]:
    base = datetime(2025, 11, 29, tzinfo=UTC)
    types = ["task_created", "task_started", "build_succeeded", "deployment_failed", "pr_merged"]
    return [
        json.dumps(
            {
                "id": f"rt-{i}",
                "created_at": (base + timedelta(milliseconds=20 * i)).isoformat(),
                "vtid": f"VTID-{(i * 7919) % vtids:05d}",
                "topic": types[i % len(types)],
                "service": "ci",
                "metadata": {"environment": "prod", "run": i, "branch": "main"},
            }
        )
        for i in range(n)
    ]


def sweep(side: Side) -> float:
    def work(s: Session) -> float:
        s.script(RESET)
        started = time.perf_counter()
        while s.scalar(SWEEP):
            pass
        return time.perf_counter() - started

    return side.db.run(work)


def whole_rebuild(side: Side) -> float:
    from ledger.rebuild import rebuild

    def work(s: Session) -> None:
        s.script(RESET)
        while s.scalar(SWEEP):
            pass

    side.db.run(work)
    started = time.perf_counter()
    rebuild(side.db, batch_size=50_000)
    return time.perf_counter() - started


def group_commit(side: Side, payloads: list[str]) -> float:
    now = datetime.now(UTC).isoformat()

    def work(s: Session) -> float:
        s.script(RESET)
        started = time.perf_counter()
        for at in range(0, len(payloads), 8):
            chunk = payloads[at : at + 8]
            s.scalar(
                BATCH,
                payloads=text_array(chunk),
                message_ids=text_array([uuid.uuid4().hex for _ in chunk]),
                publish_times=text_array([now] * len(chunk)),
                attempts=text_array(["1"] * len(chunk)),
            )
        return time.perf_counter() - started

    return side.db.run(work)


def one_by_one(side: Side, payloads: list[str]) -> float:
    now = datetime.now(UTC).isoformat()

    def work(s: Session) -> float:
        s.script(RESET)
        started = time.perf_counter()
        for payload in payloads:
            s.scalar(ONE, payload=payload, message_id=uuid.uuid4().hex, publish_time=now)
        return time.perf_counter() - started

    return side.db.run(work)


def best(rounds: int, sides: list[Side], measure: Callable[[Side], float]) -> dict[str, float]:
    times: dict[str, float] = {}
    for _ in range(rounds):
        for side in sides:
            took = measure(side)
            times[side.label] = min(times.get(side.label, took), took)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--vtids", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.INFO)

    url = server_url()
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(BEFORE) as archive:
            archive.extractall(tmp, filter="data")
        sides = [Side(url, "before", Path(tmp) / "migrations"), Side(url, "after", None)]
    try:
        for side in sides:
            side.db.run(lambda s: s.run(LOAD, prefix="a", n=args.events, vtids=args.vtids))
            side.db.run(lambda s: s.script("VACUUM ANALYZE oasis_events"))
        payloads = deliveries(2_000, args.vtids)
        results = {
            "sweep (events/s)": (args.events, best(args.rounds, sides, sweep)),
            "group commit, 8 a call (deliveries/s)": (
                len(payloads),
                best(args.rounds, sides, lambda side: group_commit(side, payloads)),
            ),
            "one delivery a call (deliveries/s)": (
                len(payloads),
                best(args.rounds, sides, lambda side: one_by_one(side, payloads)),
            ),
            "whole rebuild (events/s)": (args.events, best(args.rounds, sides, whole_rebuild)),
        }
    finally:
        for side in sides:
            side.drop()
    print(f"{'':40} {'before':>10} {'after':>10} {'after/before':>13}")
    for name, (count, times) in results.items():
        before, after = count / times["before"], count / times["after"]
        print(f"{name:40} {before:10,.0f} {after:10,.0f} {after / before:12.2f}x")


if __name__ == "__main__":
    main()
