"""Rejected events, stored with their raw payload and reason (`ledger_rejections`)."""

from __future__ import annotations

import hashlib
from typing import Any

from ledger.db import Session

RECORD = """
INSERT INTO ledger_rejections (source, reason, event_id, message_id, raw, fingerprint)
VALUES (:source, :reason, :event_id, :message_id, :raw, :fingerprint)
ON CONFLICT (fingerprint) DO NOTHING"""

RECENT = """
SELECT id, received_at, source, reason, event_id, message_id, octet_length(raw) AS size,
       convert_from(substring(raw FROM 1 FOR 200), 'SQL_ASCII') AS raw_start
FROM ledger_rejections ORDER BY id DESC LIMIT :limit"""


def _storable(text: str | None, limit: int) -> str | None:
    # The reason and id may quote the very input that was refused for holding NUL or surrogates.
    if text is None:
        return None
    clean = text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()
    return clean[:limit]


def recent(session: Session, limit: int) -> list[dict[str, Any]]:
    """The newest rejections, with the start of each raw payload."""
    return session.rows(RECENT, limit=limit)


def fingerprint(source: str, raw: bytes) -> str:
    return hashlib.sha256(source.encode() + b"\x00" + raw).hexdigest()


def record(
    session: Session,
    *,
    source: str,
    reason: str,
    raw: bytes,
    event_id: str | None = None,
    message_id: str | None = None,
) -> None:
    """Store one rejection. A redelivery of the same payload from the same source is stored once."""
    session.run(
        RECORD,
        source=source,
        reason=_storable(reason, 2000),
        event_id=_storable(event_id, 500),
        message_id=_storable(message_id, 500),
        raw=raw,
        fingerprint=fingerprint(source, raw),
    )
