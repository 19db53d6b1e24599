import pytest

from ledger.vtid import extract, is_valid, normalise

VALID = [
    "VTID-0521",
    "VTID-01233",
    "VTID-2025-0001",
    "DEV-OASIS-0010",
    "VTID-TEST-0521",
    "VTID-0521-TEST-0001",
    "VTID-0522-1",
]
INVALID = ["VTID-ABC", "SYSTEM-HEALTH", "0521", "VTID 0521", "", "VTID-", "-0521", "VTID-0521-"]


@pytest.mark.parametrize("vtid", VALID)
def test_spec_valid_vtids_are_accepted(vtid: str) -> None:
    assert is_valid(vtid)
    assert extract(vtid.lower(), {}, None, None) == vtid


@pytest.mark.parametrize("vtid", INVALID)
def test_spec_invalid_vtids_are_refused(vtid: str) -> None:
    assert not is_valid(vtid)


def test_non_ascii_digits_are_not_digits() -> None:
    assert not is_valid("VTID-٠٥٢١")
    assert extract(None, {}, None, "see VTID-٠٥٢١") is None


def test_trailing_newline_is_not_valid() -> None:
    assert not is_valid("VTID-0521\n")
    assert normalise(" vtid-0521\n") == "VTID-0521"


def test_sources_are_taken_in_order() -> None:
    msg = "deploying VTID-0004 now"
    assert extract("VTID-0001", {"vtid": "VTID-0002"}, "VTID-0003", msg) == "VTID-0001"
    assert extract(None, {"vtid": "VTID-0002"}, "VTID-0003", msg) == "VTID-0002"
    assert extract(None, {}, "VTID-0003", msg) == "VTID-0003"
    assert extract(None, {}, None, msg) == "VTID-0004"
    assert extract(None, {}, "not-a-vtid", msg) == "VTID-0004"


def test_present_invalid_vtid_does_not_fall_through() -> None:
    assert extract("SYSTEM-HEALTH", {}, "VTID-0003", "VTID-0004") is None
    assert extract(None, {"vtid": "nope"}, "VTID-0003", "VTID-0004") is None


def test_message_pattern_needs_word_boundaries() -> None:
    assert extract(None, {}, None, "VTID-012345 is too long") is None
    assert extract(None, {}, None, "fix VTID-0521-2 today") == "VTID-0521-2"
    assert extract(None, {}, None, "xVTID-0521") is None
    assert extract(None, {}, None, "vtid-0521 lower case") is None


def test_non_string_metadata_vtid_is_not_a_candidate() -> None:
    assert extract(None, {"vtid": 521}, None, "VTID-0521") == "VTID-0521"
