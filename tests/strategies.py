"""Hypothesis strategies for raw OASIS events, built to reach the traps between Postgres and
Python: collation (ids and VTIDs that sort differently by locale than by code point), case
mapping beyond ASCII (the dotless i, the Kelvin sign), whitespace beyond ASCII, word boundaries
next to non-ASCII letters, jsonb's numbers (1.0 against 1, 1.50, huge integers), JSON null
against absent, Unicode, ids of any length, equal keys (few instants, so ties are common; the
same instant written with different zones and with more than six fractional digits), and
metadata that is not an object. Few VTIDs, so rows see many events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from ledger.events import Event, decode
from ledger.fold import Base

VTIDS = ["VTID-0001", "vtid-0002 ", "DEV-OASIS-0010", "\u00a0VTID-0001\u2028"]
# 64 characters is a VTID; 65 is none (and too long for the ledger's index).
LONG_VTIDS = ["VTID-" + "0" * 59, "VTID-" + "0" * 60]
# One instant, written differently, and its neighbours: ties between events are common.
TIMES = [
    "2025-11-29T10:00:00Z",
    "2025-11-29T12:00:00+02:00",
    "2025-11-29 10:00:00",
    "2025-11-29T10:00:00.0000001Z",  # rounds to 10:00:00 as Postgres rounds it
    "2025-11-29T10:00:00.9999995Z",  # rounds up into the next second
    "2025-11-29T10:00:01Z",
    "2025-11-29T09:59:59.123456789-00:00",
    # Longer than Postgres reads: digits past the 100th are dropped on every path.
    "2025-11-29T10:00:00." + "4" * 99 + "6" + "9" * 30 + "Z",
]
TYPES = [
    None,
    "task_created",
    "task.started",
    "TASK_COMPLETED",
    "tas\u212a_created",  # Kelvin sign: Python's lower() makes it 'k', Postgres's C lower doesn't
    "deployment_failed",
    "pr_closed",
    "custom_event",
]
STATUSES = [None, "success", " ERROR ", "cancelled", "queued", "odd", "bloc\u212aed", "info"]
# Ids that sort differently by code point than by a linguistic collation, and \x01 (the key's
# terminator byte), and ids that are prefixes of others.
IDS = st.sampled_from(["a", "B", "é", "a\x01", "ab", "Z", "e\u0301", "10", "9", "x" * 40])
TEXT = st.sampled_from([None, "", "alpha", "Beta", "\u00e9t\u00e9"])
NUMBERS = st.sampled_from(
    [
        Decimal("1.0"),
        1,
        Decimal("1.50"),
        Decimal("-0.0"),
        12345678901234567890,
        Decimal("1E+2"),
        Decimal("12345678901234567890.12345"),
        10**29 + 7,  # 30 digits
        Decimal("0E+131072"),  # zero, however large its exponent: one digit as jsonb keeps it
        int("9" * 1000),  # the most digits a number may have
        Decimal("1E-999"),  # 0.000…1: a thousand digits too
    ]
)


def nested(depth: int) -> Any:
    """A value `depth` levels deep (as a value of metadata, itself level 2 of the event)."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# Values at and past the edge's limits: 64 levels in all, 1,000 digits, 256 KiB of JSON.
EDGE_VALUES = st.sampled_from(
    [nested(62), nested(63), nested(80), int("9" * 1001), Decimal("1E-1000"),
     "x" * (256 * 1024 - 600), "x" * (256 * 1024)]
)  # fmt: skip
META_KEYS = [
    "description",
    "summary",
    "taskFamily",
    "task_type",
    "assignee",
    "assigned_to",
    "environment",
    "env",
    "tenant",
    "branch",
    "Branch",
    "\u00e9tat",
    "autoCreated",
    "lastEventType",
    "vtid",
]
META_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", "one", "Two", " ", "VTID-0002"]),
    NUMBERS,
    st.lists(NUMBERS, max_size=2),
    st.fixed_dictionaries({"n": st.none(), "k": NUMBERS}),
)
MESSAGES = st.sampled_from(
    [None, "deploying VTID-0002 now", "xVTID-0001", "\u00e9VTID-0001 ok", "VTID-00001x", "m"]
)


@st.composite
def raw_events(draw: st.DrawFn, vtids: list[str] = VTIDS, readable: bool = True) -> dict[str, Any]:
    metadata: Any = draw(st.dictionaries(st.sampled_from(META_KEYS), META_VALUES, max_size=4))
    if not readable and draw(st.booleans()):
        # Under a key no column is made of: an indexed column refuses large values itself
        # (Postgres's index limit, which no reference can know; README, "Events Postgres
        # refuses").
        metadata["blob"] = draw(EDGE_VALUES)
    if not readable and draw(st.booleans()):
        metadata = draw(
            st.sampled_from(
                [[1], "not json", 5, '{"a": 1}', "  ", '{"n": ' + "1" * 1001 + "}",
                 '{"n": 1.50, "d": ' + "[" * 63 + "]" * 63 + "}"]
            )
        )  # fmt: skip
    raw: dict[str, Any] = {
        "id": draw(IDS),
        "created_at": draw(st.sampled_from(TIMES)),
        "vtid": draw(
            st.one_of(st.sampled_from(vtids), st.sampled_from([None, "VTID-ABC", *LONG_VTIDS]))
        ),
        "topic": draw(st.sampled_from(TYPES)),
        "status": draw(st.sampled_from(STATUSES)),
        "service": draw(st.sampled_from([None, "ci", "gateway"])),
        "title": draw(TEXT),
        "message": draw(MESSAGES),
        "layer": draw(TEXT),
        "kind": draw(TEXT),
        "tenant": draw(TEXT),
        "ref": draw(st.sampled_from([None, "dev-oasis-0010", "not a vtid"])),
        "metadata": metadata,
    }
    if not readable and draw(st.booleans()):
        raw[draw(st.sampled_from(["created_at", "message", "id"]))] = draw(
            st.sampled_from([5, "yesterday", "2025-02-30T00:00:00Z", None])
        )
    if not readable and draw(st.booleans()):
        # An alias behind a present field, of the wrong type; text Postgres cannot store.
        name, value = draw(
            st.sampled_from(
                [("event", 5), ("source", {"x": 1}), ("createdAt", 5), ("payload", 5),
                 ("payload", "not json"), ("payload", {"ok": 1}), ("extra", "\x00"),
                 ("extra", "\ud800"), ("extra", {"k\x00": 1})]
            )
        )  # fmt: skip
        raw[name] = value
    return raw


def raw_event_lists(
    vtids: list[str] = VTIDS, max_size: int = 12, readable: bool = True
) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(raw_events(vtids, readable), min_size=1, max_size=max_size)


def events(vtids: list[str] = VTIDS, max_size: int = 12) -> st.SearchStrategy[list[Event]]:
    return st.lists(raw_events(vtids).map(decode), min_size=1, max_size=max_size)


bases = st.one_of(
    st.none(),
    st.builds(
        Base,
        status=st.sampled_from([None, "active", "complete", "archived"]),
        service=TEXT,
        last_event_id=st.sampled_from([None, "a", "legacy"]),
        last_event_at=st.sampled_from([None, *TIMES]).map(
            lambda t: None if t is None else decode({"id": "x", "created_at": t}).created_at
        ),
        description=TEXT,
        task_family=TEXT,
        tenant=TEXT,
        metadata=st.one_of(
            st.none(), st.dictionaries(st.sampled_from(["branch", "owner"]), st.just("legacy"))
        ),
    ),
)
