"""Ingest throughput: NDJSON (many events per request, one statement per 1,000) against one
event per request, over real HTTP to `ledger_http`, in one run on the same database; and the
CLI's `ingest -` reading JSON lines from stdin.

    .venv/bin/python bench/ingest_throughput.py [--events 20000] [--singles 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from realtime_throughput import serve  # noqa: E402
from sweep_throughput import Schema, server_url  # noqa: E402


def events(n: int, prefix: str) -> list[str]:
    return [
        json.dumps({"id": f"{prefix}-{i}", "vtid": f"VTID-{i % 5000:05d}", "type": "task_started",
                    "source": "ci", "status": "info", "message": f"step {i}",
                    "payload": {"environment": "prod", "run": i}})
        for i in range(n)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--singles", type=int, default=1_000)
    args = parser.parse_args()
    url = server_url()
    schema = Schema(url, 1000)
    env = {**os.environ, "DATABASE_URL": url, "LEDGER_DB_SCHEMA": schema.name,
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    proc = serve("ledger_http", ROOT / "main.py", env, 18911)
    try:
        base = "http://127.0.0.1:18911/api/v1/events/ingest"
        bulk = events(args.events, "bulk")
        started = time.perf_counter()
        for i in range(0, len(bulk), 5000):  # requests of 5,000 lines (about 1 MiB)
            body = "\n".join(bulk[i : i + 5000]).encode()
            answer = requests.post(base, data=body, timeout=300,
                                   headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
            assert answer.status_code == 200 and '"ok":false' not in answer.text
        ndjson = len(bulk) / (time.perf_counter() - started)
        singles = events(args.singles, "one")
        with requests.Session() as s:
            started = time.perf_counter()
            for line in singles:
                answer = s.post(base, data=line, timeout=30,
                                headers={"Content-Type": "application/json"})  # fmt: skip
                assert answer.status_code == 200
            single = len(singles) / (time.perf_counter() - started)
        cli_lines = "\n".join(events(args.events, "cli")) + "\n"
        started = time.perf_counter()
        command = [sys.executable, "-m", "ledger", "ingest", "-"]
        done = subprocess.run(
            command, input=cli_lines, env=env, cwd=ROOT, capture_output=True, text=True, check=True
        )
        cli = args.events / (time.perf_counter() - started)
        assert len(done.stdout.splitlines()) == args.events
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        schema.drop()
    print(f"NDJSON over HTTP      {ndjson:9,.0f} events/s  ({args.events:,} events)")
    print(f"one event per request {single:9,.0f} events/s  ({args.singles:,} requests)")
    print(f"CLI ingest - (stdin)  {cli:9,.0f} events/s  (process start included)")
    print(f"NDJSON / single       {ndjson / single:9.1f}x")


if __name__ == "__main__":
    main()
