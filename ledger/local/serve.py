"""`python -m ledger serve` (`./dev serve`): both functions under functions-framework on local
ports, the embedded Postgres unless DATABASE_URL is set, and with --pubsub (or
PUBSUB_EMULATOR_HOST) a Pub/Sub emulator whose messages are pushed to the event function."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from ledger.config import Settings

READY_TIMEOUT_S = 60
SMOKE_EVENT = {
    "vtid": "VTID-TEST-0521",
    "type": "task_created",
    "source": "test",
    "status": "info",
    "message": "Test task created",
}
"""The seed document's smoke test event, verbatim."""


def function_command(target: str, port: int) -> list[str]:
    """functions-framework serving one of main.py's functions on a local port."""
    from ledger.migrate import MIGRATIONS_DIR

    source = str(MIGRATIONS_DIR.parent / "main.py")
    return [sys.executable, "-m", "functions_framework", "--target", target, "--source", source,
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        # As the servers themselves bind: a TIME-WAIT left by the last run is no conflict.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local URL
            return int(response.status) == 200
    except OSError:
        return False


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def banner(
    where: str,
    http_port: int,
    event_port: int,
    token: str | None,
    topic: str | None,
    *,
    sweep_every: float = 0.0,
) -> str:
    """What to try first. Every example stores what it shows, so verify stays clean."""
    base = f"http://127.0.0.1:{http_port}"
    sweeping = (
        f"The sweep runs every {sweep_every:g} s, as Cloud Scheduler runs it in production "
        "(--sweep-every 0 turns that off).\n"
        if sweep_every > 0
        else ""
    )
    auth = ' -H "Authorization: Bearer $LEDGER_API_TOKEN"' if token else ""
    event = {"id": "evt-local-1", "created_at": "2025-11-29T10:00:00Z", **SMOKE_EVENT}
    data = base64.b64encode(json.dumps(event).encode()).decode()
    push = json.dumps({"subscription": "local", "message": {"messageId": "1", "data": data}})
    pubsub = (
        f"\n  Published events reach the event function through the emulator ({topic})."
        if topic
        else "\n  (./dev serve --pubsub adds a Pub/Sub emulator: ingest then publishes too.)"
    )
    return f"""
VTID ledger writer is running ({where}).
  HTTP function   {base}  (ledger_http)
  Event function  http://127.0.0.1:{event_port}/  (oasis_event){pubsub}

Ingest an event, sweep, and read the task:
  curl -s -X POST {base}/api/v1/events/ingest{auth} -H 'content-type: application/json' \\
       -d '{json.dumps(event, separators=(",", ":"))}'
  curl -s -X POST {base}/internal/oasis/ledger/sync{auth}
  curl -s '{base}/api/v1/tasks?vtid=VTID-TEST-0521'{auth}
  curl -s {base}/internal/oasis/ledger/status{auth}

Deliver the same event as a Pub/Sub push would (a redelivery: it changes nothing):
  curl -s -X POST http://127.0.0.1:{event_port}/ -H 'content-type: application/json' -d '{push}'

Check the ledger against the log (from any directory):  {sys.executable} -m ledger verify
{sweeping}Press Ctrl-C to stop."""


def serve(settings: Settings, port: int, pubsub: bool, sweep_every: float = 5.0) -> int:
    from ledger.db import Database, database_url
    from ledger.migrate import migrate

    http_port, event_port = port, port + 1
    for taken in (p for p in (http_port, event_port) if port_in_use(p)):
        print(f"port {taken} is in use; choose others with --port", file=sys.stderr)
        return 1
    url = database_url(settings)  # starts the embedded server when nothing else is configured
    Database(settings).run(migrate)
    env = dict(os.environ)
    if url is not None:
        env["DATABASE_URL"] = url
    emulator = topic = None
    if pubsub or os.environ.get("PUBSUB_EMULATOR_HOST"):
        from ledger.local import pubsub_emulator

        emulator = pubsub_emulator.start()
        topic = settings.pubsub_topic or pubsub_emulator.DEFAULT_TOPIC
        env.update(PUBSUB_EMULATOR_HOST=emulator.host, PUBSUB_TOPIC=topic)
        env.setdefault("GOOGLE_CLOUD_PROJECT", "local")
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host  # for the relay's clients
        from ledger.local import relay as relaying

        # Before the functions answer: an ingest as soon as they do must find the topic.
        relaying.ensure(topic, relaying.subscription_path(topic))
    children = [
        subprocess.Popen(function_command(target, p), env=env)
        for target, p in (("ledger_http", http_port), ("oasis_event", event_port))
    ]
    relay = None
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (_answers(f"http://127.0.0.1:{http_port}/alive") and _listens(event_port)):
            if any(child.poll() is not None for child in children) or time.monotonic() > deadline:
                print("a function did not start; see its output above", file=sys.stderr)
                return 1
            time.sleep(0.1)
        if topic is not None:
            from ledger.local import relay as relaying

            relay = relaying.start(topic, f"http://127.0.0.1:{event_port}/")
        where = (
            "DATABASE_URL" if settings.database_url else f"embedded Postgres in {settings.data_dir}"
        )
        shown = banner(
            where, http_port, event_port, settings.api_token, topic, sweep_every=sweep_every
        )
        print(shown, flush=True)
        sweeper = _Sweeper(f"http://127.0.0.1:{http_port}", settings.api_token, sweep_every)
        return _supervise(children, sweeper)
    finally:
        if relay is not None:
            relay.stop()
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=10)
        if emulator is not None:
            emulator.stop()


class _Sweeper:
    """Calls POST /internal/oasis/ledger/sync every `every` seconds, as the scheduler does."""

    def __init__(self, base: str, token: str | None, every: float) -> None:
        self.url, self.token, self.every = f"{base}/internal/oasis/ledger/sync", token, every
        self.due = time.monotonic() + every

    def tick(self) -> None:
        if self.every <= 0 or time.monotonic() < self.due:
            return
        self.due = time.monotonic() + self.every
        request = urllib.request.Request(self.url, method="POST")  # noqa: S310 - local URL
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60):  # noqa: S310 - local URL
                pass
        except OSError:
            pass  # the function logs why; the next tick tries again


def _supervise(children: list[subprocess.Popen[Any]], sweeper: _Sweeper | None = None) -> int:
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop and all(child.poll() is None for child in children):
        if sweeper is not None:
            sweeper.tick()
        time.sleep(0.2)
    if not stop:
        print("a function process exited; see its output above", file=sys.stderr)
        return 1
    return 0
