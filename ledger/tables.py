"""Answers as text tables, for a person at a terminal (`--format table`, the default there).

JSON stays the format for everything else: it is what the HTTP API answers, byte for byte.
A table shows the same answer, cut to fit: a long value ends in `…`, and the JSON has it whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

WIDEST = 48
"""Characters a cell shows at most."""


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        value = ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    text = " ".join(str(value).split())  # one line per row, whatever the value holds
    return text if len(text) <= WIDEST else text[: WIDEST - 1] + "…"


def grid(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [headers, ["-" * w for w in widths], *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def pairs(mapping: Mapping[str, Any]) -> str:
    return grid(("field", "value"), [(k, v) for k, v in mapping.items()])


def status(answer: Mapping[str, Any]) -> str:
    syncs = [(s.get("created_at"), s.get("status"), s.get("notes")) for s in answer["recent_syncs"]]
    return "\n\n".join([pairs(answer["status"]), grid(("recent sync", "status", "notes"), syncs)])


def explain(answer: Mapping[str, Any]) -> str:
    def rows(found: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (name, c.get("value"), c.get("set_by"), (c.get("event") or {}).get("id"),
             (c.get("event") or {}).get("created_at"))
            for name, c in found.items()
        ]  # fmt: skip

    head = pairs(
        {
            "vtid": answer["vtid"],
            "made_by": answer["made_by"],
            "newest_event": (answer["newest_event"] or {}).get("id"),
            "founding_event": (answer["founding_event"] or {}).get("id"),
            "events_in_log": answer["events_in_log"],
        }
    )
    headers = ("set by", "event", "event time")
    return "\n\n".join(
        [
            head,
            grid(("column", "value", *headers), rows(answer["columns"])),
            grid(("metadata key", "value", *headers), rows(answer["metadata"])),
        ]
    )


def rejections(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = ("id", "received_at", "source", "reason", "event_id", "size")
    return grid(columns, [[r.get(c) for c in columns] for r in rows])


def tasks(answer: Mapping[str, Any]) -> str:
    columns = ("vtid", "status", "service", "environment", "last_event_at", "description")
    table = grid(columns, [[r.get(c) for c in columns] for r in answer["data"]])
    meta = answer["meta"]
    more = f"; more: --cursor {meta['next_cursor']}" if meta["has_more"] else ""
    return f"{table}\n\n{meta['count']} task(s){more}"


def task(answer: Mapping[str, Any]) -> str:
    return pairs(answer["data"])
