"""`ledger_http` over real HTTP: every route's happy path, auth and malformed input, each
response checked against the OpenAPI document."""

import base64
import json
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from ledger.config import Settings
from ledger.db import Database
from ledger.local.serve import SMOKE_EVENT
from tests.conftest import FunctionServer, env_for, event, free_port, ledger_row, run_cli
from tests.openapi import check

TOKEN = "s3cret-token"


def call(fn: FunctionServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    response = requests.request(method, fn.url(path), timeout=30, **kwargs)
    check(response)
    assert "Traceback" not in response.text
    return response


def ingest(fn: FunctionServer, body: Any, **kwargs: Any) -> requests.Response:
    return call(fn, "POST", "/api/v1/events/ingest", json=body, **kwargs)


def full(**fields: Any) -> dict[str, Any]:
    """An event with every field ingest requires (vtid, type, source, status, message)."""
    return event(**{"message": "something happened", **fields})


def test_seed_smoke_test(http_function: FunctionServer) -> None:
    stored = ingest(http_function, SMOKE_EVENT)
    assert stored.status_code == 200 and stored.json()["ok"] is True
    synced = call(http_function, "POST", "/internal/oasis/ledger/sync").json()
    assert synced["ok"] and synced["vtid"] == "VTID-0521"
    assert synced["result"]["processed"] == 1 and synced["result"]["created"] == 1
    assert synced["result"]["last_event_id"] == stored.json()["event_id"]
    tasks = call(http_function, "GET", "/api/v1/tasks?vtid=VTID-TEST-0521").json()
    assert tasks["meta"]["count"] == 1
    task = tasks["data"][0]
    assert (task["vtid"], task["status"], task["service"]) == ("VTID-TEST-0521", "pending", "test")
    assert task["description"] == "Test task created"


def test_status_and_metrics(http_function: FunctionServer) -> None:
    ingest(http_function, {**SMOKE_EVENT, "vtid": "VTID-0001", "type": "task_started"})
    status = call(http_function, "GET", "/internal/oasis/ledger/status").json()
    assert status["status"]["backlog"] == 1 and status["status"]["running"] is True
    assert status["status"]["lag_seconds"] >= 0
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    status = call(http_function, "GET", "/internal/oasis/ledger/status").json()
    assert status["status"]["backlog"] == 0 and status["status"]["events_processed"] == 1
    assert (
        status["recent_syncs"][0]["notes"] == "Processed 1 events: 0 updated, 1 created, 0 errors"
    )
    metrics = call(http_function, "GET", "/metrics").json()
    assert metrics["projectors"]["vtid_ledger_writer"]["events_processed"] == 1
    assert metrics["projectors"]["vtid_ledger_sync"]["events_processed"] == 0
    text = call(http_function, "GET", "/metrics", headers={"Accept": "text/plain"})
    assert text.headers["Content-Type"].startswith("text/plain")
    assert (
        sample(text.text, "vtid_ledger_events_processed_total", projector="vtid_ledger_writer") == 1
    )


def test_ingest_treats_empty_strings_as_absent(http_function: FunctionServer) -> None:
    body = {**SMOKE_EVENT, "id": "", "topic": "", "payload": {}, "created_at": None}
    stored = ingest(http_function, body)
    assert stored.status_code == 200 and stored.json()["event_id"]
    blank = call(http_function, "GET", "/api/v1/tasks?vtid=%20&status=")
    assert blank.status_code == 200


def test_ingest_accepts_spec_names_and_is_idempotent_by_id(
    http_function: FunctionServer, db: Database
) -> None:
    raw = full(id="fixed-1", metadata={"environment": "prod"})
    assert ingest(http_function, raw).status_code == 200
    again = ingest(http_function, raw)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM oasis_events")) == 1


def test_tasks_filters_and_cursor_pagination(http_function: FunctionServer) -> None:
    for i in range(7):
        env = "prod" if i % 2 else "dev"
        ingest(http_function, full(vtid=f"VTID-{i:04d}", metadata={"environment": env}))
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    seen, cursor = [], None
    while True:
        query = "/api/v1/tasks?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = call(http_function, "GET", query).json()
        seen += [row["vtid"] for row in page["data"]]
        cursor = page["meta"]["next_cursor"]
        assert page["meta"]["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert seen == [f"VTID-{i:04d}" for i in range(7)]
    prod = call(http_function, "GET", "/api/v1/tasks?environment=prod&status=active").json()
    assert [r["vtid"] for r in prod["data"]] == ["VTID-0001", "VTID-0003", "VTID-0005"]


def test_vtid_lookup(http_function: FunctionServer) -> None:
    ingest(http_function, full(vtid="VTID-0521"))
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    found = call(http_function, "GET", "/api/v1/vtid/vtid-0521")
    assert found.status_code == 200 and found.json()["data"]["vtid"] == "VTID-0521"
    missing = call(http_function, "GET", "/api/v1/vtid/VTID-9999")
    assert missing.status_code == 404 and "VTID-9999" in missing.json()["error"]


def test_alive_and_ready(http_function: FunctionServer) -> None:
    assert call(http_function, "GET", "/alive").json() == {"ok": True}
    assert call(http_function, "GET", "/ready").json() == {"ok": True}


def test_ready_and_sync_report_a_dead_database(
    settings: Settings, serve_function: Callable[..., FunctionServer]
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    fn = serve_function("ledger_http", env_for(settings, DATABASE_URL=dead))
    assert call(fn, "GET", "/alive").status_code == 200
    assert call(fn, "GET", "/ready").status_code == 503
    assert call(fn, "POST", "/internal/oasis/ledger/sync").status_code == 503


def test_unmigrated_database_says_so(
    settings: Settings, bare_db: Database, serve_function: Callable[..., FunctionServer]
) -> None:
    fn = serve_function("ledger_http", env_for(settings))
    for method, path in [("GET", "/ready"), ("GET", "/internal/oasis/ledger/status")]:
        response = call(fn, method, path)
        assert response.status_code == 503 and "migrat" in response.json()["error"]


UNINDEXABLE = random.Random(0).randbytes(6000).hex()  # incompressible: too large for a btree
MALFORMED = [
    (
        "POST",
        "/api/v1/events/ingest",
        {"data": b"{not json", "headers": {"content-type": "application/json"}},
        "not valid JSON",
    ),
    ("POST", "/api/v1/events/ingest", {"json": [1, 2]}, "JSON object"),
    (
        "POST",
        "/api/v1/events/ingest",
        {"data": b'{"payload": {"x": NaN}}', "headers": {"content-type": "application/json"}},
        "not valid JSON",
    ),
    (
        "POST",
        "/api/v1/events/ingest",
        {"json": {**SMOKE_EVENT, "id": UNINDEXABLE}},
        "database refused",
    ),
    ("POST", "/api/v1/events/ingest", {"json": {"vtid": 5}}, "vtid must be a string"),
    ("POST", "/api/v1/events/ingest", {"json": {"type": "x", "created_at": "soon"}}, "ISO-8601"),
    ("POST", "/api/v1/events/ingest", {"json": {"payload": [1]}}, "JSON object"),
    ("POST", "/api/v1/events/ingest", {"data": b""}, "JSON object"),
    ("POST", "/api/v1/events/ingest", {"data": b"x" * (1024 * 1024 + 1)}, "larger"),
    ("POST", "/api/v1/events/ingest", {"json": {}}, "vtid is required"),
    ("POST", "/api/v1/events/ingest", {"json": {"vtid": "VTID-0001"}}, "type is required"),
    ("POST", "/api/v1/events/ingest", {"json": {**SMOKE_EVENT, "vtid": "VTID-ABC"}}, "VTID-ABC"),
    ("POST", "/api/v1/events/ingest", {"json": {**SMOKE_EVENT, "vtid": " "}}, "vtid is required"),
    ("POST", "/api/v1/events/ingest", {"json": {**SMOKE_EVENT, "type": ""}}, "type is required"),
    ("POST", "/api/v1/events/ingest", {"json": {**SMOKE_EVENT, "source": None}}, "source is"),
    ("POST", "/api/v1/events/ingest", {"json": {**SMOKE_EVENT, "status": "  "}}, "status is"),
    ("POST", "/api/v1/events/ingest", {"json": {**SMOKE_EVENT, "message": ""}}, "message is"),
    ("GET", "/api/v1/tasks?limit=0", {}, "limit"),
    ("GET", "/api/v1/tasks?limit=1001", {}, "limit"),
    ("GET", "/api/v1/tasks?limit=ten", {}, "limit"),
    ("GET", "/api/v1/tasks?cursor=bogus", {}, "cursor"),
    ("GET", "/api/v1/tasks?vtid=SYSTEM", {}, "not a valid VTID"),
    ("GET", "/api/v1/tasks?stauts=active", {}, "unknown query parameter"),
    ("GET", "/api/v1/tasks?environment=pr%00od", {}, "NUL"),
    ("GET", "/api/v1/vtid/not-a-vtid", {}, "not a valid VTID"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "error"), MALFORMED)
def test_malformed_requests_get_a_4xx_naming_the_problem(
    http_function: FunctionServer, method: str, path: str, kwargs: dict[str, Any], error: str
) -> None:
    response = call(http_function, method, path, **kwargs)
    assert 400 <= response.status_code < 500
    body = response.json()
    assert body["ok"] is False and error in body["error"]


def test_rejected_ingest_is_recorded(http_function: FunctionServer, db: Database) -> None:
    ingest(http_function, {**SMOKE_EVENT, "metadata": "nope"})
    ingest(http_function, {"vtid": "VTID-ABC"})
    rows = db.run(lambda s: s.rows("SELECT source, reason FROM ledger_rejections ORDER BY id"))
    assert [r["source"] for r in rows] == ["ingest", "ingest"]
    assert "JSON" in rows[0]["reason"] and "type is required" in rows[1]["reason"]
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM oasis_events")) == 0


def test_paths_the_framework_cannot_route_still_get_json(http_function: FunctionServer) -> None:
    response = requests.get(http_function.url("/api/v1/vtid/%0AVTID-0001"), timeout=10)
    assert response.status_code == 404 and response.json()["ok"] is False
    assert requests.get(http_function.url("/favicon.ico"), timeout=10).json()["ok"] is False


def test_unknown_route_and_wrong_method(http_function: FunctionServer) -> None:
    assert requests.get(http_function.url("/nope"), timeout=10).status_code == 404
    wrong = requests.get(http_function.url("/internal/oasis/ledger/sync"), timeout=10)
    assert wrong.status_code == 405 and "POST" in wrong.json()["error"]
    assert wrong.headers["Allow"] == "POST"


@pytest.fixture
def guarded(
    settings: Settings, db: Database, serve_function: Callable[..., FunctionServer]
) -> FunctionServer:
    return serve_function("ledger_http", env_for(settings, LEDGER_API_TOKEN=TOKEN))


ROUTES = [
    ("POST", "/internal/oasis/ledger/sync"),
    ("GET", "/internal/oasis/ledger/status"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/events/ingest"),
    ("GET", "/api/v1/tasks"),
    ("GET", "/api/v1/vtid/VTID-0001"),
    ("GET", "/api/v1/vtid/VTID-0001/explain"),
    ("GET", "/ready"),
    ("GET", "/openapi.json"),
]


def test_every_route_but_alive_needs_the_token(guarded: FunctionServer) -> None:
    good = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in ROUTES:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = call(guarded, method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        authorised = call(guarded, method, path, headers=good, json=full())
        assert authorised.status_code != 401
    assert call(guarded, "GET", "/alive").status_code == 200
    assert call(guarded, "GET", "/alive/").status_code == 200


def kill_every_connection(db: Database) -> None:
    """What a database restart or failover does to every pooled connection."""
    db.run(
        lambda s: s.run(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )


def test_every_route_answers_normally_right_after_the_database_dropped_all_connections(
    http_function: FunctionServer, event_function: FunctionServer, db: Database
) -> None:
    from tests.test_main_oasis_event import push_body, send_push

    ingest(http_function, SMOKE_EVENT)  # the pools now hold connections
    assert send_push(event_function, push_body(json.dumps(event()).encode())).status_code == 200
    for method, path, body in [
        ("POST", "/internal/oasis/ledger/sync", None),
        ("GET", "/internal/oasis/ledger/status", None),
        ("GET", "/metrics", None),
        ("POST", "/api/v1/events/ingest", SMOKE_EVENT),
        ("GET", "/api/v1/tasks", None),
        ("GET", "/api/v1/vtid/VTID-TEST-0521", None),
        ("GET", "/ready", None),
    ]:
        kill_every_connection(db)
        response = call(http_function, method, path, json=body)
        assert response.status_code == 200, (path, response.text)
    kill_every_connection(db)
    pushed = send_push(event_function, push_body(json.dumps(event(vtid="VTID-0999")).encode()))
    assert pushed.status_code == 200, event_function.output()
    assert db.run(lambda s: ledger_row(s, "VTID-0999")) is not None


PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "text"),
    [
        (PROMETHEUS_ACCEPT, True),  # what Prometheus itself sends
        ("text/plain", True),
        ("text/plain;version=0.0.4", True),
        ("*/*", False),  # curl
        ("application/json", False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),  # a browser
        (None, False),
    ],
)
def test_metrics_answer_prometheus_in_its_text_format_and_json_clients_in_json(
    http_function: FunctionServer, accept: str | None, text: bool
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    response = call(http_function, "GET", "/metrics", headers=headers)
    assert response.status_code == 200
    if text:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "# TYPE vtid_ledger_events_processed_total counter" in response.text
        assert sample(response.text, "vtid_ledger_rows") == 0
        assert 'vtid_ledger_build_info{rules_version="' in response.text
    else:
        assert response.headers["Content-Type"].startswith("application/json")
        assert set(response.json()["projectors"]) == {"vtid_ledger_sync", "vtid_ledger_writer"}


def test_metrics_report_each_paths_lag_and_the_redeliveries_that_precede_dead_letters(
    http_function: FunctionServer, event_function: FunctionServer, db: Database
) -> None:
    from tests.test_main_oasis_event import push_body, send_push

    published = (datetime.now(UTC) - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    retried = {**push_body(json.dumps(event()).encode(), published), "deliveryAttempt": 3}
    assert send_push(event_function, retried).status_code == 200
    first = {**push_body(json.dumps(event()).encode(), published), "deliveryAttempt": 1}
    assert send_push(event_function, first).status_code == 200
    ingest(http_function, full(id="backlog", created_at="2024-01-01T00:00:00Z"))  # not swept
    db.run(  # stored an hour ago: lag counts from when it was stored, not from its created_at
        lambda s: s.run(
            "UPDATE oasis_events SET stored_at = now() - interval '1 hour' WHERE id = 'backlog'"
        )
    )

    projectors = call(http_function, "GET", "/metrics").json()["projectors"]
    realtime, sweep = projectors["vtid_ledger_sync"], projectors["vtid_ledger_writer"]
    assert realtime["redelivered"] == 1 and realtime["delivery_lag_count"] == 2
    assert 30 <= realtime["lag_seconds"] < 120
    assert 60 <= realtime["delivery_lag_seconds_sum"] < 240
    assert sweep["backlog"] == 1 and 3600 <= sweep["lag_seconds"] < 3700

    text = call(http_function, "GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT}).text
    assert sample(text, "vtid_ledger_redelivered_total", projector="vtid_ledger_sync") == 1
    assert sample(text, "vtid_ledger_backlog_events", projector="vtid_ledger_writer") == 1
    assert sample(text, "vtid_ledger_delivery_lag_seconds_count", projector="vtid_ledger_sync") == 2
    # both were published 30 s before they were applied: none within 10 s, both within 60 s
    for le, count in (("10.0", 0), ("30.0", 0), ("60.0", 2), ("+Inf", 2)):
        assert sample(text, "vtid_ledger_delivery_lag_seconds_bucket", le=le) == count, le
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    swept = call(http_function, "GET", "/metrics").json()["projectors"]["vtid_ledger_writer"]
    assert (swept["backlog"], swept["lag_seconds"]) == (0, 0)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition, read by Prometheus's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    found = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_metrics_count_stale_events_rejections_by_reason_ingest_and_the_lag_histogram(
    http_function: FunctionServer, event_function: FunctionServer
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.test_main_oasis_event import push_body, send_push

    ingest(http_function, full(id="s1", vtid="VTID-0100", created_at="2025-11-29T10:00:00Z"))
    ingest(http_function, full(id="s1", vtid="VTID-0100", created_at="2025-11-29T10:00:00Z"))
    ingest(http_function, full(id="s0", vtid="VTID-0100", created_at="2025-11-29T08:00:00Z"))
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    # Between the row's founding and newest events, setting nothing: the next sweep counts it
    # stale.
    ingest(http_function, full(id="s2", vtid="VTID-0100", created_at="2025-11-29T09:00:00Z"))
    ingest(http_function, full(id="s1", vtid="VTID-0100", message="other content"))  # 409
    ingest(http_function, full(id="bad-vtid", vtid="VTID-ABC"))
    ingest(http_function, full(id="no-message", message=""))
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    again = push_body(json.dumps(event(id="s1", vtid="VTID-0100",
                                       created_at="2025-11-29T10:00:00Z")).encode())  # fmt: skip
    assert send_push(event_function, again).status_code == 200  # applied already: stale
    assert send_push(event_function, push_body(b'{"id": "p1"')).status_code == 200

    body = call(http_function, "GET", "/metrics").json()
    writer, realtime = (
        body["projectors"]["vtid_ledger_writer"],
        body["projectors"]["vtid_ledger_sync"],
    )
    assert (writer["events_processed"], writer["created"], writer["stale"]) == (3, 1, 1)
    assert (realtime["stale"], realtime["errors"]) == (1, 1)
    assert body["ledger"]["rejections_kept_by_reason"] == {
        "ingest": {"id_conflict": 1, "invalid_vtid": 1, "missing_field": 1},
        "pubsub": {"not_a_json_object": 1},
    }
    assert body["instance"]["ingested"] == {"stored": 3, "duplicate": 1, "conflict": 1,
                                            "rejected": 2}  # fmt: skip

    text = call(http_function, "GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT}).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert sample(text, "vtid_ledger_stale_total", projector="vtid_ledger_writer") == 1
    assert sample(text, "vtid_ledger_stale_total", projector="vtid_ledger_sync") == 1
    assert sample(text, "vtid_ledger_rejections_kept_by_reason", source="ingest",
                  reason="invalid_vtid") == 1  # fmt: skip
    assert sample(text, "vtid_ledger_rejections_kept", source="ingest") == 3
    assert sample(text, "vtid_ledger_ingested_events_total", outcome="stored") == 3
    assert families["vtid_ledger_delivery_lag_seconds"].type == "histogram"
    lags = realtime["delivery_lag_count"]
    assert lags >= 1
    assert sample(text, "vtid_ledger_delivery_lag_seconds_bucket", le="+Inf") == lags
    assert sample(text, "vtid_ledger_delivery_lag_seconds_count") == lags
    for name in ("vtid_ledger_delivery_lag_seconds_sum", "vtid_ledger_delivery_lag_seconds_count"):
        assert f"# TYPE {name} counter" not in text  # no longer two hand-named counters


def test_the_openapi_document_is_served(http_function: FunctionServer) -> None:
    from tests.openapi import document

    assert call(http_function, "GET", "/openapi.json").json() == document()


def test_each_request_logs_one_access_line_in_cloud_loggings_form(
    http_function: FunctionServer,
) -> None:
    call(http_function, "GET", "/api/v1/tasks?limit=2", headers={"User-Agent": "probe/1"})
    requests.get(http_function.url("/nope"), timeout=30)
    lines = [json.loads(x) for x in http_function.output().splitlines() if x.startswith("{")]
    access = [x["httpRequest"] for x in lines if "httpRequest" in x]
    assert {"requestMethod": "GET", "requestUrl": "/api/v1/tasks?limit=2", "status": 200,
            "userAgent": "probe/1"}.items() <= access[-2].items()  # fmt: skip
    assert access[-1]["status"] == 404 and access[-1]["latency"].endswith("s")
    assert all(x["severity"] in ("INFO", "WARNING", "ERROR") for x in lines)


def test_a_rejected_ingest_is_logged_with_its_reason(http_function: FunctionServer) -> None:
    ingest(http_function, {**SMOKE_EVENT, "metadata": [1]})
    lines = [json.loads(x) for x in http_function.output().splitlines() if x.startswith("{")]
    [rejected] = [x for x in lines if x["message"] == "event rejected"]
    assert rejected["severity"] == "WARNING" and "JSON object" in rejected["reason"]
    assert rejected["source"] == "ingest"


def test_ndjson_ingest_answers_each_line_stores_the_good_and_records_the_bad(
    http_function: FunctionServer, db: Database
) -> None:
    good = [json.dumps(full(id=f"n{i}", vtid=f"VTID-{i:04d}")) for i in range(2500)]
    lines = [*good[:1000], "{not json", "", json.dumps(full(vtid="VTID-X")), *good[1000:]]
    response = call(
        http_function,
        "POST",
        "/api/v1/events/ingest",
        data="\n".join([*lines, good[0]]).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    answers = [json.loads(x) for x in response.text.splitlines()]
    assert len(answers) == 2503  # one per non-blank line, in order
    assert answers[999] == {"ok": True, "event_id": "n999", "published": False}
    assert answers[1000]["ok"] is False and "not valid JSON" in answers[1000]["error"]
    assert answers[1001]["ok"] is False and "VTID-X" in answers[1001]["error"]
    assert answers[-1] == {"ok": True, "event_id": "n0", "duplicate": True}
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM oasis_events")) == 2500
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM ledger_rejections")) == 2


def test_ndjson_splits_events_only_at_newlines(http_function: FunctionServer, db: Database) -> None:
    """JSON allows U+2028 and U+0085 unescaped inside strings; they are not line breaks here."""
    lines = [json.dumps(full(id=f"u{i}", message=f"a\u2028b\x85c {i}"), ensure_ascii=False)
             for i in range(3)]  # fmt: skip
    response = call(
        http_function,
        "POST",
        "/api/v1/events/ingest",
        data="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    answers = [json.loads(x) for x in response.text.splitlines()]
    assert [a["event_id"] for a in answers] == ["u0", "u1", "u2"]
    stored = db.run(lambda s: s.scalar("SELECT message FROM oasis_events WHERE id = 'u1'"))
    assert stored == "a\u2028b\x85c 1"


def database_zone(db: Database) -> str | None:
    """The TimeZone the database gives a session that does not choose its own."""
    return db.run(
        lambda s: s.scalar(
            "SELECT substr(c, 10) FROM pg_db_role_setting, unnest(setconfig) AS c "
            "WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND setrole = 0 AND c LIKE 'TimeZone=%'"
        )
    )


def test_a_database_away_from_utc_changes_no_answer(
    http_function: FunctionServer, db: Database
) -> None:
    """A sweep over an event of 1850 answered 500 where the database's TimeZone was
    Europe/Amsterdam (+00:19:32 then); its published copy was refused."""
    if os.environ.get("TEST_DATABASE_URL") is None:
        assert database_zone(db) == "Europe/Amsterdam"  # the suite's own database is away
    old = full(id="old-1", vtid="VTID-1850", created_at="1850-01-01T00:00:00Z")
    assert ingest(http_function, old).status_code == 200
    synced = call(http_function, "POST", "/internal/oasis/ledger/sync")
    assert synced.status_code == 200, synced.text
    assert synced.json()["result"]["last_event_time"] == "1850-01-01T00:00:00.000Z"
    assert call(http_function, "GET", "/internal/oasis/ledger/status").status_code == 200
    row = call(http_function, "GET", "/api/v1/vtid/VTID-1850").json()["data"]
    assert row["last_event_at"] == "1850-01-01T00:00:00.000Z"
    wire = db.run(
        lambda s: s.scalar(
            "SELECT wire FROM ledger_ingest_event(:p, now())", p=json.dumps({**old, "id": "old-2"})
        )
    )
    assert '"created_at": "1850-01-01T00:00:00.000000Z"' in wire


def test_reads_carry_metadata_as_stored_whatever_its_depth(
    http_function: FunctionServer, db: Database
) -> None:
    """A row folded before the 64-level limit may hold 900 levels: reads answered 500. Numbers
    keep the digits jsonb keeps in every read."""
    deep = "[" * 900 + "1" + "]" * 900
    db.run(
        lambda s: s.run(
            "INSERT INTO vtid_ledger (vtid, status, metadata) VALUES ('VTID-3002', 'active', "
            "CAST(:m AS jsonb)), ('VTID-3003', 'active', '{\"price\": 1.50}')",
            m='{"deep": ' + deep + "}",
        )
    )
    for path in ("/api/v1/tasks", "/api/v1/vtid/VTID-3002", "/api/v1/vtid/VTID-3002/explain"):
        answer = call(http_function, "GET", path)
        assert answer.status_code == 200, answer.text
        assert deep in answer.text
    price = call(http_function, "GET", "/api/v1/vtid/VTID-3003").text
    assert '"metadata":{"price": 1.50}' in price
    cursor = base64.urlsafe_b64encode(("[" * 5000 + "]" * 5000).encode()).decode()
    refused = call(http_function, "GET", f"/api/v1/tasks?cursor={cursor}")
    assert refused.status_code == 400


def test_ingest_refuses_a_time_from_the_future_and_so_does_the_sweep(
    http_function: FunctionServer, db: Database, settings: Settings
) -> None:
    """Through ingest or written into the log by a producer, an event dated after it was
    stored (plus 5 minutes) is rejected and recorded; verify and status stay sane."""
    forged = full(id="zz-forged", vtid="VTID-1001", created_at="9999-12-31T23:59:59.999999Z")
    refused = ingest(http_function, forged)
    assert refused.status_code == 400 and "after the event was received" in refused.json()["error"]
    db.run(
        lambda s: s.run(
            "INSERT INTO oasis_events (id, created_at, vtid, topic, service, status) VALUES "
            "('in-log', '9999-12-31T23:59:59Z', 'VTID-1001', 'task_completed', 'p', 'success')"
        )
    )
    assert ingest(http_function, full(id="real", vtid="VTID-1001")).status_code == 200
    synced = call(http_function, "POST", "/internal/oasis/ledger/sync").json()["result"]
    assert (synced["created"], synced["errors"]) == (1, 1)
    assert call(http_function, "GET", "/api/v1/vtid/VTID-1001").json()["data"]["status"] == "active"
    metrics = call(http_function, "GET", "/metrics").json()["projectors"]
    assert metrics["vtid_ledger_writer"]["last_event_time"].startswith("2025-")
    reasons = db.run(lambda s: s.run("SELECT reason FROM ledger_rejections ORDER BY id"))
    assert len(reasons) == 2 and all("from the future" in r[0] for r in reasons)
    assert run_cli(settings, "verify").returncode == 0


def test_the_tolerance_for_future_times_is_one_setting_for_every_path(
    settings: Settings, db: Database, serve_function: Callable[..., FunctionServer]
) -> None:
    assert run_cli(settings, "migrate", LEDGER_MAX_FUTURE_S="3600").returncode == 0
    fn = serve_function("ledger_http", env_for(settings))
    ahead = full(id="ahead", created_at=(datetime.now(UTC) + timedelta(minutes=30)).isoformat())
    assert ingest(fn, ahead).status_code == 200
    assert call(fn, "POST", "/internal/oasis/ledger/sync").json()["result"]["created"] == 1
    assert run_cli(settings, "verify").returncode == 0


def test_ingest_refuses_the_writers_own_identity(
    http_function: FunctionServer, db: Database
) -> None:
    for fields in ({"source": "oasis-projector"}, {"type": "ledger_sync"}):
        refused = ingest(http_function, full(**fields))
        assert refused.status_code == 400 and "own identity" in refused.json()["error"]
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM ledger_rejections")) == 2


def test_recent_syncs_are_the_newest_by_log_position(
    http_function: FunctionServer, db: Database
) -> None:
    """A ledger_sync a producer wrote into the log with a far-future time cannot hold the top."""
    db.run(
        lambda s: s.run(
            "INSERT INTO oasis_events (id, created_at, topic, event, service, source, status, "
            "notes, metadata) VALUES ('fake-sync', '9999-01-01T00:00:00Z', 'ledger_sync', "
            "'ledger_sync', 'oasis-projector', 'oasis-projector', 'success', 'forged', "
            """'{"processed": 0, "updated": 0, "created": 0, "errors": 0}')"""
        )
    )
    ingest(http_function, full(id="e1"))
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    syncs = call(http_function, "GET", "/internal/oasis/ledger/status").json()["recent_syncs"]
    assert syncs[0]["id"].startswith("ledger-sync-")  # the sweep's, not the far-future one
    assert syncs[0]["notes"] == "Processed 2 events: 0 updated, 1 created, 1 errors"


def test_the_same_id_with_other_content_is_a_409_and_recorded(
    http_function: FunctionServer, db: Database
) -> None:
    first = full(id="deploy-2026-12-02-001", message="first")
    assert ingest(http_function, first).status_code == 200
    again = ingest(http_function, first)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    other = ingest(http_function, {**first, "message": "other"})
    assert other.status_code == 409, other.text
    assert "other content" in other.json()["error"] and other.json()["conflict"] is True
    recorded = db.run(lambda s: s.scalar("SELECT reason FROM ledger_rejections"))
    assert "stored digest" in recorded
    stored = db.run(lambda s: s.scalar("SELECT message FROM oasis_events"))
    assert stored == "first"


def ndjson(fn: FunctionServer, body: bytes) -> requests.Response:
    return call(
        fn,
        "POST",
        "/api/v1/events/ingest",
        data=body,
        headers={"Content-Type": "application/x-ndjson"},
    )


def test_ndjson_is_bounded_in_lines_and_costs_one_statement_and_log_line_for_bad_ones(
    http_function: FunctionServer, db: Database
) -> None:
    """A 1 MiB body of `x` lines took 194 s (a round trip and a log line each): past 5,000
    events it is a 413; bad lines below it are recorded together and logged once."""
    flood = ndjson(http_function, b"x\n" * (512 * 1024 - 1))
    assert flood.status_code == 413 and "limit is 5000" in flood.json()["error"]
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM ledger_rejections")) == 0
    bad = b"\n".join(b"x%d" % n for n in range(3000)) + b"\n" + json.dumps(full()).encode()
    answered = ndjson(http_function, bad)
    assert answered.status_code == 200
    answers = [json.loads(line) for line in answered.text.splitlines()]
    assert len(answers) == 3001 and sum(a["ok"] for a in answers) == 1
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM ledger_rejections")) == 3000
    output = http_function.output()
    assert output.count('"message": "events ingested"') == 1
    assert output.count("event rejected") == 0


def test_ndjson_edges(http_function: FunctionServer, db: Database) -> None:
    """An empty body is a 400 naming the problem; invalid UTF-8 refuses its own line only."""
    empty = ndjson(http_function, b"\n\n")
    assert empty.status_code == 400 and "no event" in empty.json()["error"]
    lines = [json.dumps(full(id="ok-1")).encode(), b'{"id": "\xff"}', json.dumps(full()).encode()]
    answers = [json.loads(x) for x in ndjson(http_function, b"\n".join(lines)).text.splitlines()]
    assert [a["ok"] for a in answers] == [True, False, True]
    assert "UTF-8" in answers[1]["error"]


def test_rejections_keep_a_bounded_prefix_and_are_pruned_by_age(
    http_function: FunctionServer, db: Database
) -> None:
    """A 2 MB refused body keeps its first 64 KiB with its size and SHA-256; rows older than
    the retention (30 days) go when the sweep runs."""
    import hashlib

    body = b'{"id": "big", "x": "' + b"y" * (2 * 1024 * 1024) + b'"}'
    refused = call(http_function, "POST", "/api/v1/events/ingest", data=body,
                   headers={"Content-Type": "application/json"})  # fmt: skip
    assert refused.status_code == 413  # the body limit comes first for HTTP
    from ledger import ledger_rejections

    db.run(lambda s: ledger_rejections.record(s, source="pubsub", reason="r", raw=body))
    row = db.run(lambda s: s.one("SELECT raw, raw_size, raw_sha256 FROM ledger_rejections"))
    assert row is not None
    assert (len(row["raw"]), row["raw_size"]) == (64 * 1024, len(body))
    assert row["raw_sha256"] == hashlib.sha256(body).hexdigest()
    db.run(lambda s: s.run("UPDATE ledger_rejections SET received_at = now() - interval '31 days'"))
    ingest(http_function, full(id="fresh", vtid="VTID-0001", message=5))  # a fresh rejection
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    left = db.run(lambda s: s.run("SELECT source FROM ledger_rejections"))
    assert left == [["ingest"]]


def test_no_log_line_quotes_more_than_a_bounded_share_of_input(
    http_function: FunctionServer,
) -> None:
    long_path = "/api/v1/tasks?vtid=" + "A" * 100_000
    assert call(http_function, "GET", long_path).status_code == 400
    assert max(len(line) for line in http_function.output().splitlines()) < 8192


def test_get_routes_answer_head_and_ingest_takes_only_json(
    http_function: FunctionServer, db: Database
) -> None:
    """Uptime probes that use HEAD counted /alive as down (405); a text/plain body was stored."""
    for path in ("/alive", "/ready", "/api/v1/tasks", "/metrics", "/internal/oasis/ledger/status"):
        head = requests.head(http_function.url(path), timeout=30)
        assert head.status_code == 200 and head.content == b"", path
    assert requests.head(http_function.url("/api/v1/vtid/VTID-0001"), timeout=30).status_code == 404
    for content_type in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
        refused = call(
            http_function,
            "POST",
            "/api/v1/events/ingest",
            data=json.dumps(full()),
            headers={"Content-Type": content_type},
        )
        assert refused.status_code == 415 and content_type in refused.json()["error"]
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM oasis_events")) == 0


def test_lag_counts_from_when_an_event_was_stored_not_from_its_time(
    http_function: FunctionServer,
) -> None:
    """Backfilled history reported a lag of 427 days: lag is the age of the oldest event stored
    but not yet swept."""
    ingest(http_function, full(created_at="2024-01-01T00:00:00Z"))
    status = call(http_function, "GET", "/internal/oasis/ledger/status").json()["status"]
    assert status["backlog"] == 1 and 0 <= status["lag_seconds"] < 60
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    status = call(http_function, "GET", "/internal/oasis/ledger/status").json()["status"]
    assert (status["backlog"], status["lag_seconds"]) == (0, 0)


def test_routes_refuse_query_parameters_they_do_not_take(http_function: FunctionServer) -> None:
    for path in ("/internal/oasis/ledger/status?limit=-5", "/metrics?x=1", "/alive?y"):
        refused = call(http_function, "GET", path)
        assert refused.status_code == 400 and "unknown query parameter" in refused.json()["error"]


def test_a_refused_ingest_without_an_id_answers_no_made_up_id(
    http_function: FunctionServer,
) -> None:
    refused = ingest(http_function, {})
    assert refused.status_code == 400 and refused.json()["event_id"] is None
    named = ingest(http_function, {"id": "mine"})
    assert named.status_code == 400 and named.json()["event_id"] == "mine"


def test_the_cli_writes_json_exactly_as_the_http_api_does(
    http_function: FunctionServer, settings: Settings
) -> None:
    ingest(http_function, full(vtid="VTID-0321", metadata={"price": 1.50, "nested": {"b": [1]}}))
    call(http_function, "POST", "/internal/oasis/ledger/sync")
    for path, args in (
        ("/api/v1/vtid/VTID-0321", ("task", "VTID-0321")),
        ("/api/v1/tasks?vtid=VTID-0321", ("tasks", "--vtid", "VTID-0321")),
        ("/api/v1/vtid/VTID-0321/explain", ("explain", "VTID-0321")),
    ):
        over_http = call(http_function, "GET", path).text
        done = run_cli(settings, *args)
        assert done.returncode == 0, done.stderr
        if path.endswith("/explain"):  # the route wraps the answer in {data, ok}, keys sorted
            over_http = over_http.removeprefix('{"data":').removesuffix(',"ok":true}\n') + "\n"
        assert done.stdout == over_http, (path, done.stdout, over_http)
    lines = "".join(json.dumps(full(id=f"n{i}")) + "\n" for i in range(2)) + "{}\n"
    over_http = call(http_function, "POST", "/api/v1/events/ingest", data=lines,
                     headers={"Content-Type": "application/x-ndjson"}).text  # fmt: skip
    again_http = call(http_function, "POST", "/api/v1/events/ingest", data=lines,
                      headers={"Content-Type": "application/x-ndjson"}).text  # fmt: skip
    from_cli = run_cli(settings, "ingest", "-", stdin=lines).stdout
    assert from_cli == again_http and over_http.count("\n") == 3  # both: duplicates, refusal


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/json", b"", "body must be a JSON object"),
        ("application/json", b"  \n", "body must be a JSON object"),
        ("application/x-ndjson", b"\n\n", "body holds no event (NDJSON: one JSON object per line)"),
    ],
)
def test_a_request_without_an_event_is_recorded_with_the_reason_it_is_answered(
    http_function: FunctionServer, db: Database, content_type: str, body: bytes, reason: str
) -> None:
    answer = call(
        http_function,
        "POST",
        "/api/v1/events/ingest",
        data=body,
        headers={"Content-Type": content_type},
    )
    assert (answer.status_code, answer.json()["error"]) == (400, reason)
    recorded = db.run(lambda s: s.rows("SELECT reason, raw FROM ledger_rejections"))
    assert [(r["reason"], bytes(r["raw"])) for r in recorded] == [(reason, body)]
