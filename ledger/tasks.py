"""Task reads (`GET /api/v1/tasks`, `GET /api/v1/vtid/<vtid>`): query parsing and keyset
pagination; the statements are in `vtid_ledger`."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger import vtid_ledger
from ledger.db import Session
from ledger.events import Rejected, check_storable
from ledger.json_text import raw
from ledger.timefmt import plain
from ledger.vtid import is_valid, normalise

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
FILTERS = ("vtid", "status", "service", "environment")


class BadQuery(ValueError):
    """A query parameter is unusable; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Query:
    filters: Mapping[str, str | None]
    limit: int = DEFAULT_LIMIT
    after: str | None = None


def encode_cursor(vtid: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": vtid}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # deep JSON: not ours either
        raise BadQuery("cursor is not one this API returned") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("after"), str):
        raise BadQuery("cursor is not one this API returned")
    return _storable(str(raw["after"]), "cursor")


def _storable(value: str, name: str) -> str:
    """Text Postgres can take as a parameter (no NUL, no lone surrogate)."""
    try:
        check_storable(value, name)
    except Rejected as exc:
        raise BadQuery(exc.reason) from None
    return value


def parse_vtid(raw: str) -> str:
    vtid = normalise(raw)
    if not is_valid(vtid):
        raise BadQuery(f"{raw!r} is not a valid VTID (like VTID-0521 or DEV-OASIS-0010)")
    return vtid


def parse_query(args: Mapping[str, str]) -> Query:
    unknown = sorted(set(args) - {*FILTERS, "limit", "cursor"})
    if unknown:
        raise BadQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    for name, value in args.items():
        _storable(value, name)
    filters: dict[str, str | None] = {n: (args.get(n) or "").strip() or None for n in FILTERS}
    if filters["vtid"] is not None:
        filters["vtid"] = parse_vtid(filters["vtid"])
    limit = DEFAULT_LIMIT
    if "limit" in args:
        try:
            limit = int(args["limit"])
        except ValueError:
            raise BadQuery(f"limit must be an integer from 1 to {MAX_LIMIT}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise BadQuery(f"limit must be an integer from 1 to {MAX_LIMIT}")
    after = decode_cursor(args["cursor"]) if args.get("cursor") else None
    return Query(filters=filters, limit=limit, after=after)


def list_tasks(session: Session, query: Query) -> dict[str, Any]:
    rows = session.rows(vtid_ledger.LIST, **query.filters, after=query.after, limit=query.limit + 1)
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = encode_cursor(rows[-1]["vtid"]) if has_more else None
    return {
        "data": [_answer(r) for r in rows],
        "meta": {
            "count": len(rows),
            "limit": query.limit,
            "has_more": has_more,
            "next_cursor": next_cursor,
        },
    }


def get_task(session: Session, vtid: str) -> dict[str, Any] | None:
    row = session.one(vtid_ledger.ONE, vtid=vtid)
    return None if row is None else _answer(row)


def _answer(row: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = plain(row)
    answer["metadata"] = raw(row["metadata"])
    return answer
