import json
from datetime import UTC, datetime

import pytest

from ledger.events import MAX_EVENT_BYTES, Event, Rejected, decode, edge_text, parse_json
from tests.conftest import event


def test_aliases_and_absent_values() -> None:
    e = decode(
        {
            "id": "a",
            "createdAt": "2025-01-01T00:00:00",
            "topic": "",
            "event": None,
            "type": "task.created",
            "source": "ci",
            "payload": '{"x": 1}',
            "title": "",
        }
    )
    assert e.type == "task.created"
    assert e.service == "ci"
    assert e.metadata == {"x": 1}
    assert e.title is None
    assert e.created_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_service_defaults_to_unknown() -> None:
    assert decode(event(service=...)).service == "unknown"


def test_zone_is_kept_and_nanoseconds_rounded() -> None:
    e = decode(event(created_at="2025-11-29T12:00:00.123456789+02:00"))
    assert e.created_at == datetime(2025, 11, 29, 10, 0, 0, 123457, tzinfo=UTC)


def test_publish_time_stands_in_for_missing_created_at() -> None:
    t = datetime(2025, 5, 5, tzinfo=UTC)
    assert decode(event(created_at=...), default_time=t).created_at == t
    with pytest.raises(Rejected, match="no created_at"):
        decode(event(created_at=...))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([1, 2], "JSON object"),
        ({"vtid": "VTID-0001"}, "no id"),
        ({"id": 7, "created_at": "2025-01-01T00:00:00Z"}, "id must be a string"),
        (event(created_at="yesterday"), "not an ISO-8601"),
        (event(created_at=12345), "must be an ISO-8601 string"),
        (event(metadata=[1]), "must be a JSON object"),
        (event(metadata='"text"'), "must be a JSON object"),
        (event(metadata="{not json"), "not valid JSON"),
        (event(message={"a": 1}), "message must be a string"),
        (event(topic=5), "topic must be a string"),
        (event(message="a\x00b"), "NUL"),
        (event(metadata={"k": "a\x00b"}), "NUL"),
        (event(title="\ud800"), "surrogate"),
        (event(created_at="9999-12-31T23:00:00-05:00"), "between years 1 and 9999"),
    ],
)
def test_unreadable_events_are_rejected_with_a_reason(raw: object, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        decode(raw)


def test_rejection_keeps_the_event_id_when_known() -> None:
    with pytest.raises(Rejected) as info:
        decode(event(id="e-1", metadata=[1]))
    assert info.value.event_id == "e-1"


def decode_bytes(data: bytes) -> Event:
    """Bytes as the reference reads them: the edge's checks, then its decoder."""
    return decode(parse_json(edge_text(data)))


@pytest.mark.parametrize(
    "data",
    [b"not json", b"\xff\xfe\xfa", b'{"id": NaN}', b'{"id": "a", "x": 1e400}', b"[" * 100000],
)
def test_bad_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(Rejected):
        decode_bytes(data)


def test_huge_events_are_rejected() -> None:
    data = json.dumps(event(message="x" * MAX_EVENT_BYTES)).encode()
    with pytest.raises(Rejected, match="limit"):
        decode_bytes(data)


def test_own_sync_events_are_recognised() -> None:
    assert decode(event(service="oasis-projector", topic="ledger_sync")).is_own_sync
    assert not decode(event(service="other", topic="ledger_sync")).is_own_sync


def test_digest_distinguishes_content_not_order() -> None:
    a = decode({"id": "x", "created_at": "2025-01-01T00:00:00Z", "metadata": {"a": 1, "b": 2}})
    b = decode({"metadata": {"b": 2, "a": 1}, "created_at": "2025-01-01T00:00:00+00:00", "id": "x"})
    c = decode({"id": "x", "created_at": "2025-01-01T00:00:00Z", "metadata": {"a": 2}})
    assert a.digest == b.digest != c.digest


@pytest.mark.parametrize(
    ("fraction", "micros", "second"),
    [
        (".1234567", 123457, 0),  # Postgres rounds; truncating gave .123456
        (".1234565", 123456, 0),  # rint of the double, as Postgres does (not half-up)
        (".1234575", 123458, 0),
        (".9999995", 0, 1),  # rounds into the next second
        (".5", 500000, 0),
    ],
)
def test_fractions_beyond_microseconds_round_as_postgres_does(
    fraction: str, micros: int, second: int
) -> None:
    e = decode(event(created_at=f"2025-11-29T10:00:00{fraction}Z"))
    assert (e.created_at.second, e.created_at.microsecond) == (second, micros)
