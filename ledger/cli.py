"""`python -m ledger COMMAND`: the operator's commands."""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledger.config import ConfigError, Settings
from ledger.db import Database, Transient, database_url

ROOT = Path(__file__).resolve().parent.parent


def _database(settings: Settings) -> Database:
    return Database(settings)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.migrate import migrate

    db = _database(settings)
    applied = db.run(migrate)
    print(json.dumps({"ok": True, "applied": applied}))
    return 0


def function_command(target: str, port: int) -> list[str]:
    """functions-framework serving one of main.py's functions on a local port."""
    source = str(ROOT / "main.py")
    return [sys.executable, "-m", "functions_framework", "--target", target, "--source", source,
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip


def _spawn_function(target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(function_command(target, port), cwd=ROOT, env=env)


_SAMPLE_EVENT = (
    '{"id":"evt-1","vtid":"VTID-0521","topic":"task_started","created_at":"2025-11-29T10:00:00Z"}'
)
SMOKE_EVENT = {
    "vtid": "VTID-TEST-0521",
    "type": "task_created",
    "source": "test",
    "status": "info",
    "message": "Test task created",
}
"""The seed document's smoke test event, verbatim."""


def _banner(settings: Settings, http_port: int, event_port: int) -> str:
    base = f"http://127.0.0.1:{http_port}"
    events = f"http://127.0.0.1:{event_port}/"
    where = "DATABASE_URL" if settings.database_url else f"embedded Postgres in {settings.data_dir}"
    data = base64.b64encode(_SAMPLE_EVENT.encode()).decode()
    push = json.dumps({"subscription": "local", "message": {"messageId": "1", "data": data}})
    return f"""
VTID ledger writer is running ({where}).
  HTTP function   {base}  (ledger_http)
  Event function  {events}  (oasis_event)

Ingest an event, sweep, and read the task:
  curl -s -X POST {base}/api/v1/events/ingest -H 'content-type: application/json' \\
       -d '{json.dumps(SMOKE_EVENT, separators=(",", ":"))}'
  curl -s -X POST {base}/internal/oasis/ledger/sync
  curl -s '{base}/api/v1/tasks?vtid=VTID-TEST-0521'

Post an event to the event function as a Pub/Sub push would:
  curl -s -X POST {events} -H 'content-type: application/json' -d '{push}'

Press Ctrl-C to stop."""


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.migrate import migrate

    url = database_url(settings)  # starts the embedded server when nothing else is configured
    _database(settings).run(migrate)
    env = dict(os.environ)
    if url is not None:
        env["DATABASE_URL"] = url
    http_port, event_port = args.port, args.port + 1
    children = [
        _spawn_function("ledger_http", http_port, env),
        _spawn_function("oasis_event", event_port, env),
    ]
    relayer = None
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        from ledger import relay

        relayer = relay.start(settings, f"http://127.0.0.1:{event_port}/")
    print(_banner(settings, http_port, event_port), flush=True)
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        if relayer is not None:
            relayer.stop()
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=10)
    if not stop:
        print("a function process exited; see its output above", file=sys.stderr)
        return 1
    return 0


def _print(body: Any) -> None:
    print(json.dumps(body, indent=2, default=str))


def _sweep_with_progress(db: Database, label: str, show: bool) -> int:
    from ledger import oasis_events, projection_offsets
    from ledger.sweep import SweepRunning, sweep_until_caught_up
    from ledger.terminal import ProgressBar

    def backlog(session: Any) -> int:
        return int(oasis_events.backlog(session, projection_offsets.position(session))["backlog"])

    total = db.run(backlog)
    bar = ProgressBar(total, label) if show and total >= 2 * db.settings.sweep_batch_size else None
    try:
        result = sweep_until_caught_up(
            db, on_batch=(lambda r: bar.update(r.counters.processed)) if bar else None
        )
    except SweepRunning as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    _print({"ok": True, "result": result.as_dict()})
    return 0


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    return _sweep_with_progress(_database(settings), "sync", not args.quiet)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.writer_status import status

    _print(_database(settings).run(status))
    return 0


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ledger.verify import verify

    def work(session: Any) -> int:
        count = 0
        for drift in verify(session):
            print(json.dumps(asdict(drift), default=str), flush=True)
            count += 1
        return count

    drifted = _database(settings).run(work)
    print(f"{drifted} row(s) drifted from the log", file=sys.stderr)
    return 1 if drifted else 0


def cmd_rejections(settings: Settings, args: argparse.Namespace) -> int:
    from ledger import ledger_rejections

    for row in _database(settings).run(lambda s: ledger_rejections.recent(s, args.limit)):
        print(json.dumps(row, default=str))
    return 0


def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.sweep import SweepRunning
    from ledger.verify import reset_for_rebuild

    db = _database(settings)
    try:
        reset_for_rebuild(db)
    except SweepRunning as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return _sweep_with_progress(db, "rebuild", not args.quiet)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from ledger import ingest

    db = _database(settings)
    if args.event != "-":
        done = ingest.ingest_one(
            db, args.event.encode("utf-8", "surrogateescape"), settings.topic_path
        )
        if done.outcome == "rejected":
            print(f"rejected: {done.reason}", file=sys.stderr)
            return 1
        _print(done.as_dict())
        return 0
    rejected = 0
    for done in ingest.ingest_lines(db, sys.stdin.buffer, settings.topic_path):
        print(json.dumps(done.as_dict()), flush=True)
        rejected += done.outcome == "rejected"
    return 1 if rejected else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ledger", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    serve = sub.add_parser(
        "serve", help="run both functions locally (embedded Postgres by default)"
    )
    serve.add_argument("--port", type=int, default=8080, help="HTTP function port; events on +1")
    serve.set_defaults(func=cmd_serve)
    for name, func, text in [
        ("sync", cmd_sync, "run the catch-up sweep until caught up"),
        ("rebuild", cmd_rebuild, "empty the ledger and replay the whole log"),
    ]:
        command = sub.add_parser(name, help=text)
        command.add_argument("--quiet", action="store_true", help="no progress bar")
        command.set_defaults(func=func)
    sub.add_parser("status", help="print the writer's status").set_defaults(func=cmd_status)
    sub.add_parser(
        "verify", help="fold the whole log and report rows that differ (exit 1 on drift)"
    ).set_defaults(func=cmd_verify)
    rejected = sub.add_parser("rejections", help="list the newest rejected events (JSON lines)")
    rejected.add_argument("--limit", type=int, default=20)
    rejected.set_defaults(func=cmd_rejections)
    ingest = sub.add_parser("ingest", help="store an event (and publish it if PUBSUB_TOPIC is set)")
    ingest.add_argument("event", help="the event as JSON, or - to read it from stdin")
    ingest.set_defaults(func=cmd_ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.func(settings, args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except Transient as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return 3
