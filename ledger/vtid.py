"""VTID extraction and validation (docs/behaviour.md §2)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# re.ASCII: without it \d and \b accept non-ASCII digits and letters.
_VALID = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*-[0-9]+", re.ASCII)
_IN_MESSAGE = re.compile(r"\bVTID-\d{4,5}(?:-\d+)?\b", re.ASCII)
# Only ASCII letters change case: a VTID is ASCII, and str.upper() maps some other letters
# (the dotless i, U+0131) onto ASCII ones.
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def normalise(candidate: str) -> str:
    """Trimmed (every character str.isspace() accepts) and upper-cased (ASCII letters)."""
    return candidate.strip().translate(_ASCII_UPPER)


MAX_LENGTH = 64
"""A longer candidate is no VTID (docs/behaviour.md §2): it could not be indexed either."""


def is_valid(vtid: str) -> bool:
    return len(vtid) <= MAX_LENGTH and _VALID.fullmatch(vtid) is not None


def extract(
    vtid: str | None, metadata: Mapping[str, Any], ref: str | None, message: str | None
) -> str | None:
    """The event's VTID, or None when it has none or an invalid one.

    A present `vtid` (or `metadata.vtid`) is authoritative: when it is invalid the event has
    no VTID rather than falling through to `ref` or the message.
    """
    meta_vtid = metadata.get("vtid")
    candidate: str
    if vtid is not None:
        candidate = vtid
    elif isinstance(meta_vtid, str) and meta_vtid:
        candidate = meta_vtid
    elif ref is not None and is_valid(normalise(ref)):
        candidate = ref
    elif message is not None and (found := _IN_MESSAGE.search(message)):
        candidate = found.group(0)
    else:
        return None
    normalised = normalise(candidate)
    return normalised if is_valid(normalised) else None


def of_event(event: Any) -> str | None:
    """The VTID of a decoded `ledger.events.Event`."""
    return extract(event.vtid, event.metadata, event.ref, event.message)
