"""Progress of long CLI runs (sync, rebuild) on stderr, with tqdm: shown only on a terminal and
for runs of at least SHOWN_FROM events, so logs and pipes get no carriage-return frames."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

SHOWN_FROM = 100_000
"""Events left to sweep from which a bar is worth showing (a sweep does ~40,000 a second)."""


def bar(total: int, label: str, forced: bool = False) -> Any:
    """A tqdm bar, or None when stderr is not a terminal or the run is short (unless forced)."""
    if not forced and (total < SHOWN_FROM or not sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit=" events", unit_scale=True, file=sys.stderr)


@contextmanager
def progress_logging(shown: Any) -> Iterator[None]:
    """While a bar is shown, log lines are written above it (tqdm.write), never into it."""
    if shown is None:
        with nullcontext():
            yield
        return
    import logging

    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logging.getLogger("ledger")]):
        yield
