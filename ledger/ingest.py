"""Ingest (`POST /api/v1/events/ingest`, `python -m ledger ingest`): store events in
oasis_events, then publish them.

The edge (strict JSON, the size limit) is here; deciding whether an event can become a row and
storing it is `ledger_ingest_event` in sql/, by the same rules as every other path.
Many events (NDJSON) go in chunks, one statement and one transaction per chunk.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ledger import ledger_rejections, logs, oasis_events
from ledger.db import Database, Refused, Session, text_array
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
    line: int | None = None
    """The line of the input it came from (NDJSON), named in a refusal's answer."""

    @property
    def refused(self) -> bool:
        """Rejected (unreadable, not for producers) or a conflict (its id holds other content)."""
        return self.outcome in ("rejected", "conflict")

    @property
    def http_status(self) -> int:
        return {"rejected": 400, "conflict": 409}.get(self.outcome, 200)

    def as_dict(self) -> dict[str, Any]:
        if self.refused:
            refused: dict[str, Any] = {"ok": False, "error": self.reason, "event_id": self.event_id}
            if self.line is not None:
                refused["line"] = self.line
            return {**refused, "conflict": True} if self.outcome == "conflict" else refused
        body: dict[str, Any] = {"ok": True, "event_id": self.event_id}
        if self.outcome == "duplicate":
            body["duplicate"] = True
        else:
            body["published"] = self.published
        return body


def refuse(db: Database, raw: bytes, reason: str, *, quiet: bool = False) -> Ingested:
    """Record a refused body with the reason its answer gives; `quiet` when the request's own
    summary line counts it (NDJSON)."""
    db.run(lambda s: ledger_rejections.record(s, source=SOURCE, reason=reason, raw=raw))
    if not quiet:
        log.warning("event rejected", extra={"reason": reason, "source": SOURCE, "rejected": 1})
    return Ingested("rejected", reason=reason)


def _stored(row: dict[str, Any], *, quiet: bool = False) -> Ingested:
    if row["outcome"] in ("rejected", "conflict") and not quiet:
        log.warning(
            f"event {row['outcome']}",
            extra={"reason": row["reason"], "event_id": row["event_id"], "source": SOURCE}
            | ({"rejected": 1} if row["outcome"] == "rejected" else {}),
        )
    return Ingested(
        row["outcome"],
        row["event_id"],
        row["reason"],
        wire=row["wire"],
        event_type=row["event_type"],
    )


def _store_one(
    db: Database,
    payload: str,
    received_at: datetime,
    caller: str | None,
    *,
    quiet: bool = False,
) -> Ingested:
    def work(session: Session) -> dict[str, Any]:
        [row] = session.call(
            oasis_events.INGEST, payload=payload, received_at=received_at, caller=caller
        )
        return row

    try:
        return _stored(db.run(work), quiet=quiet)
    except Refused as exc:
        return refuse(
            db, payload.encode(), f"database refused the event: {exc.reason}", quiet=quiet
        )


def _store_chunk(
    db: Database, payloads: list[str], received_at: datetime, caller: str | None
) -> list[Ingested]:
    """One statement for the chunk; if Postgres refuses one event, the chunk is stored again one
    event at a time so the others are kept and only that one is recorded."""

    def work(session: Session) -> list[dict[str, Any]]:
        return session.call(
            oasis_events.INGEST_MANY,
            payloads=text_array(list(payloads)),
            received_at=received_at,
            caller=caller,
        )

    try:
        return [_stored(row, quiet=True) for row in db.run(work)]
    except Refused:
        return [_store_one(db, payload, received_at, caller, quiet=True) for payload in payloads]


def _attributes(done: Ingested) -> dict[str, str]:
    return {"type": done.event_type or "", "event_id": done.event_id or ""}


def _publish(topic_path: str | None, done: Ingested) -> Ingested:
    return _publish_all(topic_path, [done])[0]


def _publish_all(topic_path: str | None, results: list[Ingested]) -> list[Ingested]:
    """Publish the stored events together (the client batches them), then wait for all; each
    result says whether its own publish succeeded. A failed publish loses nothing: the event is
    stored, and the sweep applies it."""
    todo = [n for n, done in enumerate(results) if done.outcome == "stored" and done.wire]
    if topic_path is None or not todo:
        return results
    from ledger import publisher

    out = list(results)
    try:
        futures = {
            n: publisher.publish_async(
                topic_path, (results[n].wire or "").encode("utf-8"), _attributes(results[n])
            )
            for n in todo
        }
    except Exception as exc:  # noqa: BLE001 - stored already; the sweep will apply them
        log.warning("publish failed; the sweep will apply the events", extra={"error": str(exc)})
        return out
    failed = 0
    first_error = ""
    for n, future in futures.items():
        try:
            future.result(timeout=publisher.PUBLISH_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - counted and logged once below
            failed += 1
            first_error = first_error or str(exc) or type(exc).__name__
            continue
        out[n] = replace(results[n], published=True)
    if failed:
        log.warning(
            "publish failed; the sweep will apply the events",
            extra={"failed": failed, "published": len(futures) - failed, "error": first_error},
        )
    return out


def ingest_one(
    db: Database, raw: bytes, topic_path: str | None, caller: str | None = None
) -> Ingested:
    """Store one event (a JSON object), then publish it. Store first: a failed publish loses
    nothing, the sweep still applies the event. `caller` is stored as ingested_by (None: the
    database user)."""
    try:
        payload = edge_text(raw)
    except Rejected as exc:
        return refuse(db, raw, exc.reason)
    return _publish(topic_path, _store_one(db, payload, datetime.now(UTC), caller))


MAX_LINES = 5000
"""Events one NDJSON request may carry; more is a 413 (a 1 MiB body of `x` lines was half a
million round trips)."""


class TooManyLines(ValueError):
    pass


def count_lines(lines: list[bytes]) -> int:
    """The events an NDJSON body holds (blank lines are passed over); TooManyLines past the cap."""
    count = sum(1 for line in lines if line.strip())
    if count > MAX_LINES:
        raise TooManyLines(f"{count} events in one request; the limit is {MAX_LINES}")
    return count


def ingest_lines(
    db: Database, lines: Iterable[bytes], topic_path: str | None, caller: str | None = None
) -> Iterator[Ingested]:
    """Store events given one JSON object per line (blank lines are passed over), in chunks;
    one result per event, in order. Lines the edge refuses are recorded together, one
    statement per chunk; the request logs one summary line, not one line per event."""
    received_at = datetime.now(UTC)
    pending: list[tuple[int, str]] = []
    refused: list[tuple[int, str, bytes]] = []
    results: dict[int, Ingested] = {}
    tally: Counter[str] = Counter()
    reasons: list[str] = []
    count = 0
    line_of: dict[int, int] = {}

    def flush() -> Iterator[Ingested]:
        if refused:
            batch = [(reason, raw) for _, reason, raw in refused]
            db.run(lambda s: ledger_rejections.record_many(s, SOURCE, batch))
            results.update((n, Ingested("rejected", reason=reason)) for n, reason, _ in refused)
            refused.clear()
        if pending:
            stored = _store_chunk(db, [payload for _, payload in pending], received_at, caller)
            results.update(zip((n for n, _ in pending), stored, strict=True))
            pending.clear()
        ordered = [replace(results.pop(n), line=line_of.pop(n)) for n in sorted(results)]
        for done in _publish_all(topic_path, ordered):
            tally[done.outcome] += 1
            if done.refused and len(reasons) < 3:
                reasons.append(done.reason or "")
            yield done

    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        line_of[count] = number
        line = raw.rstrip(b"\r\n")
        try:
            pending.append((count, edge_text(line)))
        except Rejected as exc:
            refused.append((count, exc.reason, line))
        count += 1
        if len(pending) + len(refused) >= CHUNK:
            yield from flush()
    yield from flush()
    level = logging.WARNING if tally["rejected"] or tally["conflict"] else logging.INFO
    log.log(level, "events ingested", extra={"source": SOURCE, **tally, "first_reasons": reasons})
