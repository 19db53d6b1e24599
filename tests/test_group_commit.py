"""Group commit on the real-time path: deliveries that arrive while a statement is in flight
are applied together, each answered with its own outcome, within the pool's connections."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ledger.config import Settings
from ledger.counters import Outcome
from ledger.db import Database, Transient
from ledger.group_commit import Delivery, apply_batch, for_database
from ledger.migrate import migrate
from ledger.pubsub_message import Message
from ledger.realtime import handle_message
from tests.conftest import (
    FunctionServer,
    as_json,
    env_for,
    event,
    expected_rows,
    ledger_rows,
    run_together,
)


@pytest.fixture
def pool_of_two(settings: Settings) -> Iterator[Database]:
    db = Database(dataclasses.replace(settings, db_pool_size=2))
    db.run(migrate)
    yield db
    db.close()


def message(raw: dict[str, Any]) -> Message:
    return Message(data=as_json(raw), message_id=uuid.uuid4().hex, publish_time=None)


def test_a_burst_to_one_vtid_is_batched_within_the_pool_and_equals_the_fold(
    pool_of_two: Database,
) -> None:
    """64 concurrent deliveries to one VTID: a few statements, at most two connections, and
    the row the reference fold gives; each delivery gets its own outcome."""
    raws = [
        event(
            id=f"e{i:02d}",
            created_at=f"2025-11-29T10:{i // 60:02d}:{i % 60:02d}Z",
            metadata={f"k{i}": i},
        )
        for i in range(64)
    ]
    outcomes: dict[str, Outcome] = {}

    def deliver(raw: dict[str, Any]) -> None:
        outcomes[raw["id"]] = handle_message(pool_of_two, message(raw))

    assert not run_together(*[lambda r=r: deliver(r) for r in raws])
    committer = for_database(pool_of_two)
    assert committer.batches < 64 and pool_of_two.opened <= 2
    assert ledger_rows(pool_of_two) == expected_rows(raws)
    assert list(outcomes.values()).count(Outcome.CREATED) == 1
    assert set(outcomes.values()) <= {Outcome.CREATED, Outcome.UPDATED, Outcome.STALE}
    counted = pool_of_two.run(
        lambda s: s.scalar("SELECT sum(events_processed) FROM projector_progress")
    )
    assert counted == 64


def test_one_poison_event_is_refused_and_its_batch_goes_on(pool_of_two: Database) -> None:
    """Postgres refuses an environment too large for its index: that event alone is refused."""
    good = [event(id=f"g{i}", vtid=f"VTID-{i:04d}") for i in range(5)]
    # Random text does not compress, so the index refuses it.
    poison = event(id="poison", vtid="VTID-0100", metadata={"environment": os.urandom(2000).hex()})
    batch = [
        Delivery(message(raw), as_json(raw).decode()) for raw in [*good[:2], poison, *good[2:]]
    ]
    rows = pool_of_two.run(lambda s: apply_batch(s, batch))
    assert [r["outcome"] for r in rows] == ["created"] * 2 + ["refused"] + ["created"] * 3
    assert "index row size" in rows[2]["reason"]
    assert ledger_rows(pool_of_two) == expected_rows(good)


def test_the_same_event_twice_in_a_batch_is_applied_once(pool_of_two: Database) -> None:
    raw = event(id="twice")
    other = {**raw, "message": "same id, time and priority, other content"}
    batch = [Delivery(message(r), as_json(r).decode()) for r in (raw, raw, other, other)]
    rows = pool_of_two.run(lambda s: apply_batch(s, batch))
    outcomes = [r["outcome"] for r in rows]
    assert outcomes[1] == "stale" and outcomes[3] == "stale"
    assert sorted(outcomes[::2]) in (["created", "updated"], ["created", "stale"])
    assert ledger_rows(pool_of_two) == expected_rows([raw, other])


def test_a_burst_while_the_database_drops_every_connection_loses_nothing(
    pool_of_two: Database, db: Database
) -> None:
    """Deliveries whose batch failed raise (Pub/Sub redelivers them); once redelivered, the
    ledger is the fold of all of them."""
    raws = [event(id=f"d{i:03d}", vtid=f"VTID-{i % 7:04d}") for i in range(120)]
    failed: list[dict[str, Any]] = []
    lock = threading.Lock()

    def deliver(chunk: list[dict[str, Any]]) -> None:
        for raw in chunk:
            try:
                handle_message(pool_of_two, message(raw))
            except Transient:
                with lock:
                    failed.append(raw)

    def drop_connections() -> None:
        for _ in range(3):
            db.run(
                lambda s: s.run(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'vtid-ledger-writer' AND pid <> pg_backend_pid() "
                    "AND datname = current_database()"
                )
            )

    chunks = [raws[i::8] for i in range(8)]
    assert not run_together(drop_connections, *[lambda c=c: deliver(c) for c in chunks])
    for raw in failed:  # Pub/Sub redelivers what was not acknowledged
        handle_message(pool_of_two, message(raw))
    assert ledger_rows(pool_of_two) == expected_rows(raws)


def test_sixty_four_pushes_over_http_to_one_vtid_equal_the_fold(
    settings: Settings, db: Database, serve_function: Any
) -> None:
    from tests.test_main_oasis_event import push_body

    fn: FunctionServer = serve_function(
        "oasis_event", env_for(settings, THREADS="64", DB_POOL_SIZE="2")
    )
    raws = [
        event(id=f"h{i:02d}", created_at=f"2025-11-29T11:{i // 60:02d}:{i % 60:02d}Z")
        for i in range(64)
    ]
    codes: list[int] = []

    def push_one(raw: dict[str, Any]) -> None:
        body = push_body(json.dumps(raw).encode(), "2025-11-29T12:00:00.000Z")
        codes.append(requests.post(fn.url("/"), json=body, timeout=60).status_code)

    assert not run_together(*[lambda r=r: push_one(r) for r in raws])
    assert codes == [200] * 64
    assert ledger_rows(db) == expected_rows(raws)
