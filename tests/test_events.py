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
        # Every present alias must be a string, the ones behind the first present one too.
        (event(topic="task_started", event=5), "event must be a string"),
        (event(service="ci", source={"x": 1}), "source must be a string"),
        (event(createdAt=5), "createdAt must be an ISO-8601 string"),
        (event(metadata={"a": 1}, payload=5), "payload must be a JSON object"),
        (event(metadata={"a": 1}, payload="not json"), "not valid JSON"),
        # Text Postgres cannot store, in a field no rule reads.
        (event(extra="\x00"), "NUL"),
        (event(extra={"k\x00": 1}), "NUL"),
        (event(extra=["\ud800"]), "surrogate"),
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


@pytest.mark.parametrize(
    ("text", "within"),
    [
        ('{"n": ' + "9" * 1000 + "}", True),
        ('{"n": ' + "9" * 1001 + "}", False),
        ('{"n": -' + "9" * 1001 + "}", False),
        ('{"n": 0.' + "0" * 998 + "1}", True),  # 1,000 digits as jsonb prints it
        ('{"n": 1e-1000}', False),  # 0.000…1: 1,001 digits
        ('{"n": 1e999}', True),
        ('{"n": 1e1000}', False),
        ('{"n": 0e131072}', True),  # jsonb keeps it as 0
        ("[" * 64 + "]" * 64, True),
        ("[" * 65 + "]" * 65, False),
        ("[" * 100000 + "]" * 100000, False),
    ],
)
def test_the_edge_limits_digits_and_depth(text: str, within: bool) -> None:
    if within:
        edge_text(text.encode())
    else:
        with pytest.raises(Rejected, match=r"digits|levels"):
            edge_text(text.encode())


def test_the_limits_hold_for_the_decoded_event_too() -> None:
    """What the raw text cannot show (a JSON string holding metadata) the decoder checks: the
    event is level 1 and its metadata level 2."""
    with pytest.raises(Rejected, match="digits"):
        decode(event(metadata='{"n": ' + "1" * 1001 + "}"))
    with pytest.raises(Rejected, match="levels"):
        decode(event(metadata={"x": _nest(63)}))
    decode(event(metadata={"x": _nest(62)}))
    with pytest.raises(Rejected, match="256 KiB"):
        decode(event(message="x" * MAX_EVENT_BYTES))


def _nest(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def test_a_long_fraction_is_read_to_its_100th_digit() -> None:
    """Postgres cannot read a time this long; both rule sets drop the digits past the 100th."""
    e = decode(event(created_at=f"2025-11-29T10:00:00.{'4' * 99}6{'9' * 200}Z"))
    assert e.created_at.microsecond == 444444


def test_a_vtid_is_at_most_64_characters() -> None:
    from ledger.vtid import extract

    assert extract("VTID-" + "0" * 59, {}, None, None) == "VTID-" + "0" * 59
    assert extract("VTID-" + "0" * 60, {}, None, None) is None
