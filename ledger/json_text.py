"""JSON answers that carry what the ledger stores as it stores it.

Metadata is read from Postgres as jsonb's own text (`metadata::text`) and passed into the
answer untouched (`RawJSON`), never parsed and printed again: numbers keep their digits (1.50
stays 1.50, a 30-digit integer stays exact) and no depth of nesting can exhaust Python's stack
(a row folded before the 64-level limit may hold 900 levels).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class RawJSON(str):
    """JSON text from the database, to be written into an answer as it is."""

    __slots__ = ()


def raw(text: str | None) -> RawJSON | None:
    return None if text is None else RawJSON(text)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """`value` as JSON text, each RawJSON inside it written verbatim. The structures around
    the raw parts are answers built here (a few levels deep); the raw parts are never walked."""
    pieces: list[str] = []

    def swap(item: Any) -> Any:
        if isinstance(item, RawJSON):
            pieces.append(str(item))
            return _marker(len(pieces) - 1)
        if isinstance(item, Mapping):
            return {key: swap(sub) for key, sub in item.items()}
        if isinstance(item, list | tuple):
            return [swap(sub) for sub in item]
        return item

    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(
        swap(value), separators=separators, indent=indent, sort_keys=True, default=str
    )
    for n, piece in enumerate(pieces):
        # The marker holds a NUL, which no stored string can (Postgres refuses it), and json
        # writes it escaped: this exact quoted text can only be the marker.
        text = text.replace(json.dumps(_marker(n)), piece, 1)
    return text


def _marker(n: int) -> str:
    return f"\x00raw-json-{n}\x00"
