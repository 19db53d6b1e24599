"""The rules in Postgres (migrations/) against the Python reference, rule by rule, on generated
input that reaches each trap. Runs in an ICU-collated database when the server has ICU."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.db import Database, Refused
from ledger.events import STRING_FIELDS, Rejected, decode, digest, jsonb_text, parse_time
from ledger.fold import COLUMN_KEYS, COLUMN_REGISTERS, WRITER_KEYS, event_key
from ledger.task_status import map_status, priority
from ledger.vtid import extract
from tests.conftest import database_examples, json_text
from tests.strategies import TIMES, TYPES, raw_events

RULES = database_examples(1.0)
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
TRAPS = " \u00a0\u2028\u0131\u212a\u00e9\u017f\x01\x85_"  # NBSP, dotless i, Kelvin, é, long s
STORABLE = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
vtid_text = st.text(alphabet="vtidVTID-0123456789ABCz" + TRAPS, max_size=16)


def sql(db: Database, statement: str, **params: Any) -> Any:
    return db.run(lambda s: s.scalar(statement, **params))


def test_sql_trims_what_python_strips(db: Database) -> None:
    padded = f"{WHITESPACE}x{WHITESPACE}"
    assert sql(db, "SELECT ledger_trim(:t)", t=padded) == padded.strip() == "x"


@RULES
@given(vtid_text, st.sampled_from([{}, {"vtid": 5}, {"vtid": "dev-oasis-0010"}]), vtid_text,
       st.text(alphabet="VTID-0123456789 xé_" + TRAPS, max_size=24) | st.none())  # fmt: skip
@example("vt\u0131d-0521", {}, "", None)  # ICU upper-cases the dotless i to I
@example("", {}, "", "\u00e9VTID-0521")  # a non-ASCII letter is no word character
@example("", {}, "", "VTID-012345")  # too many digits: no match, not VTID-01234
def test_vtid_extraction(
    db: Database, vtid: str, metadata: dict[str, Any], ref: str, message: str | None
) -> None:
    expected = extract(vtid or None, metadata, ref or None, message)
    got = sql(
        db,
        "SELECT ledger_vtid_of(:v, CAST(:m AS jsonb), :r, :msg)",
        v=vtid or None,
        m=json.dumps(metadata),
        r=ref or None,
        msg=message,
    )
    assert got == expected


@RULES
@given(st.sampled_from(TYPES) | st.text(STORABLE, max_size=12), st.sampled_from(["success",
       " ERROR ", "bloc\u212aed", "Cancelled", "queued"]) | st.text(STORABLE, max_size=8)
       | st.none())  # fmt: skip
@example("TAS\u212a_CREATED", None)  # the Kelvin sign lower-cases to 'k' only in Python
def test_status_mapping_and_priority(
    db: Database, event_type: str | None, status: str | None
) -> None:
    got = db.run(
        lambda s: s.one(
            "SELECT ledger_status_of(:t, :s) AS mapped, "
            "ledger_priority(ledger_status_of(:t, :s)) AS p",
            t=event_type,
            s=status,
        )
    )
    assert got == {
        "mapped": map_status(event_type, status),
        "p": priority(map_status(event_type, status)),
    }


time_text = st.one_of(
    st.sampled_from(TIMES),
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,12})?)?"
        r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?\Z"
    ),
    st.sampled_from(["now", "epoch", "2025-11-29T24:00:00Z", "2025-02-29", "0000-01-01",
                     "9999-12-31T23:59:59.9999999Z", "0001-01-01T00:30:00+01:00", "20251129",
                     "2025-11-29T10:00:00+16:00", "2025-11-29t10:00:00z"]),
)  # fmt: skip


@RULES
@given(time_text)
@example("2025-11-29T10:00:00." + "1" * 130 + "Z")  # too long for Postgres's own reader
@example("2025-11-29T10:00:00." + "0" * 6 + "5" + "0" * 93 + "1" * 30)
def test_times_read_as_postgres_reads_them(db: Database, text: str) -> None:
    try:
        expected: datetime | None = parse_time(text)
    except Rejected:
        expected = None
    assert sql(db, "SELECT ledger_parse_time(:t)", t=text) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=STORABLE),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='ab\u00e9\x01"\\ ', max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@RULES
@given(json_values)
def test_jsonb_text_and_the_digest(db: Database, value: Any) -> None:
    text = jsonb_text(value)
    metadata = {"v": value}
    fields = {name: None for name in ("type", "status", "vtid", "message", "title", "ref",
              "layer", "module", "kind", "tenant", "notes")}  # fmt: skip
    fields.update(service='a (b), "c"\\', message=" ", metadata=metadata)
    got = db.run(
        lambda s: s.one(
            "SELECT CAST(:t AS jsonb)::text AS text, ledger_digest(NULL, :service, NULL, NULL, "
            ":message, NULL, NULL, NULL, NULL, NULL, NULL, NULL, CAST(:m AS jsonb)) AS digest",
            t=text,
            service=fields["service"],
            message=fields["message"],
            m=jsonb_text(metadata),
        )
    )
    assert got == {"text": text, "digest": digest(fields)}


@RULES
@given(raw_events(readable=False), st.sampled_from([None, "2025-11-29T08:00:00Z"]))
@example({"id": "a", "topic": "task_started", "event": 5}, None)
@example({"id": "a", "created_at": "2025-11-29T10:00:00Z", "source": {"x": 1}}, None)
@example({"id": "a", "created_at": "2025-11-29T10:00:00Z", "createdAt": 5}, None)
@example({"id": "a", "created_at": "2025-11-29", "metadata": {}, "payload": 5}, None)
@example({"id": "a", "created_at": "2025-11-29", "extra": "\x00"}, None)
@example({"id": "a", "created_at": "2025-11-29", "extra": "\ud800"}, None)
@example({"id": "a", "created_at": "2025-11-29", "metadata": '{"n": ' + "1" * 1001 + "}"}, None)
@example({"id": "a", "created_at": "2025-11-29", "vtid": "VTID-" + "0" * 60}, None)
@example({"id": "a", "created_at": "2025-11-29T10:00:00." + "1" * 130}, None)
def test_decoding_json_events(db: Database, raw: dict[str, Any], fallback: str | None) -> None:
    fallback_time = parse_time(fallback) if fallback else None
    try:
        event = decode(raw, default_time=fallback_time)
    except Rejected:
        event = None
    try:
        got = decode_in_sql(db, raw, fallback_time)
    except Refused:  # jsonb cannot hold it (a NUL, a lone surrogate): the path records it
        assert event is None
        return
    assert got is not None
    assert (got["reason"] is None) == (event is not None), got["reason"]
    if event is None:
        return
    assert (got["id"], got["created_at"], got["type"], got["service"], got["status"]) == (
        event.id,
        event.created_at,
        event.type,
        event.service,
        event.status,
    )
    assert got["metadata"] == jsonb_text(event.metadata)
    assert got["task_vtid"] == extract(event.vtid, event.metadata, event.ref, event.message)
    assert got["mapped_status"] == map_status(event.type, event.status)
    assert got["digest"] == event.digest


def decode_in_sql(db: Database, raw: Any, fallback_time: datetime | None) -> Any:
    return db.run(
        lambda s: s.one(
            "SELECT e.reason, e.id, e.created_at, e.type, e.service, e.status, e.metadata::text "
            "AS metadata, e.task_vtid, e.mapped_status, e.key, ledger_digest(e.type, e.service, "
            "e.status, e.vtid, e.message, e.title, e.ref, e.layer, e.module, e.kind, e.tenant, "
            "e.notes, e.metadata) AS digest "
            "FROM ledger_decode_json(CAST(:e AS jsonb), :fallback) AS e",
            e=json_text(raw),
            fallback=fallback_time,
        )
    )


@RULES
@given(st.lists(st.tuples(st.sampled_from(TIMES), st.sampled_from(TYPES),
                          st.sampled_from(["a", "B", "é", "a\x01", "ab", "", "\x01"])),
                min_size=2, max_size=6))  # fmt: skip
def test_keys_sort_bytewise_as_python_sorts_tuples(
    db: Database, keys: list[tuple[str, str | None, str]]
) -> None:
    events = [decode({"id": i or "-", "created_at": t, "topic": ty}) for t, ty, i in keys]
    rows = db.run(
        lambda s: s.run(
            "SELECT n FROM unnest(CAST(:ts AS timestamptz[]), CAST(:ps AS int[]), "
            "CAST(:ids AS text[])) WITH ORDINALITY AS k(t, p, id, n) "
            'ORDER BY ledger_key(t, p, id) COLLATE "C"',
            ts=[e.created_at for e in events],
            ps=[event_key(e)[1] for e in events],
            ids=[e.id for e in events],
        )
    )
    by_sql = [int(r[0]) - 1 for r in rows]
    by_python = sorted(range(len(events)), key=lambda i: event_key(events[i])[:3])
    assert [event_key(events[i])[:3] for i in by_sql] == [
        event_key(events[i])[:3] for i in by_python
    ]


def test_ordering_without_collate_c_would_differ_here(db: Database) -> None:
    """The suite runs where a bare comparison differs from Python's: the traps are live."""
    icu = sql(db, "SELECT datlocprovider = 'i' FROM pg_database WHERE datname = current_database()")
    if not icu:
        pytest.skip("this server has no ICU; the traps are checked where it has")
    lower, upper = "a", "B"
    assert sql(db, "SELECT 'a' < 'B'") is True and (lower < upper) is False


def test_the_lists_of_names_are_one_in_sql_and_in_python(db: Database) -> None:
    """Each list of names the rules treat apart is kept once per language (functions of
    sql/30_event_rules.sql, constants of ledger/fold.py and ledger/events.py): the two agree."""
    with db.session() as s:
        assert frozenset(s.scalar("SELECT ledger_column_keys()")) == COLUMN_KEYS
        assert frozenset(s.scalar("SELECT ledger_writer_key_names()")) == WRITER_KEYS
        assert s.scalar("SELECT ledger_column_registers()") == list(COLUMN_REGISTERS)
        assert tuple(s.scalar("SELECT ledger_event_string_fields()")) == STRING_FIELDS
        for column, names in COLUMN_REGISTERS.items():
            for name in (*names, "other"):
                given = s.scalar(
                    "SELECT ledger_register_value(jsonb_build_object(CAST(:name AS text), 'x'), "
                    ":column)",
                    name=name,
                    column=column,
                )
                assert given == ("x" if name in names else None), (column, name)


def test_merging_a_row_with_itself_keeps_every_column_in_its_place(db: Database) -> None:
    """ledger_merge builds its state from the row with one positional ROW (for speed): with
    every column holding a value no other column holds, a swapped pair would show here."""
    with db.session() as s:
        s.run(
            "INSERT INTO vtid_ledger (vtid, status, service, environment, last_event_id, "
            "last_event_at, description, task_family, task_type, assigned_to, tenant, "
            "metadata, fold_newest, fold_founding, fold_owners) VALUES ('VTID-0001', 'status', "
            "'service', 'environment', 'last_event_id', '2025-11-29T00:00:00Z', 'description', "
            "'task_family', 'task_type', 'assigned_to', 'tenant', '{\"key\": \"metadata\"}', "
            "'fold_newest', 'fold_founding', '{\"key\": \"fold_owners\"}')"
        )
        merged = s.one(
            "SELECT m.* FROM vtid_ledger AS r, LATERAL ledger_merge(r, r) AS m "
            "WHERE r.vtid = 'VTID-0001'"
        )
    assert merged is not None
    for name in ("status", "service", "environment", "last_event_id", "description",
                 "task_family", "task_type", "assigned_to", "tenant", "fold_newest",
                 "fold_founding"):  # fmt: skip
        assert merged[name] == name, name
    assert merged["vtid"] == "VTID-0001" and merged["fold_base"] is None
    assert merged["fold_owners"] == {"key": "fold_owners"}
    assert merged["metadata"]["key"] == "metadata"
