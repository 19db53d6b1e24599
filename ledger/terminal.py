"""A progress bar for long CLI runs, on stderr. Hand-written: a dozen lines, no dependency."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self, total: int, label: str, stream: TextIO = sys.stderr, width: int = 30
    ) -> None:
        self.total, self.label, self.stream, self.width = max(total, 1), label, stream, width
        self.started = time.monotonic()

    def update(self, done: int) -> None:
        fraction = min(done / self.total, 1.0)
        filled = int(fraction * self.width)
        rate = done / max(time.monotonic() - self.started, 1e-9)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {done}/{self.total} events {fraction:4.0%} {rate:,.0f}/s"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
