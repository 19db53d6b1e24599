"""Rejected events in `ledger_rejections`, kept with their raw payload and reason: one row per
(source, payload), so a redelivered bad message is recorded once (ledger_reject)."""

from __future__ import annotations

import hashlib
from typing import Any

from ledger.db import Session, text_array

RECORD = "SELECT ledger_reject(:source, :reason, :raw, :event_id, :message_id)"

# Many at once (the refused lines of an NDJSON request): one statement. Payloads travel as hex.
RECORD_MANY = """
SELECT count(ledger_reject(:source, r.reason, decode(r.raw, 'hex'), NULL))
FROM unnest(CAST(:reasons AS text[]), CAST(:raws AS text[])) AS r(reason, raw)"""

# A payload past the prefix kept is cut here, so that megabytes need not travel to be recorded.
RECORD_DIGESTED = """
SELECT ledger_reject_digested(:source, :reason, :prefix, :size, :sha256, :fingerprint,
    :event_id, :message_id)"""
PREFIX_BYTES = 64 * 1024

# A Pub/Sub message refused at the edge: counted by the real-time projector.
COUNT_PUSHED = "SELECT ledger_count_realtime('rejected', NULL)"

PRUNE = "SELECT ledger_prune_rejections() AS pruned"

RECENT = """
SELECT id, received_at, source, reason, event_id, message_id,
       coalesce(raw_size, octet_length(raw)) AS size, raw_sha256,
       -- escape, not convert_from: the cut may split a character, and a payload need not
       -- be UTF-8 at all (it was refused for it, perhaps): bytes past ASCII show as octal escapes
       encode(substring(raw FROM 1 FOR 200), 'escape') AS raw_start
FROM ledger_rejections
WHERE (CAST(:source AS text) IS NULL OR source = :source)
  AND (CAST(:since AS timestamptz) IS NULL OR received_at >= :since)
  AND (CAST(:reason AS text) IS NULL OR strpos(reason, :reason) > 0)
ORDER BY id DESC LIMIT :limit"""

# The rejections kept, by path and by the kind of reason. A reason quotes the value it refused
# (a time, an id, a size), so the text itself would make a label per event: each is put in one
# of a fixed set of kinds (REASON_KINDS), the first pattern it matches, in this order.
BY_REASON = """
SELECT source, CASE
    WHEN reason LIKE 'database refused the event%' THEN 'database_refused'
    WHEN reason LIKE '%from the future%' THEN 'from_the_future'
    WHEN reason LIKE 'the writer''s own identity%' THEN 'own_identity'
    WHEN reason LIKE 'id % is taken by an event with other content%' THEN 'id_conflict'
    WHEN reason LIKE 'event is not valid JSON%' OR reason LIKE 'event is not valid UTF-8%'
        OR reason LIKE 'event must be a JSON object%' OR reason LIKE 'body %'
        THEN 'not_a_json_object'
    WHEN reason LIKE 'event JSON is % bytes%' OR reason LIKE 'event JSON nests deeper%'
        OR reason LIKE 'event JSON holds%' OR reason LIKE 'metadata has % keys%'
        THEN 'over_a_limit'
    WHEN reason LIKE 'event has no id%' OR reason LIKE 'event has no created_at%'
        OR reason LIKE '% is required%' THEN 'missing_field'
    WHEN reason LIKE '%not a valid VTID%' THEN 'invalid_vtid'
    WHEN reason LIKE 'created_at%' OR reason LIKE 'createdAt%' THEN 'bad_time'
    WHEN reason LIKE '% must be %' OR reason LIKE '% contains a NUL character%'
        OR reason LIKE '% is not valid Unicode%' THEN 'bad_field'
    ELSE 'other' END AS kind, count(*) AS n
FROM ledger_rejections GROUP BY 1, 2"""
REASON_KINDS = (
    "database_refused", "from_the_future", "own_identity", "id_conflict", "not_a_json_object",
    "over_a_limit", "missing_field", "invalid_vtid", "bad_time", "bad_field", "other",
)  # fmt: skip

# The payloads to ingest again, whole only (a cut prefix is not the event).
TO_REPLAY = """
SELECT id, raw, coalesce(raw_size, octet_length(raw)) = octet_length(raw) AS whole
FROM ledger_rejections WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id"""


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
    if len(raw) > PREFIX_BYTES:
        full = hashlib.sha256(raw).hexdigest()
        fingerprint = hashlib.sha256(source.encode() + b"\x00" + raw).hexdigest()
        session.run(
            RECORD_DIGESTED,
            source=source,
            reason=_storable(reason),
            prefix=raw[:PREFIX_BYTES],
            size=len(raw),
            sha256=full,
            fingerprint=fingerprint,
            event_id=_storable(event_id),
            message_id=_storable(message_id),
        )
        return
    session.run(
        RECORD,
        source=source,
        reason=_storable(reason),
        raw=raw,
        event_id=_storable(event_id),
        message_id=_storable(message_id),
    )


def record_many(session: Session, source: str, refused: list[tuple[str, bytes]]) -> None:
    session.run(
        RECORD_MANY,
        source=source,
        reasons=text_array([_storable(reason) for reason, _ in refused]),
        raws=text_array([raw.hex() for _, raw in refused]),
    )


def record_pushed(
    session: Session, reason: str, raw: bytes, event_id: str | None, message_id: str | None
) -> None:
    with session.transaction():
        record(
            session,
            source="pubsub",
            reason=reason,
            raw=raw,
            event_id=event_id,
            message_id=message_id,
        )
        session.call(COUNT_PUSHED)


def prune(session: Session) -> int:
    """Remove rejections older than the retention (ledger_settings), a bounded number a call."""
    return int(session.scalar(PRUNE))


def recent(
    session: Session,
    limit: int,
    *,
    source: str | None = None,
    since: Any = None,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """The newest rejections, with the start of each raw payload; filtered by source, by when
    they were received, by a part of their reason."""
    return session.rows(RECENT, limit=limit, source=source, since=since, reason=reason)


def by_reason(session: Session) -> dict[str, dict[str, int]]:
    """How many rejections are kept, by source and then by kind of reason (BY_REASON)."""
    kept: dict[str, dict[str, int]] = {}
    for row in session.rows(BY_REASON):
        kept.setdefault(row["source"], {})[row["kind"]] = int(row["n"])
    return kept


def to_replay(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    return session.rows(TO_REPLAY, ids=text_array([str(i) for i in ids]))
