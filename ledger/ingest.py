"""Ingest (`POST /api/v1/events/ingest`, `python -m ledger ingest`): store events in
oasis_events, then publish them.

The edge (strict JSON, the size limit) is here; deciding whether an event can become a row and
storing it is `ledger_ingest_event` in migrations/, by the same rules as every other path.
Many events (NDJSON) go in chunks, one statement and one transaction per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ledger import ledger_rejections, logs, oasis_events
from ledger.db import Database, Refused, Session
from ledger.events import Rejected, edge_text

SOURCE = "ingest"
CHUNK = 1000
log = logs.get("ledger.ingest")


@dataclass(frozen=True, slots=True)
class Ingested:
    """What became of one event: stored, duplicate (its id is stored already) or rejected."""

    outcome: str
    event_id: str | None = None
    reason: str | None = None
    published: bool = False
    wire: str | None = None
    """The stored event's canonical JSON text: what is published, byte for byte."""
    event_type: str | None = None

    @property
    def refused(self) -> bool:
        """Rejected (unreadable, not for producers) or a conflict (its id holds other content)."""
        return self.outcome in ("rejected", "conflict")

    @property
    def http_status(self) -> int:
        return {"rejected": 400, "conflict": 409}.get(self.outcome, 200)

    def as_dict(self) -> dict[str, Any]:
        if self.refused:
            refused = {"ok": False, "error": self.reason, "event_id": self.event_id}
            return {**refused, "conflict": True} if self.outcome == "conflict" else refused
        body: dict[str, Any] = {"ok": True, "event_id": self.event_id}
        if self.outcome == "duplicate":
            body["duplicate"] = True
        else:
            body["published"] = self.published
        return body


def _record(db: Database, raw: bytes, reason: str) -> Ingested:
    db.run(lambda s: ledger_rejections.record(s, source=SOURCE, reason=reason, raw=raw))
    log.warning("event rejected", extra={"reason": reason, "source": SOURCE})
    return Ingested("rejected", reason=reason)


def _stored(row: dict[str, Any]) -> Ingested:
    if row["outcome"] in ("rejected", "conflict"):
        log.warning(
            f"event {row['outcome']}",
            extra={"reason": row["reason"], "event_id": row["event_id"], "source": SOURCE},
        )
    return Ingested(
        row["outcome"],
        row["event_id"],
        row["reason"],
        wire=row["wire"],
        event_type=row["event_type"],
    )


def _store_one(db: Database, payload: str, received_at: datetime) -> Ingested:
    def work(session: Session) -> dict[str, Any]:
        [row] = session.call(oasis_events.INGEST, payload=payload, received_at=received_at)
        return row

    try:
        return _stored(db.run(work))
    except Refused as exc:
        return _record(db, payload.encode(), f"database refused the event: {exc.reason}")


def _store_chunk(db: Database, payloads: list[str], received_at: datetime) -> list[Ingested]:
    """One statement for the chunk; if Postgres refuses one event, the chunk is stored again one
    event at a time so the others are kept and only that one is recorded."""

    def work(session: Session) -> list[dict[str, Any]]:
        return session.call(oasis_events.INGEST_MANY, payloads=payloads, received_at=received_at)

    try:
        return [_stored(row) for row in db.run(work)]
    except Refused:
        return [_store_one(db, payload, received_at) for payload in payloads]


def _publish(topic_path: str | None, done: Ingested) -> Ingested:
    if topic_path is None or done.outcome != "stored" or done.wire is None:
        return done
    from ledger import publisher

    try:
        attributes = {"type": done.event_type or "", "event_id": done.event_id or ""}
        publisher.publish(topic_path, done.wire.encode("utf-8"), attributes)
    except Exception as exc:  # noqa: BLE001 - stored already; the sweep will apply it
        log.warning("publish failed; the sweep will apply the event", extra={"error": str(exc)})
        return done
    return replace(done, published=True)


def ingest_one(db: Database, raw: bytes, topic_path: str | None) -> Ingested:
    """Store one event (a JSON object), then publish it. Store first: a failed publish loses
    nothing, the sweep still applies the event."""
    try:
        payload = edge_text(raw)
    except Rejected as exc:
        return _record(db, raw, exc.reason)
    return _publish(topic_path, _store_one(db, payload, datetime.now(UTC)))


def ingest_lines(
    db: Database, lines: Iterable[bytes], topic_path: str | None
) -> Iterator[Ingested]:
    """Store events given one JSON object per line (blank lines are passed over), in chunks;
    one result per event, in order."""
    received_at = datetime.now(UTC)
    pending: list[tuple[int, str]] = []
    results: dict[int, Ingested] = {}
    count = 0

    def flush() -> Iterator[Ingested]:
        if pending:
            stored = _store_chunk(db, [payload for _, payload in pending], received_at)
            results.update(zip((n for n, _ in pending), stored, strict=True))
            pending.clear()
        for n in sorted(results):
            yield _publish(topic_path, results.pop(n))

    for raw in lines:
        if not raw.strip():
            continue
        try:
            pending.append((count, edge_text(raw.rstrip(b"\r\n"))))
        except Rejected as exc:
            results[count] = _record(db, raw.rstrip(b"\r\n"), exc.reason)
        count += 1
        if len(pending) >= CHUNK:
            yield from flush()
    yield from flush()
