"""The sweep's offset: the `projection_offsets` row `vtid_ledger_writer`. The sweep's batch
statement (ledger_sweep_batch) advances it in the same transaction as the ledger changes."""

from __future__ import annotations

from typing import Any

from ledger.db import Session
from ledger.oasis_events import Position

PROJECTOR = "vtid_ledger_writer"

ENSURE = """
INSERT INTO projection_offsets (projector_name, events_processed) VALUES (:name, 0)
ON CONFLICT (projector_name) DO NOTHING"""

READ = """
SELECT position_tx_id::text AS position_tx_id, position_seq, events_processed, last_event_id,
       last_event_time, last_processed_at, created, updated, skipped, errors,
       -- ledger_sweep_batch counts stale events into events_processed only: stale is the rest.
       coalesce(events_processed, 0) - coalesce(created, 0) - coalesce(updated, 0)
           - coalesce(skipped, 0) - coalesce(errors, 0) AS stale,
       last_error, last_error_at
FROM projection_offsets WHERE projector_name = :name"""

MARK_FAILED = """
UPDATE projection_offsets SET last_error = :error, last_error_at = now()
WHERE projector_name = :name"""

MARK_OK = """
UPDATE projection_offsets SET last_error = NULL
WHERE projector_name = :name AND last_error IS NOT NULL"""

RESET = """
UPDATE projection_offsets SET position_tx_id = NULL, position_seq = NULL,
    events_processed = 0, created = 0, updated = 0, skipped = 0, errors = 0,
    last_event_id = NULL, last_event_time = NULL, last_processed_at = NULL, last_error = NULL
WHERE projector_name = :name"""


def read(session: Session) -> dict[str, Any]:
    """The offset row, created if missing. Only the sweep (under its advisory lock) moves it, so
    reading needs no row lock: an idle sweep then writes nothing at all."""
    row = session.one(READ, name=PROJECTOR)
    if row is None:
        session.run(ENSURE, name=PROJECTOR)
        row = session.one(READ, name=PROJECTOR)
    assert row is not None
    return row


def position_of(row: dict[str, Any]) -> Position:
    if row["position_tx_id"] is None:
        return Position()
    return Position(int(row["position_tx_id"]), int(row["position_seq"] or 0))


def position(session: Session) -> Position:
    """Where the sweep is."""
    return position_of(read(session))


def mark_failed(session: Session, error: str) -> None:
    session.run(MARK_FAILED, name=PROJECTOR, error=error[:2000])


def mark_ok(session: Session) -> None:
    session.run(MARK_OK, name=PROJECTOR)


def reset(session: Session) -> None:
    session.run(ENSURE, name=PROJECTOR)
    session.run(RESET, name=PROJECTOR)
