import pytest

from ledger.tasks import BadQuery, decode_cursor, encode_cursor, parse_query


def test_cursor_round_trips_and_is_opaque() -> None:
    cursor = encode_cursor("VTID-0007")
    assert "VTID" not in cursor and decode_cursor(cursor) == "VTID-0007"
    for bad in ("", "***", encode_cursor("x")[:-3] + "!!", "eyJ4IjogMX0"):
        with pytest.raises(BadQuery):
            decode_cursor(bad)


def test_query_defaults_and_normalised_vtid() -> None:
    q = parse_query({"vtid": "vtid-0521"})
    assert (q.limit, q.after, q.filters["vtid"], q.filters["status"]) == (
        100,
        None,
        "VTID-0521",
        None,
    )
    assert parse_query({"limit": "1000"}).limit == 1000


@pytest.mark.parametrize("after", ["a\x00b", "\ud800"])
def test_forged_cursor_with_unstorable_text_is_refused(after: str) -> None:
    import base64
    import json

    forged = base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()
    with pytest.raises(BadQuery):
        decode_cursor(forged)
