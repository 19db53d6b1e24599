"""What applying one event did, and the counters of docs/behaviour.md §4."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


class Outcome(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    STALE = "stale"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    IGNORED = "ignored"


@dataclass(slots=True)
class Counters:
    processed: int = 0
    created: int = 0
    updated: int = 0
    stale: int = 0
    skipped: int = 0
    errors: int = 0

    def merge(self, other: Counters) -> None:
        for name, value in other.as_dict().items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def notes(self) -> str:
        """The seed document's ledger_sync notes."""
        return (
            f"Processed {self.processed} events: {self.updated} updated, {self.created} "
            f"created, {self.errors} errors"
        )
