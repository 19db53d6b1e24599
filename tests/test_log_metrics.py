"""The log-based metric of rejected events, read against what the code really logs: every path
that rejects events runs here, its JSON lines are captured, and the metric's filter and value
extractor (as Terraform declares them) are applied to them the way Cloud Logging would."""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tfparse

from ledger.db import Database
from ledger.ingest import ingest_lines, ingest_one
from ledger.logs import CloudLoggingFormatter
from ledger.realtime import handle_cloud_event
from ledger.sweep import sweep
from tests.conftest import event, push, store

MODULE = Path(__file__).resolve().parent.parent / "terraform"


def rejected_events_metric(tmp_path: Path) -> dict[str, Any]:
    tfvars = tmp_path / "test.tfvars"
    tfvars.write_text('project_id = "acme-platform-prod"\n')
    cwd = os.getcwd()
    os.chdir(MODULE)
    try:
        module = tfparse.load_from_path(".", vars_paths=[os.path.relpath(tfvars, MODULE)])
    finally:
        os.chdir(cwd)
    [metric] = [
        m
        for m in module["google_logging_metric"]
        if m["__tfmeta"]["path"] == "google_logging_metric.rejected_events"
    ]
    return dict(metric)


class Metric:
    """The metric's filter and extractors, for the shapes this module uses: a list of messages,
    a numeric comparison on one field, EXTRACT(jsonPayload.<field>)."""

    def __init__(self, declared: dict[str, Any]) -> None:
        self.declared = declared
        found = re.search(r"jsonPayload\.message = \(([^)]*)\)", declared["filter"])
        assert found, declared["filter"]
        self.messages = set(re.findall(r'"([^"]+)"', found[1]))
        guard = re.search(r"jsonPayload\.(\w+) > 0", declared["filter"])
        assert guard, declared["filter"]
        self.guard = guard[1]
        value = re.fullmatch(r"EXTRACT\(jsonPayload\.(\w+)\)", declared["value_extractor"])
        assert value, declared["value_extractor"]
        self.value = value[1]
        label = re.fullmatch(
            r"EXTRACT\(jsonPayload\.(\w+)\)", declared["label_extractors"]["source"]
        )
        assert label
        self.label = label[1]

    def matches(self, line: dict[str, Any]) -> bool:
        guard = line.get(self.guard)
        return line.get("message") in self.messages and isinstance(guard, int) and guard > 0

    def sums(self, lines: list[dict[str, Any]]) -> Counter[str]:
        """The distribution's sum per source label: the number of events."""
        total: Counter[str] = Counter()
        for line in filter(self.matches, lines):
            total[line[self.label]] += line[self.value]
        return total


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(  # type: ignore[method-assign]
        json.loads(CloudLoggingFormatter().format(record))
    )
    logger = logging.getLogger("ledger")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def rejections(db: Database) -> Counter[str]:
    """Rows of ledger_rejections by source (one per distinct payload and source: the test's
    payloads are all different, so one per rejected event)."""
    rows = db.run(lambda s: s.rows("SELECT source FROM ledger_rejections"))
    return Counter(row["source"] for row in rows)


def test_the_rejected_events_metric_counts_events_not_lines(
    db: Database, logged: list[dict[str, Any]], tmp_path: Path
) -> None:
    declared = rejected_events_metric(tmp_path)
    assert declared["metric_descriptor"]["value_type"] == "DISTRIBUTION"
    metric = Metric(declared)

    # The sweep: three unreadable rows rejected inside the batch statement, and one event
    # Postgres refuses, which sends the batch to the event-by-event fallback (it logs that
    # event on its own line as well as in the batch's count).
    for n in range(3):
        db.run(
            lambda s, n=n: s.run(
                "INSERT INTO oasis_events (id, created_at, vtid, metadata) "
                f"VALUES ('bad-{n}', now(), 'VTID-0001', '[1, 2]')"
            )
        )
    poison = event(id="poison", vtid="VTID-0002", metadata={"environment": os.urandom(8000).hex()})
    store(db, event(id="good", vtid="VTID-0003"), poison)
    assert sweep(db).counters.errors == 4

    # The event function: an event without an id, and an envelope that is not a message.
    push(db, {"vtid": "VTID-0004", "type": "task_created"})
    handle_cloud_event(db, {"nothing": 1}, {})

    # Ingest: one bad event alone, then an NDJSON request with three bad lines and a good one.
    assert ingest_one(db, b"[1]", None).outcome == "rejected"
    body = [
        b"not json",
        json.dumps(event(id="fine", vtid="VTID-0005", message="ok")).encode(),
        b"[]",
        b"{}",
    ]
    assert Counter(done.outcome for done in ingest_lines(db, body, None))["rejected"] == 3

    recorded = rejections(db)
    assert recorded == {"sweep": 4, "pubsub": 2, "ingest": 4}
    assert metric.sums(logged) == recorded
    # Lines are not events: counting the matching lines would say otherwise.
    assert sum(1 for _ in filter(metric.matches, logged)) < sum(recorded.values())
