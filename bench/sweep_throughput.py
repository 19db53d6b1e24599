"""Sweep throughput against two references, measured in one run on the same data and database.

    .venv/bin/python bench/sweep_throughput.py [--events 1000000] [--vtids 10000]
        [--batch-size N] [--seed-slice 20000]

Loads a realistic log (see LOAD) into a throw-away schema and measures:
  * the sweep: `ledger.sweep.sweep` until caught up, batch by batch as production runs it;
  * (a) the seed document's algorithm, ported: per event a SELECT of the row, then an UPDATE
    (when newer, or of higher priority) or an INSERT, each in autocommit, events read by
    created_at after the stored offset in batches of 100; on a slice of the same log;
  * (b) one set-based statement that writes each VTID's newest event (the database's ceiling
    for "touch every row once"), over the whole log.
Prints events/s and the ratios sweep/(a) and sweep/(b), the peak RSS of this process (which
runs the sweep), and where a batch's time goes (EXPLAIN ANALYZE of one batch) with --explain.

Uses DATABASE_URL, else the local server at 127.0.0.1:5432/test, else an embedded Postgres.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.config import Settings
from ledger.db import Database, Session
from ledger.migrate import migrate
from ledger.sweep import sweep_until_caught_up

# A log as the platform writes it: time moves forward with a little jitter between producers;
# most events name their VTID, some only in the message, some (system events) none; a mix of
# the mapped types and custom ones; metadata with an environment, branch, run and commit, now
# and then a description, an assignee or a duration; a few events with unreadable metadata.
LOAD = """
INSERT INTO oasis_events (id, created_at, vtid, topic, service, status, message, metadata)
SELECT 'ev-' || :prefix || '-' || g,
    timestamptz '2025-11-29T00:00:00Z' + g * interval '20 ms'
        + (hashint4(g) % 2000) * interval '1 ms',
    CASE WHEN g % 50 = 0 THEN NULL WHEN g % 33 = 0 THEN NULL
         ELSE 'VTID-' || lpad((abs(hashint4(g * 7)) % :vtids)::text, 5, '0') END,
    (ARRAY['task_created','task_started','build_started','build_succeeded','build_failed',
           'deployment_started','deployment_succeeded','deployment_failed','pr_created',
           'pr_merged','workflow_started','workflow_completed','test.run','lint.finished',
           'task_completed','deployment_validated'])[1 + abs(hashint4(g * 3)) % 16],
    (ARRAY['ci','gateway','builder','deployer','planner','scheduler','github','oasis'])
        [1 + abs(hashint4(g * 5)) % 8],
    (ARRAY['info','success','success','error','info','warning'])[1 + abs(hashint4(g * 11)) % 6],
    CASE WHEN g % 33 = 0
        THEN 'Run ' || g || ' for VTID-' || lpad((abs(hashint4(g * 7)) % :vtids)::text, 5, '0')
            || ' finished on main'
        WHEN g % 50 = 0 THEN 'Nightly maintenance ' || g
        ELSE 'Step ' || g || ' of the pipeline completed in ' || (g % 900) || ' s' END,
    CASE WHEN g % 997 = 0 THEN '[1, 2]'::jsonb ELSE jsonb_strip_nulls(jsonb_build_object(
        'environment', (ARRAY['dev','staging','prod'])[1 + abs(hashint4(g * 13)) % 3],
        'branch', 'feature/' || (abs(hashint4(g * 17)) % 20),
        'run', g, 'commit', substr(md5(g::text), 1, 12),
        'description', CASE WHEN g % 41 = 0 THEN 'Ship the ledger writer, part ' || g % 9 END,
        'assignee', CASE WHEN g % 53 = 0 THEN 'dev' || g % 12 || '@example.com' END,
        'duration_ms', CASE WHEN g % 3 = 0 THEN (g % 10000) / 7.0 END)) END
FROM generate_series(1, :n) AS g"""

# (b): each VTID's newest event written once, set-based, in one statement.
NEWEST_ONCE = """
INSERT INTO vtid_ledger (vtid, status, service, last_event_id, last_event_at)
SELECT DISTINCT ON (vtid) vtid, topic, service, id, created_at FROM oasis_events
WHERE vtid IS NOT NULL ORDER BY vtid, created_at DESC
ON CONFLICT (vtid) DO UPDATE SET status = EXCLUDED.status, service = EXCLUDED.service,
    last_event_id = EXCLUDED.last_event_id, last_event_at = EXCLUDED.last_event_at"""

# (a): the seed's writer, one event at a time.
SEED_READ = """
SELECT id, created_at, vtid, topic, service, status, metadata FROM oasis_events
WHERE created_at > :after ORDER BY created_at LIMIT 100"""
SEED_SELECT = "SELECT status, last_event_at FROM vtid_ledger WHERE vtid = :vtid"
SEED_UPDATE = """
UPDATE vtid_ledger SET status = :status, service = :service, environment = :environment,
    last_event_id = :id, last_event_at = :at, updated_at = now() WHERE vtid = :vtid"""
SEED_INSERT = """
INSERT INTO vtid_ledger (vtid, status, service, environment, last_event_id, last_event_at,
    description, task_family, task_type, tenant, metadata)
VALUES (:vtid, :status, :service, :environment, :id, :at, :description, 'auto', :type,
    'system', CAST(:metadata AS jsonb))"""
SEED_STATUS = {
    "task_created": "pending", "task_started": "active", "task_completed": "complete",
    "build_started": "active", "build_succeeded": "complete", "build_failed": "blocked",
    "deployment_started": "active", "deployment_succeeded": "complete",
    "deployment_failed": "blocked", "deployment_validated": "complete",
    "pr_created": "active", "pr_merged": "complete", "workflow_started": "active",
    "workflow_completed": "complete",
}  # fmt: skip
SEED_PRIORITY = {"pending": 1, "active": 2, "blocked": 3, "cancelled": 4, "complete": 5}


def server_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return "postgresql://postgres@127.0.0.1:5432/test"
    except OSError:
        from ledger.local import embedded

        return embedded.url(Path(tempfile.mkdtemp()))


class Schema:
    """A throw-away schema, migrated, with the log loaded."""

    def __init__(self, url: str, batch_size: int) -> None:
        self.url, self.name = url, "bench_" + uuid.uuid4().hex[:8]
        Database(Settings(database_url=url)).run(lambda s: s.run(f'CREATE SCHEMA "{self.name}"'))
        self.db = Database(
            Settings(
                database_url=url,
                db_schema=self.name,
                sweep_batch_size=batch_size,
                sweep_time_budget_s=3600,
            )
        )
        self.db.run(migrate)

    def load(self, n: int, vtids: int, prefix: str = "a") -> None:
        def work(s: Session) -> None:
            with s.transaction():
                s.run(LOAD, prefix=prefix, n=n, vtids=vtids)
            s.script("VACUUM ANALYZE oasis_events")

        self.db.run(work)

    def drop(self) -> None:
        self.db.close()
        Database(Settings(database_url=self.url)).run(
            lambda s: s.run(f'DROP SCHEMA "{self.name}" CASCADE')
        )


PREFILL = """
INSERT INTO vtid_ledger (vtid, status, service, last_event_at)
SELECT 'OTHER-' || g, 'active', 'planner', timestamptz '2025-11-01T00:00:00Z'
FROM generate_series(1, :n) AS g"""


def measure_sweep(
    url: str, events: int, vtids: int, batch_size: int, ledger_rows: int = 0
) -> tuple[float, int]:
    """The sweep over a fresh log; `ledger_rows` rows (of other tasks) in the ledger first."""
    schema = Schema(url, batch_size)
    try:
        schema.load(events, vtids)
        if ledger_rows:
            schema.db.run(lambda s: s.run(PREFILL, n=ledger_rows))
        started = time.perf_counter()
        result = sweep_until_caught_up(schema.db)
        elapsed = time.perf_counter() - started
        assert result.counters.processed == events, result.counters
        return events / elapsed, result.counters.errors
    finally:
        schema.drop()


def measure_verify(url: str, events: int, vtids: int, batch_size: int) -> tuple[float, float, int]:
    """`python -m ledger verify` on a swept log, as a child process: seconds, its peak RSS in
    MB, and the drifts it found."""
    schema = Schema(url, batch_size)
    try:
        schema.load(events, vtids)
        sweep_until_caught_up(schema.db)
        env = {**os.environ, "DATABASE_URL": url, "LEDGER_DB_SCHEMA": schema.name}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "ledger", "verify"],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return elapsed, peak, len(done.stdout.splitlines())
    finally:
        schema.drop()


EXPLAIN_SETTINGS = """
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
"""


def explain(url: str, events: int, vtids: int, batch_size: int) -> None:
    """One batch of the sweep with auto_explain on the statements inside the SQL functions
    (needs a superuser to LOAD it): where the batch's time goes, statement by statement."""
    import re

    schema = Schema(url, batch_size)
    try:
        schema.load(events, vtids)
        with schema.db.session() as s:
            s.script(EXPLAIN_SETTINGS)
            s.conn.notices = __import__("collections").deque(maxlen=1000)
            started = time.perf_counter()
            s.run("SELECT * FROM ledger_sweep_batch(:n)", n=batch_size)
            total = time.perf_counter() - started
            notices = [n.get(b"M", b"").decode(errors="replace") for n in s.conn.notices]
            plans = [n for n in notices if "Query Text" in n]
        print(f"one batch of {batch_size:,} events over {vtids:,} VTIDs: {total * 1000:,.0f} ms")
        by_statement: dict[str, list[float]] = {}
        for plan in plans:
            text = plan.split("Query Text:", 1)[1].strip().splitlines()[0][:80]
            duration = re.search(r"duration: ([0-9.]+) ms", plan)
            by_statement.setdefault(text, []).append(float(duration[1]) if duration else 0.0)
        print("statements run inside it (auto_explain), by total time:")
        for text, times in sorted(by_statement.items(), key=lambda kv: -sum(kv[1]))[:6]:
            print(f"  {sum(times):9,.1f} ms  x{len(times):<6} {text}")
        print("the batch statement's parts (CTEs and the final write), actual ms:")
        biggest = max(plans, key=len)
        for line in biggest.splitlines():
            part = re.match(r"\s*(CTE \w+|->\s+(?:Insert|Update|Function Scan)[^(]*)", line)
            timing = re.search(r"actual time=[0-9.]+\.\.([0-9.]+) rows=([0-9]+)", line)
            if part and timing:
                print(
                    f"  {float(timing[1]):9,.1f} ms  rows {int(timing[2]):>7,}  {part[1].strip()}"
                )
            elif part and line.strip().startswith("CTE"):
                print(f"  {'':9}     {'':12} {part[1].strip()}")
    finally:
        schema.drop()


def measure_seed(url: str, events: int, vtids: int) -> float:
    schema = Schema(url, 100)
    try:
        schema.load(events, vtids)
        started = time.perf_counter()
        done = 0
        with schema.db.session() as s:
            after = "-infinity"
            while True:
                batch = s.rows(SEED_READ, after=after)
                for e in batch:
                    done += 1
                    if e["vtid"] is None:
                        continue
                    status = SEED_STATUS.get(e["topic"], "active")
                    meta = e["metadata"] if isinstance(e["metadata"], dict) else {}
                    row = s.one(SEED_SELECT, vtid=e["vtid"])
                    fields = {
                        "vtid": e["vtid"],
                        "status": status,
                        "service": e["service"],
                        "environment": meta.get("environment", "dev"),
                        "id": e["id"],
                        "at": e["created_at"],
                    }
                    if row is None:
                        s.run(
                            SEED_INSERT,
                            **fields,
                            description=meta.get("description") or e["topic"],
                            type=e["topic"],
                            metadata=json.dumps(
                                {"autoCreated": True, "sourceEvent": e["id"], "sourceType": status}
                            ),
                        )
                    elif e["created_at"] > row["last_event_at"] or SEED_PRIORITY.get(
                        status, 0
                    ) > SEED_PRIORITY.get(row["status"], 0):
                        s.run(SEED_UPDATE, **fields)
                if len(batch) < 100:
                    break
                after = batch[-1]["created_at"]
        return done / (time.perf_counter() - started)
    finally:
        schema.drop()


def measure_newest_once(url: str, events: int, vtids: int) -> float:
    schema = Schema(url, 100)
    try:
        schema.load(events, vtids)
        started = time.perf_counter()
        schema.db.run(lambda s: s.run(NEWEST_ONCE))
        return events / (time.perf_counter() - started)
    finally:
        schema.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--vtids", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the setting's")
    parser.add_argument("--seed-slice", type=int, default=20_000)
    parser.add_argument("--sweep-only", action="store_true", help="skip the references")
    parser.add_argument(
        "--scaling", action="store_true", help="sweeps of 100k, 300k, 1M events; 1k, 100k VTIDs"
    )
    parser.add_argument("--verify", action="store_true", help="verify's time and memory")
    parser.add_argument(
        "--explain", action="store_true", help="where one batch's time goes (auto_explain)"
    )
    args = parser.parse_args()
    logging.getLogger("ledger").setLevel(logging.ERROR)
    url = server_url()
    batch_size = args.batch_size or Settings.from_env({}).sweep_batch_size
    if args.scaling:
        scaling(url, batch_size)
        return
    if args.explain:
        explain(url, min(args.events, batch_size), args.vtids, batch_size)
        return
    if args.verify:
        seconds, peak, drifts = measure_verify(url, args.events, args.vtids, batch_size)
        print(f"verify of {args.events:,} events: {seconds:.1f} s, peak RSS {peak:,.0f} MB, "
              f"{drifts} drift(s)")  # fmt: skip
        return

    sweep_rate, errors = measure_sweep(url, args.events, args.vtids, batch_size)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"log: {args.events:,} events over {args.vtids:,} VTIDs; batch size {batch_size:,}")
    print(f"sweep                  {sweep_rate:12,.0f} events/s  ({errors:,} rejected)")
    print(f"peak RSS of this process (the sweep's) {rss_mb:,.0f} MB")
    if args.sweep_only:
        return
    seed_rate = measure_seed(url, args.seed_slice, args.vtids)
    newest_rate = measure_newest_once(url, args.events, args.vtids)
    print(f"(a) seed's algorithm   {seed_rate:12,.0f} events/s  ({args.seed_slice:,}-event slice)")
    print(f"(b) newest once        {newest_rate:12,.0f} events/s  (one statement)")
    print(f"sweep / (a)            {sweep_rate / seed_rate:12.1f}x   (goal >= 100x)")
    print(f"sweep / (b)            {sweep_rate / newest_rate:12.2f}x   (goal >= 0.25x)")


def scaling(url: str, batch_size: int) -> None:
    """Per-event cost against log size, against ledger size (the same log, the ledger holding
    1,000 or 100,000 other rows first), and against how thinly events spread over rows."""
    base = None
    for events in (100_000, 300_000, 1_000_000):
        rate, _ = measure_sweep(url, events, 10_000, batch_size)
        base = base or rate
        print(f"{events:>9,} events, 10,000 VTIDs: {rate:8,.0f} events/s, "
              f"per-event cost {base / rate:4.2f}x the 100k run's")  # fmt: skip
    small = None
    for rows in (1_000, 100_000):
        rate, _ = measure_sweep(url, 300_000, 10_000, batch_size, ledger_rows=rows)
        small = small or rate
        print(f"  300,000 events, ledger of {rows:>7,} other rows first: {rate:8,.0f} events/s, "
              f"per-event cost {small / rate:4.2f}x")  # fmt: skip
    for vtids in (1_000, 100_000):
        rate, _ = measure_sweep(url, 300_000, vtids, batch_size)
        per_row = 300_000 / vtids
        print(f"  300,000 events over {vtids:>7,} VTIDs ({per_row:,.0f} per row): "
              f"{rate:8,.0f} events/s")  # fmt: skip


if __name__ == "__main__":
    main()
