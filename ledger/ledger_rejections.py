"""Rejected events in `ledger_rejections`, kept with their raw payload and reason: one row per
(source, payload), so a redelivered bad message is recorded once (ledger_reject)."""

from __future__ import annotations

from typing import Any

from ledger.db import Session

RECORD = "SELECT ledger_reject(:source, :reason, :raw, :event_id, :message_id)"

# A Pub/Sub message refused at the edge: recorded and counted by the real-time projector.
RECORD_PUSHED = """
SELECT ledger_reject('pubsub', :reason, :raw, :event_id, :message_id),
       ledger_count_realtime('rejected', NULL)"""

RECENT = """
SELECT id, received_at, source, reason, event_id, message_id, octet_length(raw) AS size,
       convert_from(substring(raw FROM 1 FOR 200), 'SQL_ASCII') AS raw_start
FROM ledger_rejections ORDER BY id DESC LIMIT :limit"""


def _storable(text: str | None) -> str | None:
    # The reason and id may quote the very input that was refused for holding NUL or surrogates.
    if text is None:
        return None
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()


def record(
    session: Session,
    *,
    source: str,
    reason: str,
    raw: bytes,
    event_id: str | None = None,
    message_id: str | None = None,
) -> None:
    session.run(
        RECORD,
        source=source,
        reason=_storable(reason),
        raw=raw,
        event_id=_storable(event_id),
        message_id=_storable(message_id),
    )


def record_pushed(
    session: Session, reason: str, raw: bytes, event_id: str | None, message_id: str | None
) -> None:
    session.call(
        RECORD_PUSHED,
        reason=_storable(reason),
        raw=raw,
        event_id=_storable(event_id),
        message_id=_storable(message_id),
    )


def recent(session: Session, limit: int) -> list[dict[str, Any]]:
    """The newest rejections, with the start of each raw payload."""
    return session.rows(RECENT, limit=limit)
