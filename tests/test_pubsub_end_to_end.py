"""ingest → publish (real google-cloud-pubsub client) → emulator → relay → oasis_event → row."""

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ledger.config import Settings
from ledger.db import Database
from ledger.local.serve import SMOKE_EVENT
from tests.conftest import ROOT, env_for, free_port_pair, ledger_row, run_cli, wait_for_port


@pytest.fixture
def served_with_pubsub(settings: Settings, db: Database, pubsub_emulator: str) -> Iterator[str]:
    port = free_port_pair()
    topic = f"projects/local/topics/oasis-{uuid.uuid4().hex[:8]}"
    env = env_for(settings, PUBSUB_EMULATOR_HOST=pubsub_emulator, PUBSUB_TOPIC=topic)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger", "serve", "--port", str(port), "--sweep-every", "0"],
        env=env,
        cwd=ROOT,
    )
    wait_for_port(port, proc, timeout=60)
    wait_for_port(port + 1, proc, timeout=60)
    yield f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_ingested_event_reaches_the_ledger_through_pubsub(
    served_with_pubsub: str, db: Database
) -> None:
    base = served_with_pubsub
    body = {
        "vtid": "VTID-0521",
        "type": "deployment_succeeded",
        "source": "ci-cd",
        "status": "success",
        "message": "Deployment completed successfully",
        "payload": {"environment": "staging"},
    }
    stored = requests.post(f"{base}/api/v1/events/ingest", json=body, timeout=30).json()
    assert stored == {"ok": True, "event_id": stored["event_id"], "published": True}
    deadline = time.monotonic() + 30
    row = None
    while row is None and time.monotonic() < deadline:
        time.sleep(0.2)
        row = db.run(lambda s: ledger_row(s, "VTID-0521"))
    assert row is not None, "the event never reached the ledger through Pub/Sub"
    assert (row["status"], row["environment"], row["last_event_id"]) == (
        "complete",
        "staging",
        stored["event_id"],
    )
    realtime = db.run(lambda s: s.scalar("SELECT sum(created) FROM projector_progress"))
    assert realtime == 1

    synced = requests.post(f"{base}/internal/oasis/ledger/sync", timeout=30).json()["result"]
    assert (synced["processed"], synced["stale"], synced["created"], synced["updated"]) == (
        1,
        1,
        0,
        0,
    )
    assert db.run(lambda s: ledger_row(s, "VTID-0521")) == row


def test_failed_publish_still_stores_the_event_for_the_sweep(
    settings: Settings, db: Database, pubsub_emulator: str, serve_function: Any
) -> None:
    missing_topic = f"projects/local/topics/never-created-{uuid.uuid4().hex[:8]}"
    env = env_for(settings, PUBSUB_EMULATOR_HOST=pubsub_emulator, PUBSUB_TOPIC=missing_topic)
    fn = serve_function("ledger_http", env)
    body = {**SMOKE_EVENT, "vtid": "VTID-0042"}
    stored = requests.post(fn.url("/api/v1/events/ingest"), json=body, timeout=60)
    assert stored.status_code == 200 and stored.json()["published"] is False
    assert "publish failed" in fn.output()
    synced = requests.post(fn.url("/internal/oasis/ledger/sync"), timeout=30).json()
    assert synced["result"]["created"] == 1


def test_the_published_copy_of_an_ingested_event_is_the_stored_event(
    served_with_pubsub: str, db: Database, settings: Settings
) -> None:
    """Numbers keep the digits jsonb keeps: the push and the sweep apply one event, and verify
    is clean (a copy parsed and printed again by Python turned 1.50 into 1.5)."""
    base = served_with_pubsub
    body = (
        '{"id": "ing-1", "vtid": "VTID-0001", "type": "task_started", "source": "ci", '
        '"status": "info", "message": "m", "created_at": "2025-11-29T10:00:00Z", '
        '"payload": {"price": 1.50, "hundred": 1e2, "zero": -0.0, '
        '"big": 123456789012345678901234567890, "fraction": 12345678901234567890.12345}}'
    )
    stored = requests.post(
        f"{base}/api/v1/events/ingest",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    ).json()
    assert stored == {"ok": True, "event_id": "ing-1", "published": True}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and db.run(lambda s: ledger_row(s, "VTID-0001")) is None:
        time.sleep(0.2)
    pushed = db.run(lambda s: s.scalar("SELECT metadata::text FROM vtid_ledger"))
    assert '"price": 1.50' in pushed and '"big": 123456789012345678901234567890' in pushed
    assert '"fraction": 12345678901234567890.12345' in pushed
    synced = requests.post(f"{base}/internal/oasis/ledger/sync", timeout=30).json()["result"]
    assert (synced["stale"], synced["updated"]) == (1, 0)  # the same event, not a newer one
    assert db.run(lambda s: s.scalar("SELECT metadata::text FROM vtid_ledger")) == pushed
    verified = run_cli(settings, "verify")
    assert verified.returncode == 0, verified.stdout


def test_dead_letters_are_replayed_with_their_attributes_and_acknowledged(
    settings: Settings, pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One `gcloud pubsub topics publish` per message outlasted the acknowledgement deadline
    and dropped the attributes: the command republishes in small batches, then acknowledges."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    name = uuid.uuid4().hex[:8]
    topic, dead = f"projects/local/topics/t-{name}", f"projects/local/topics/d-{name}"
    watched, dead_sub = (
        f"projects/local/subscriptions/t-{name}",
        f"projects/local/subscriptions/d-{name}",
    )
    publisher = PublisherClient()
    with SubscriberClient() as subscriber:
        for t, s in ((topic, watched), (dead, dead_sub)):
            publisher.create_topic(name=t)
            subscriber.create_subscription(
                request={"name": s, "topic": t, "ack_deadline_seconds": 60}
            )
        for i in range(45):
            publisher.publish(dead, f'{{"n": {i}}}'.encode(), type="task_started", n=str(i))
        publisher.publish(dead, b"last", type="x").result(timeout=30)
        done = run_cli(
            settings, "dead-letters", "replay", "--subscription", dead_sub, "--topic", topic,
            PUBSUB_EMULATOR_HOST=pubsub_emulator,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == {"republished": 46, "failed": 0}
        seen: dict[bytes, dict[str, str]] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 46 and time.monotonic() < deadline:
            pulled = subscriber.pull(request={"subscription": watched, "max_messages": 50})
            for m in pulled.received_messages:
                seen[m.message.data] = dict(m.message.attributes)
        assert seen[b'{"n": 7}'] == {"type": "task_started", "n": "7"} and len(seen) == 46
        left = subscriber.pull(request={"subscription": dead_sub, "max_messages": 10}, timeout=5)
        assert not left.received_messages  # acknowledged: the alert clears
