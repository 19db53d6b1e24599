"""The soak (tests/soak.py), sized for CI: thousands of events through both paths while
connections are terminated, Postgres restarts, sweeps and the event function are killed.
SOAK_EVENTS and SOAK_SECONDS size it; `bench/soak.py` runs it longer."""

import os
from pathlib import Path

import pytest

from ledger.writer_status import status
from tests.conftest import expected_rows, ledger_rows
from tests.soak import Soak, expected_rejections, figures_json, readable, rejections


@pytest.mark.timeout(900)
def test_nothing_is_lost_under_load_with_faults(tmp_path: Path, pubsub_emulator: str) -> None:
    soak = Soak(
        tmp_path,
        pubsub_emulator,
        events=int(os.environ.get("SOAK_EVENTS", "2000")),
        seconds=float(os.environ.get("SOAK_SECONDS", "40")),
    )
    with soak.running():
        events = soak.run()
        soak.finish()
        figures = soak.figures
        print(figures_json(figures))  # shown with -s, and in the failure report

        # every fault landed
        assert figures.terminations == 3 and figures.connections_terminated > 0
        assert figures.restarts == 1 and figures.function_kills == 1
        assert figures.sweeps_killed_in_batch == 1
        assert figures.sweeps_killed_between_batches == 1
        assert figures.failed_deliveries > 0 and figures.redeliveries > 0  # faults were felt

        # the ledger is the reference fold of every event produced, and verify agrees
        assert ledger_rows(soak.db) == expected_rows(events)
        figures.drifted_rows = soak.drift()
        assert figures.drifted_rows == 0
        stored = soak.db.run(lambda s: {r[0] for r in s.run("SELECT id FROM oasis_events")})
        figures.lost = sum(1 for e in events if e["id"] not in stored)
        assert figures.lost == 0

        # the offset is at the head, and nothing holds it back
        state = soak.db.run(status)
        assert state["status"]["backlog"] == 0 and state["status"]["lag_seconds"] == 0
        assert state["status"]["running"] is True

        # every unreadable event recorded exactly once per path; every bad message once
        recorded = rejections(soak.db)
        by_event = [(source, event_id) for source, event_id, _ in recorded if event_id]
        assert sorted(by_event) == sorted(expected_rejections(events))
        assert sum(1 for _, event_id, _ in recorded if event_id is None) == figures.bad_messages
        assert all(not readable(e) or e["id"] not in {i for _, i, _ in recorded} for e in events)

        # Pub/Sub: nothing left unacknowledged; every delivery that failed was redelivered
        # until one succeeded (the last answer for every message is a 2xx)
        assert figures.unacknowledged_left == 0
        assert all(200 <= code < 300 for code in soak.final_answers.values())
        assert len(soak.final_answers) == figures.published  # each message answered, at last 2xx
