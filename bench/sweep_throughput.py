"""Sweep throughput: set-based batches against a per-event loop, measured in one run.

    .venv/bin/python bench/sweep_throughput.py [--events 100000] [--baseline-events 5000]

Uses DATABASE_URL, else the local server at 127.0.0.1:5432/test, else an embedded Postgres.
Everything happens in a throw-away schema. Prints events/s for each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.config import Settings
from ledger.db import Database, Session
from ledger.migrate import migrate
from ledger.pubsub_message import Message
from ledger.realtime import handle_message
from ledger.sweep import sweep

INSERT = """
INSERT INTO oasis_events (id, created_at, vtid, topic, service, status, message, metadata)
SELECT :prefix || g, timestamptz '2025-11-29T10:00:00Z' + (g % 3600) * interval '1 second',
       'VTID-' || lpad((g % :vtids)::text, 5, '0'),
       (ARRAY['task_created','task_started','build_succeeded','deployment_failed',
              'task_completed'])[1 + g % 5],
       'ci', 'info', 'event ' || g,
       jsonb_build_object('environment', 'prod', 'branch', 'b' || (g % 13), 'run', g)
FROM generate_series(1, :n) g"""

READ_RAW = """
SELECT id, created_at, vtid, topic, service, status, message, metadata
FROM oasis_events WHERE id LIKE :prefix || '%' ORDER BY seq"""


def server_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return "postgresql://postgres@127.0.0.1:5432/test"
    except OSError:
        from ledger import embedded

        return embedded.url(Path(tempfile.mkdtemp()))


def fresh(url: str, batch_size: int) -> tuple[Database, str]:
    schema = "bench_" + uuid.uuid4().hex[:8]
    Database(Settings(database_url=url)).run(lambda s: s.run(f'CREATE SCHEMA "{schema}"'))
    db = Database(Settings(database_url=url, db_schema=schema, sweep_batch_size=batch_size))
    db.run(migrate)
    return db, schema


def drop(url: str, schema: str) -> None:
    Database(Settings(database_url=url)).run(lambda s: s.run(f'DROP SCHEMA "{schema}" CASCADE'))


def load(db: Database, n: int, vtids: int, prefix: str) -> None:
    def work(s: Session) -> None:
        with s.transaction():
            s.run(INSERT, prefix=prefix, n=n, vtids=vtids)

    db.run(work)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--baseline-events", type=int, default=5_000)
    parser.add_argument("--vtids", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    url = server_url()

    db, schema = fresh(url, args.batch_size)
    try:
        load(db, args.events, args.vtids, "s")
        started = time.perf_counter()
        result = sweep(db, budget_s=3600)
        swept = time.perf_counter() - started
        assert result.counters.processed == args.events and not result.more
        sweep_rate = args.events / swept
    finally:
        drop(url, schema)

    db, schema = fresh(url, args.batch_size)
    try:
        load(db, args.baseline_events, args.vtids, "p")
        raws = db.run(lambda s: s.rows(READ_RAW, prefix="p"))
        messages = [Message(data=json.dumps(r, default=str).encode()) for r in raws]
        started = time.perf_counter()
        for message in messages:
            handle_message(db, message)
        looped = time.perf_counter() - started
        loop_rate = len(messages) / looped
    finally:
        drop(url, schema)

    print(f"events: {args.events} over {args.vtids} VTIDs, batch size {args.batch_size}")
    print(f"set-based sweep        {sweep_rate:10,.0f} events/s  ({swept:.1f} s)")
    print(f"per-event loop         {loop_rate:10,.0f} events/s  ({args.baseline_events} events)")
    print(f"ratio sweep/loop       {sweep_rate / loop_rate:10.1f}x")
    print(f"ratio sweep/362 ev/s   {sweep_rate / 362:10.1f}x  (the SPEC's old per-VTID writer)")


if __name__ == "__main__":
    main()
