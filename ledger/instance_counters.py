"""Counters this process keeps in its own memory: what ingest did here since the process
started.

Every other figure on /metrics is read from Postgres, so it is the same whichever instance
answers. Ingest's outcomes have no table to be counted in (stored events are not marked as
ingested in the log), so they are counted per process, and reported as such: a scrape through
the function's URL reaches any one instance, and its figures are that instance's only
(docs/operations.md, "What a counter means across instances").
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

INGEST_OUTCOMES = ("stored", "duplicate", "conflict", "rejected")


@dataclass(slots=True)
class InstanceCounters:
    started_at: float = field(default_factory=time.time)
    _ingested: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count_ingested(self, outcomes: list[str]) -> None:
        with self._lock:
            self._ingested.update(outcomes)

    def ingested(self) -> dict[str, int]:
        with self._lock:
            return {outcome: self._ingested[outcome] for outcome in INGEST_OUTCOMES}

    def report(self) -> dict[str, Any]:
        """What /metrics shows of this process (its JSON; the text is made from it)."""
        from ledger.timefmt import iso

        return {
            "started_at": iso(datetime.fromtimestamp(self.started_at).astimezone()),
            "ingested": self.ingested(),
        }


@cache
def this_process() -> InstanceCounters:
    """Made on first use (no work at import), kept for the life of the process."""
    return InstanceCounters()
