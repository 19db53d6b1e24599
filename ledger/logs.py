"""Structured logs: one JSON object per line, in Cloud Logging's format."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = _bounded(value)
        entry["message"] = _bounded(entry["message"])
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


MAX_QUOTED = 1024
"""Characters of any one value a log line quotes: input (a URL, a reason quoting a 200,000-digit
time) cannot make a line larger than a few kilobytes."""


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_QUOTED:
        return f"{value[:MAX_QUOTED]}… ({len(value) - MAX_QUOTED} more characters)"
    if isinstance(value, dict):  # one level: httpRequest, a result's counters
        return {k: _bounded(v) if isinstance(v, str) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded(v) if isinstance(v, str) else v for v in value]
    return value


class TerminalFormatter(logging.Formatter):
    """A person at a terminal: the level and the message, then the fields, on one short line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            k: _bounded(v)
            for k, v in record.__dict__.items()
            if k not in _RESERVED and not k.startswith("_")
        }
        tail = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
        return f"{record.levelname.lower()}: {record.getMessage()}" + (f"  {tail}" if tail else "")


def configure() -> None:
    """Route the `ledger` loggers to stderr as JSON lines, once."""
    root = logging.getLogger("ledger")
    if any(getattr(h, "ledger_handler", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CloudLoggingFormatter())
    handler.ledger_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def for_a_person() -> None:
    """The CLI on a terminal: warnings and errors only, as plain lines (what went well is on
    stdout already). JSON lines stay when stderr is not a terminal, or LEDGER_LOG_FORMAT=json."""
    if not sys.stderr.isatty() or os.environ.get("LEDGER_LOG_FORMAT", "").lower() == "json":
        return
    configure()
    root = logging.getLogger("ledger")
    for handler in root.handlers:
        if getattr(handler, "ledger_handler", False):
            handler.setFormatter(TerminalFormatter())
    root.setLevel(logging.WARNING)


def get(name: str) -> logging.Logger:
    configure()
    return logging.getLogger(name)


def quiet_python_version_notices() -> None:
    """google.api_core warns once per Google package, at import, that it will stop supporting
    Python 3.11 in 2027: eight FutureWarning blocks on a local start. The functions run on
    python312 on Google Cloud; locally the notice says nothing an operator can act on."""
    warnings.filterwarnings(
        "ignore", message="You are using a Python version", category=FutureWarning
    )
