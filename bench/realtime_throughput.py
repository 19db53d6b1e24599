"""Real-time path throughput and latency, against references measured in the same run.

    .venv/bin/python bench/realtime_throughput.py [--events 4000] [--clients 8]

Serves `main.oasis_event` with functions-framework and posts Eventarc-style CloudEvents to it
from --clients threads, then does the same with a handler that runs one prepared conditional
UPSERT per event into the same vtid_ledger table (bench/one_upsert_handler.py), on the same
payloads and database; and runs that UPSERT straight from pg8000 on --clients threads (no
HTTP). Prints events/s, p50 and p99
per request, and the ratio project/handler (goal >= 0.9).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sweep_throughput import Schema, server_url  # noqa: E402

from ledger.db import parse_url  # noqa: E402

TYPES = ["task_created", "task_started", "build_succeeded", "deployment_failed", "pr_merged"]


def payloads(n: int, vtids: int) -> list[dict[str, Any]]:
    """Events as producers publish them: one per CloudEvent."""
    out = []
    for i in range(n):
        event = {
            "id": f"rt-{i}",
            "vtid": f"VTID-{i % vtids:05d}",
            "topic": TYPES[i % len(TYPES)],
            "service": "ci",
            "status": "info",
            "message": f"Step {i} of the pipeline completed",
            "created_at": f"2025-11-29T10:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
            "metadata": {"environment": "prod", "branch": f"b{i % 13}", "run": i},
        }
        out.append(event)
    return out


def cloud_event(event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    data = base64.b64encode(json.dumps(event).encode()).decode()
    body = {"message": {"data": data, "messageId": uuid.uuid4().hex,
                        "publishTime": "2025-11-29T10:00:00Z"},
            "subscription": "projects/p/subscriptions/oasis-events-push"}  # fmt: skip
    headers = {
        "ce-id": uuid.uuid4().hex,
        "ce-specversion": "1.0",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/oasis-events",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "content-type": "application/json",
    }
    return headers, json.dumps(body).encode()


def serve(target: str, source: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions_framework", "--target", target, "--source",
         str(source), "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=0.2)
            return proc
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"{target} did not start")


def drive(
    url: str, requests_: list[tuple[dict[str, str], bytes]], clients: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()

    def client(part: list[tuple[dict[str, str], bytes]]) -> None:
        mine = []
        with requests.Session() as s:
            for headers, body in part:
                started = time.perf_counter()
                response = s.post(url, data=body, headers=headers, timeout=30)
                mine.append(time.perf_counter() - started)
                assert response.status_code < 300, response.text
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=client, args=(requests_[i::clients],)) for i in range(clients)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(requests_) / (time.perf_counter() - started), latencies


def raw_upserts(url: str, schema: str, events: list[dict[str, Any]], clients: int) -> float:
    import pg8000.native
    from one_upsert_handler import UPSERT, upsert

    def work(part: list[dict[str, Any]]) -> None:
        p = parse_url(url)
        conn = pg8000.native.Connection(p.user, host=p.host, port=p.port, database=p.database,
                                        unix_sock=p.unix_sock, password=p.password)  # fmt: skip
        conn.run(f"SET search_path = {schema}")
        statement = conn.prepare(UPSERT)
        for e in part:
            upsert(statement, e)
        conn.close()

    threads = [threading.Thread(target=work, args=(events[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(events) / (time.perf_counter() - started)


def per_statement(url: str, events: list[dict[str, Any]]) -> None:
    """Where an event's time goes, one connection, one call at a time: the round trip, the
    work inside the statement, and the commit (autocommit against 100 calls a transaction)."""
    import pg8000.native
    from one_upsert_handler import UPSERT, upsert

    schema = Schema(url, 100)
    p = parse_url(url)
    conn = pg8000.native.Connection(p.user, host=p.host, port=p.port, database=p.database,
                                    unix_sock=p.unix_sock, password=p.password)  # fmt: skip
    conn.run(f"SET search_path = {schema.name}")
    payloads_ = [json.dumps(e) for e in events]

    def timed(sql: str, args: list[dict[str, Any]], per_transaction: int = 1) -> float:
        statement = conn.prepare(sql)
        started = time.perf_counter()
        for i, a in enumerate(args):
            if per_transaction > 1 and i % per_transaction == 0:
                conn.run("BEGIN")
            statement.run(**a)
            if per_transaction > 1 and i % per_transaction == per_transaction - 1:
                conn.run("COMMIT")
        return (time.perf_counter() - started) / len(args) * 1e6

    apply = "SELECT * FROM ledger_apply_event(:p, 'm', now(), 1)"
    rows = [
        ("round trip (SELECT 1)", timed("SELECT 1", [{}] * len(events))),
        ("decode only", timed("SELECT (ledger_decode_json(CAST(:p AS jsonb), now())).id",
                              [{"p": x} for x in payloads_])),
        ("counters only (autocommit)", timed(
            "SELECT ledger_count_realtime('updated', now(), now(), 1)", [{}] * len(events))),
    ]  # fmt: skip
    conn.run("TRUNCATE vtid_ledger")
    rows.append(("ledger_apply_event, 100 per transaction",
                 timed(apply, [{"p": x} for x in payloads_], 100)))  # fmt: skip
    conn.run("TRUNCATE vtid_ledger")
    rows.append(("ledger_apply_event, autocommit", timed(apply, [{"p": x} for x in payloads_])))
    conn.run("TRUNCATE vtid_ledger")
    statement = conn.prepare(UPSERT)
    started = time.perf_counter()
    for e in events:
        upsert(statement, e)
    rows.append(("one UPSERT, autocommit", (time.perf_counter() - started) / len(events) * 1e6))
    conn.close()
    schema.drop()
    for name, micros in rows:
        print(f"{name:42} {micros:7.0f} us per event")


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--vtids", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--per-statement", action="store_true", help="where one event's time goes, in SQL"
    )
    args = parser.parse_args()
    url = server_url()
    events = payloads(args.events, args.vtids)
    if args.per_statement:
        per_statement(url, events[:3000])
        return
    posts = [cloud_event(e) for e in events]
    schema = Schema(url, 100)
    try:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "LEDGER_DB_SCHEMA": schema.name,
            "DB_POOL_SIZE": str(args.clients),
            "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
        }
        results = {}
        for name, target, source, port in [
            ("oasis_event", "oasis_event", ROOT / "main.py", 18901),
            ("one UPSERT handler", "one_upsert", ROOT / "bench" / "one_upsert_handler.py", 18902),
        ]:
            schema.db.run(lambda s: s.script("TRUNCATE vtid_ledger"))
            proc = serve(target, source, env, port)
            try:
                drive(f"http://127.0.0.1:{port}/", posts[:200], args.clients)  # warm up
                results[name] = drive(f"http://127.0.0.1:{port}/", posts, args.clients)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        schema.db.run(lambda s: s.script("TRUNCATE vtid_ledger"))
        raw = raw_upserts(url, schema.name, events, args.clients)
    finally:
        schema.drop()
    print(f"{args.events:,} CloudEvents over {args.vtids} VTIDs, {args.clients} clients")
    for name, (rate, latencies) in results.items():
        print(f"{name:22} {rate:8,.0f} events/s  p50 {quantile(latencies, 0.5):6.1f} ms  "
              f"p99 {quantile(latencies, 0.99):6.1f} ms")  # fmt: skip
    print(f"{'raw pg8000 UPSERTs':22} {raw:8,.0f} events/s  (no HTTP)")
    ratio = results["oasis_event"][0] / results["one UPSERT handler"][0]
    print(f"oasis_event / handler  {ratio:8.2f}x   (goal >= 0.9)")


if __name__ == "__main__":
    main()
