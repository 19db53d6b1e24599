"""`oasis_event` as Pub/Sub reaches it: over HTTP, served by functions-framework."""

import base64
import json
import os
import uuid
from typing import Any

import pytest
import requests

from ledger.config import Settings
from ledger.db import Database, Session
from ledger.events import MAX_EVENT_BYTES
from ledger.sweep import sweep
from tests.conftest import FunctionServer, env_for, event, free_port, ledger_row
from tests.test_fold import WORKED_EXAMPLE


def push_body(data: bytes, publish_time: str = "2025-11-29T10:00:00.000Z") -> dict[str, Any]:
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": uuid.uuid4().hex,
            "publishTime": publish_time,
            "attributes": {},
        },
        "subscription": "projects/p/subscriptions/oasis-events-push",
    }


def send_push(fn: FunctionServer, body: Any) -> requests.Response:
    return requests.post(fn.url("/"), json=body, timeout=30)


def eventarc_headers() -> dict[str, str]:
    """A binary-mode CloudEvent as Eventarc sends a Pub/Sub message: attributes as headers."""
    return {
        "ce-id": uuid.uuid4().hex,
        "ce-specversion": "1.0",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/oasis-events",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-time": "2025-11-29T10:00:00Z",
        "content-type": "application/json",
    }


def send_cloud_event(fn: FunctionServer, data: bytes) -> requests.Response:
    return requests.post(fn.url("/"), json=push_body(data), headers=eventarc_headers(), timeout=30)


def rejections(session: Session) -> list[dict[str, Any]]:
    return session.rows("SELECT reason, event_id, raw FROM ledger_rejections ORDER BY id")


def test_worked_example_through_an_eventarc_cloud_event(
    event_function: FunctionServer, session: Session
) -> None:
    response = send_cloud_event(event_function, WORKED_EXAMPLE.encode())
    assert response.status_code == 200, event_function.output()
    row = ledger_row(session, "VTID-0521")
    assert row is not None
    assert row.pop("last_event_at").isoformat() == "2025-11-29T10:00:00+00:00"
    assert row == {
        "vtid": "VTID-0521",
        "status": "complete",
        "task_family": "deployment",
        "task_type": "backend",
        "description": "Deployment completed successfully",
        "service": "ci-cd",
        "environment": "dev",
        "last_event_id": "evt-123",
        "tenant": "system",
        "assigned_to": None,
        "metadata": {
            "autoCreated": True,
            "sourceEvent": "evt-123",
            "sourceType": "deployment_succeeded",
            "environment": "dev",
        },
    }


def test_structured_mode_cloud_event(event_function: FunctionServer, session: Session) -> None:
    envelope = {
        "specversion": "1.0",
        "id": "ce-1",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/p/topics/oasis-events",
        "datacontenttype": "application/json",
        "data": push_body(json.dumps(event(vtid="VTID-0777")).encode()),
    }
    response = requests.post(
        event_function.url("/"),
        data=json.dumps(envelope),
        timeout=30,
        headers={"content-type": "application/cloudevents+json"},
    )
    assert response.status_code == 200
    assert ledger_row(session, "VTID-0777") is not None


def test_raw_push_envelope_and_redelivery(event_function: FunctionServer, session: Session) -> None:
    body = push_body(json.dumps(event(topic="task_created")).encode())
    for _ in range(3):
        assert send_push(event_function, body).status_code == 200
    assert ledger_row(session, "VTID-0001")["status"] == "pending"  # type: ignore[index]
    totals = session.one(
        "SELECT sum(events_processed) AS n, sum(created) AS c FROM projector_progress"
    )
    assert totals == {"n": 3, "c": 1}


def shapes(data: bytes) -> dict[str, tuple[dict[str, str], bytes]]:
    """Every envelope Google documents for a message, with `data` inside: (headers, body)."""
    raw = push_body(data)
    bare = {**raw, "message": {k: v for k, v in raw["message"].items() if k != "attributes"}}
    ordered = {**raw, "message": {**raw["message"], "orderingKey": "VTID-0042"}}
    attempted = {**raw, "deliveryAttempt": 3}
    structured = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/p/topics/oasis-events",
        "time": "2025-11-29T10:00:00Z",
        "datacontenttype": "application/json",
        "data": raw,
    }
    plain = {"content-type": "application/json"}
    return {
        "push": (plain, json.dumps(raw).encode()),
        "push without attributes": (plain, json.dumps(bare).encode()),
        "push with orderingKey": (plain, json.dumps(ordered).encode()),
        "push with deliveryAttempt": (plain, json.dumps(attempted).encode()),
        "binary CloudEvent (Eventarc)": (eventarc_headers(), json.dumps(raw).encode()),
        "structured CloudEvent": (
            {"content-type": "application/cloudevents+json"},
            json.dumps(structured).encode(),
        ),
    }


SHAPES = list(shapes(b"{}"))


@pytest.mark.parametrize("shape", SHAPES)
def test_every_envelope_shape_gives_the_same_row(
    event_function: FunctionServer, db: Database, shape: str
) -> None:
    from tests.conftest import expected_rows, ledger_rows

    raw = event(vtid="VTID-0042", topic="task_started", metadata={"branch": "main"})
    headers, body = shapes(json.dumps(raw).encode())[shape]
    response = requests.post(event_function.url("/"), data=body, headers=headers, timeout=30)
    assert response.status_code == 200, event_function.output()
    assert ledger_rows(db) == expected_rows([raw])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("data", [b"{not json", b'"a string"', b"[1]", b""], ids=repr)
def test_every_envelope_shape_records_bad_data_and_acknowledges(
    event_function: FunctionServer, session: Session, shape: str, data: bytes
) -> None:
    headers, body = shapes(data)[shape]
    response = requests.post(event_function.url("/"), data=body, headers=headers, timeout=30)
    assert response.status_code == 200, event_function.output()
    [rejection] = rejections(session)
    assert rejection["raw"] == data and rejection["reason"]


def test_publish_time_is_used_without_created_at(
    event_function: FunctionServer, session: Session
) -> None:
    body = push_body(json.dumps(event(created_at=...)).encode(), "2025-03-04T05:06:07.5Z")
    assert send_push(event_function, body).status_code == 200
    row = ledger_row(session, "VTID-0001")
    assert row is not None
    assert row["last_event_at"].isoformat() == "2025-03-04T05:06:07.500000+00:00"


MALFORMED = {
    "non-JSON": b"{not json",
    "a JSON array": b"[1, 2, 3]",
    "a JSON string": b'"an event, it says"',
    "a JSON number": b"42",
    "a missing id": json.dumps(event(id=...)).encode(),
    "a bad created_at": json.dumps(event(created_at="29/11/2025")).encode(),
    "metadata not an object": json.dumps(event(metadata=[1, 2])).encode(),
    "a huge message": json.dumps(event(message="x" * (MAX_EVENT_BYTES + 1))).encode(),
    "a NUL character": json.dumps(event(message="a\x00b")).encode(),
    "empty data": b"",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_events_are_acknowledged_and_recorded(
    event_function: FunctionServer, session: Session, data: bytes
) -> None:
    response = send_push(event_function, push_body(data))
    assert response.status_code == 200
    assert session.scalar("SELECT count(*) FROM vtid_ledger") == 0
    [rejection] = rejections(session)
    assert rejection["raw"] == data[: 64 * 1024]  # a bounded prefix of what was sent
    assert rejection["reason"]
    assert "Traceback" not in event_function.output()
    assert session.scalar("SELECT sum(errors) FROM projector_progress") == 1


def test_event_postgres_refuses_is_acknowledged_and_recorded(
    event_function: FunctionServer, session: Session
) -> None:
    poison = event(metadata={"environment": os.urandom(8000).hex()})
    assert send_push(event_function, push_body(json.dumps(poison).encode())).status_code == 200
    [rejection] = rejections(session)
    assert "54000" in rejection["reason"] and rejection["event_id"] == poison["id"]
    assert session.scalar("SELECT count(*) FROM vtid_ledger") == 0


def test_bad_base64_is_recorded(event_function: FunctionServer, session: Session) -> None:
    body = push_body(b"")
    body["message"]["data"] = "***not base64***"
    assert send_push(event_function, body).status_code == 200
    [rejection] = rejections(session)
    assert "base64" in rejection["reason"]
    assert rejection["raw"] == b"***not base64***"


def test_redelivered_bad_message_is_recorded_once(
    event_function: FunctionServer, session: Session
) -> None:
    body = push_body(b"[]")
    assert send_push(event_function, body).status_code == 200
    assert send_push(event_function, body).status_code == 200
    assert len(rejections(session)) == 1


def test_cloud_event_without_a_message_is_recorded(
    event_function: FunctionServer, session: Session
) -> None:
    headers = {
        "ce-id": "1",
        "ce-specversion": "1.0",
        "ce-source": "//x",
        "ce-type": "t",
        "content-type": "application/json",
    }
    response = requests.post(
        event_function.url("/"), json={"hello": 1}, headers=headers, timeout=30
    )
    assert response.status_code == 200
    assert "no message" in rejections(session)[0]["reason"]


def test_envelope_the_framework_cannot_parse_gets_a_json_4xx(
    event_function: FunctionServer,
) -> None:
    response = requests.post(
        event_function.url("/"),
        data=b"garbage",
        timeout=30,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["ok"] is False
    assert "Traceback" not in response.text


def test_database_down_gives_5xx_so_pubsub_retries(settings: Settings, serve_function: Any) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    fn = serve_function("oasis_event", env_for(settings, DATABASE_URL=dead))
    response = send_push(fn, push_body(json.dumps(event()).encode()))
    assert response.status_code >= 500


def test_one_event_through_both_paths_is_one_event_even_with_nanoseconds(
    event_function: FunctionServer, db: Database, session: Session
) -> None:
    raw = event(id="ns-1", created_at="2025-11-29T10:00:00.1234567Z")
    session.run(  # a producer stores the text; Postgres rounds it to .123457
        "INSERT INTO oasis_events (id, created_at, vtid, topic, service, status) "
        "VALUES (:id, :at, :vtid, :topic, :service, :status)",
        id=raw["id"],
        at=raw["created_at"],
        vtid=raw["vtid"],
        topic=raw["topic"],
        service=raw["service"],
        status=raw["status"],
    )
    assert send_push(event_function, push_body(json.dumps(raw).encode())).status_code == 200
    row = ledger_row(session, "VTID-0001")
    assert row is not None and row["last_event_at"].microsecond == 123457
    result = sweep(db)
    assert (result.counters.stale, result.counters.updated) == (1, 0)
    assert "lastEventType" not in ledger_row(session, "VTID-0001")["metadata"]  # type: ignore[index]


FORGED = {
    "id": "zz-forged",
    "created_at": "9999-12-31T23:59:59.999999Z",
    "vtid": "VTID-1001",
    "type": "task_completed",
    "metadata": {"assignedTo": "mallory", "description": "forged"},
}


def test_a_push_from_the_future_cannot_freeze_a_task(
    event_function: FunctionServer, session: Session
) -> None:
    """A push dated after its publish time (plus 5 minutes) is rejected and recorded; the
    task's real events go on applying."""
    now = "2026-01-01T10:00:00.000Z"
    forged = send_push(event_function, push_body(json.dumps(FORGED).encode(), now))
    assert forged.status_code == 200
    assert "more than 300 s after the event was received" in rejections(session)[0]["reason"]
    real = event(id="real", vtid="VTID-1001", topic="task_started", created_at=now)
    assert send_push(event_function, push_body(json.dumps(real).encode(), now)).status_code == 200
    later = {**real, "id": "later", "created_at": "2026-01-01T10:04:59Z"}  # within 5 minutes
    assert send_push(event_function, push_body(json.dumps(later).encode(), now)).status_code == 200
    row = ledger_row(session, "VTID-1001")
    assert row is not None
    assert (row["status"], row["assigned_to"], row["last_event_id"]) == ("active", None, "later")


def test_a_huge_push_is_recorded_by_its_prefix_size_and_hash(
    event_function: FunctionServer, session: Session
) -> None:
    import hashlib

    data = json.dumps({"id": "huge", "x": "y" * (3 * 1024 * 1024)}).encode()
    assert send_push(event_function, push_body(data)).status_code == 200
    row = session.one("SELECT raw, raw_size, raw_sha256, reason FROM ledger_rejections")
    assert row is not None and "limit is 262144" in row["reason"]
    assert (len(row["raw"]), row["raw_size"]) == (64 * 1024, len(data))
    assert row["raw_sha256"] == hashlib.sha256(data).hexdigest()


def test_a_body_the_event_function_does_not_take_gets_a_json_415(
    event_function: FunctionServer,
) -> None:
    refused = requests.post(
        event_function.url("/"), data="hello", headers={"Content-Type": "text/plain"}, timeout=30
    )
    assert refused.status_code in (400, 415)
    assert refused.headers["Content-Type"].startswith("application/json")
    assert refused.json()["ok"] is False
