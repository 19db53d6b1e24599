import base64
from datetime import UTC, datetime

import pytest

from ledger.pubsub_message import BadMessage, unwrap


def envelope(**message: object) -> dict[str, object]:
    return {"message": message, "subscription": "projects/p/subscriptions/s"}


def test_push_envelope() -> None:
    m = unwrap(
        envelope(
            data=base64.b64encode(b'{"id":"1"}').decode(),
            messageId="42",
            publishTime="2025-11-29T10:00:00.123456789Z",
            attributes={"a": "b"},
        )
    )
    assert (m.data, m.message_id, dict(m.attributes)) == (b'{"id":"1"}', "42", {"a": "b"})
    assert m.publish_time == datetime(2025, 11, 29, 10, 0, 0, 123457, tzinfo=UTC)


def test_missing_publish_time_uses_the_fallback() -> None:
    fallback = datetime(2025, 1, 1, tzinfo=UTC)
    assert unwrap(envelope(data=""), fallback).publish_time == fallback


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not JSON"),
        ({"nothing": 1}, "no message"),
        (envelope(data=5), "base64 string"),
        (envelope(data="!!!"), "not valid base64"),
    ],
)
def test_unreadable_envelopes(data: object, reason: str) -> None:
    with pytest.raises(BadMessage, match=reason) as info:
        unwrap(data)
    assert info.value.raw
