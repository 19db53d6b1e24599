"""Progress of long CLI runs (sync, rebuild) on stderr: a tqdm bar on a terminal, for runs of
at least SHOWN_FROM events; with --progress where stderr is not a terminal (a log, a pipe), one
plain line per batch instead, so logs get no carriage-return frames and each figure once."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TextIO

SHOWN_FROM = 100_000
"""Events left to sweep from which a bar is worth showing (a sweep does ~40,000 a second)."""


class Lines:
    """What tqdm's bar says, as one line per update (tqdm off a terminal redraws its last frame
    on close, so a log showed the 100% line twice)."""

    def __init__(self, total: int, label: str, file: TextIO) -> None:
        self.total, self.label, self.file, self.n = total, label, file, 0

    def update(self, n: int) -> None:
        if n <= 0:
            return
        self.n += n
        share = 100 if not self.total else min(100, self.n * 100 // self.total)
        print(f"{self.label}: {share}% {self.n}/{self.total} events", file=self.file, flush=True)

    def close(self) -> None:
        """Nothing to redraw: every line is already written."""


def bar(total: int, label: str, forced: bool = False) -> Any:
    """A tqdm bar on a terminal; plain lines when forced elsewhere; else None (not a terminal,
    or a short run)."""
    on_a_terminal = sys.stderr.isatty()
    if not forced and (total < SHOWN_FROM or not on_a_terminal):
        return None
    if not on_a_terminal:
        return Lines(total, label, sys.stderr)
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit=" events", unit_scale=True, file=sys.stderr)


@contextmanager
def progress_logging(shown: Any) -> Iterator[None]:
    """While a bar is shown, log lines are written above it (tqdm.write), never into it."""
    if shown is None or isinstance(shown, Lines):
        with nullcontext():
            yield
        return
    import logging

    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logging.getLogger("ledger")]):
        yield
