"""Group commit on the real-time path against the one-UPSERT handler, each ratio in one run.

    .venv/bin/python bench/group_commit.py [--events 4000] [--vtids 1000] [--only NAME]

Serves `main.oasis_event` and the peer (bench/one_upsert_handler.py: one prepared conditional
UPSERT per event, a connection per thread, or a pool of PEER_CONNECTIONS shared by the threads)
with functions-framework, and pushes Eventarc CloudEvents at both from light clients
(http.client with keep-alive, one thread each), on the same payloads and database. Scenarios:

  loopback-8       8 clients, plain loopback, the project's defaults (DB_POOL_SIZE 4, THREADS
                   as functions-framework sets them) against the peer's connection per thread;
  proxy-64         64 clients, THREADS=64, the database behind a TCP proxy adding 1 ms each way
                   (a database across a zone): DB_POOL_SIZE=2 against the peer limited to 2;
  proxy-64-one     the same, every event to one VTID;
  single-client    1 client on loopback: p50 latency.

For each: events/s, p50 and p99 per request, commits per event (write transactions: transaction
ids taken) and the connections each function opened (pg_stat_database.sessions), the ratio.
Uses DATABASE_URL, else the local server at 127.0.0.1:5432/test, else an embedded Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from realtime_throughput import cloud_event, payloads, serve  # noqa: E402
from sweep_throughput import Schema, server_url  # noqa: E402

from ledger.db import parse_url  # noqa: E402


def _proxy(listen: int, target: tuple[str, int], delay: float, ready: Any) -> None:
    """A loopback TCP proxy that holds each chunk `delay` seconds in each direction."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_proxy(url: str, delay: float) -> tuple[str, multiprocessing.Process]:
    p = parse_url(url)
    if p.unix_sock or p.host is None:
        raise SystemExit("the proxy needs a TCP DATABASE_URL (host:port)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(
        target=_proxy, args=(port, (p.host, p.port), delay, ready), daemon=True
    )
    proc.start()
    ready.wait(10)
    user = p.user + (f":{p.password}" if p.password else "")
    return f"postgresql://{user}@127.0.0.1:{port}/{p.database}", proc


def drive(port: int, posts: list[tuple[dict[str, str], bytes]], clients: int) -> Run:
    latencies: list[float] = []
    lock = threading.Lock()
    failures = 0

    def client(part: list[tuple[dict[str, str], bytes]]) -> None:
        nonlocal failures
        mine = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for headers, body in part:
            started = time.perf_counter()
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status >= 300:
                with lock:
                    failures += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(posts[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return Run(len(posts) / elapsed, latencies, failures)


@dataclass
class Run:
    rate: float
    latencies: list[float]
    failures: int
    commits: float = 0.0
    sessions: int = 0

    def q(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[int(q * 100) - 1] * 1000


def database_counters(schema: Schema) -> tuple[int, int]:
    """Write transactions so far (each takes a transaction id, and each commit of one flushes
    WAL: what group commit saves) and sessions opened. pg_stat_database's xact_commit lags by
    up to a second and counts read-only commits too."""
    row = schema.db.run(
        lambda s: s.one(
            "SELECT pg_current_xact_id()::text::bigint AS xid, sessions FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    )
    assert row is not None
    return int(row["xid"]), int(row["sessions"])


def measure(
    schema: Schema, name: str, env: dict[str, str], posts: list[Any], *, clients: int, port: int
) -> Run:
    target, source = (
        ("oasis_event", ROOT / "main.py")
        if name == "oasis_event"
        else ("one_upsert", ROOT / "bench" / "one_upsert_handler.py")
    )
    schema.db.run(lambda s: s.script("TRUNCATE vtid_ledger, projector_progress"))
    proc = serve(target, source, env, port)
    try:
        drive(port, posts[:100], min(clients, 8))  # warm up: connections, prepared statements
        schema.db.run(lambda s: s.script("TRUNCATE vtid_ledger, projector_progress"))
        time.sleep(0.5)  # the statistics collector's last flush
        commits, sessions = database_counters(schema)
        run = drive(port, posts, clients)
        time.sleep(1.1)  # statistics are flushed about once a second
        commits_after, sessions_after = database_counters(schema)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    run.commits = (commits_after - commits - 1) / len(posts)  # less this probe's own
    run.sessions = sessions_after - sessions
    return run


SCENARIOS = {
    # name: (clients, threads, project pool, peer connections, proxy delay, one vtid)
    "loopback-8": (8, None, None, None, 0.0, False),
    "proxy-64": (64, 64, 2, 2, 0.001, False),
    "proxy-64-one": (64, 64, 2, 2, 0.001, True),
    "single-client": (1, None, None, None, 0.0, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--vtids", type=int, default=1000)
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args()
    url = server_url()
    schema = Schema(url, 100)
    results: dict[str, dict[str, Run]] = {}
    try:
        for scenario in args.only or SCENARIOS:
            clients, threads, pool, peer, delay, one = SCENARIOS[scenario]
            events = payloads(200 if scenario == "single-client" else args.events, args.vtids)
            if one:
                events = [{**e, "vtid": "VTID-00001"} for e in events]
            posts = [cloud_event(e) for e in events]
            proxy = None
            db_url = url
            if delay:
                db_url, proxy = start_proxy(url, delay)
            base = {
                **os.environ,
                "DATABASE_URL": db_url,
                "LEDGER_DB_SCHEMA": schema.name,
                "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
            }
            if threads:
                base["THREADS"] = str(threads)
            project_env = {**base, **({"DB_POOL_SIZE": str(pool)} if pool else {})}
            peer_env = {**base, **({"PEER_CONNECTIONS": str(peer)} if peer else {})}
            try:
                results[scenario] = {
                    "oasis_event": measure(
                        schema, "oasis_event", project_env, posts, clients=clients, port=18911
                    ),
                    "one UPSERT handler": measure(
                        schema, "peer", peer_env, posts, clients=clients, port=18912
                    ),
                }
            finally:
                if proxy is not None:
                    proxy.terminate()
    finally:
        schema.drop()
    for scenario, runs in results.items():
        clients = SCENARIOS[scenario][0]
        print(
            f"\n{scenario}: {len(runs['oasis_event'].latencies):,} CloudEvents, {clients} clients"
        )
        for name, run in runs.items():
            print(
                f"  {name:20} {run.rate:8,.0f} events/s  p50 {run.q(0.5):7.1f} ms  "
                f"p99 {run.q(0.99):7.1f} ms  {run.commits:5.2f} commits/event  "
                f"{run.sessions:3d} connections  {run.failures} failed"
            )
        mine, peer = runs["oasis_event"], runs["one UPSERT handler"]
        rate, p50 = mine.rate / peer.rate, mine.q(0.5) / peer.q(0.5)
        print(f"  ratio events/s {rate:5.2f}x   p50 {p50:5.2f}x")


if __name__ == "__main__":
    main()
