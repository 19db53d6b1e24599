import json
import logging

from ledger.logs import CloudLoggingFormatter


def record(level: int, message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("ledger.test", level, __file__, 1, message, None, None)
    rec.__dict__.update(extra)
    return rec


def test_one_json_object_per_line_in_cloud_logging_format() -> None:
    line = CloudLoggingFormatter().format(
        record(logging.WARNING, "event rejected", reason="bad", n=2)
    )
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["severity"], entry["message"], entry["reason"], entry["n"]) == (
        "WARNING",
        "event rejected",
        "bad",
        2,
    )


def test_exceptions_go_into_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = record(logging.ERROR, "failed")
        rec.exc_info = sys.exc_info()
    entry = json.loads(CloudLoggingFormatter().format(rec))
    assert entry["severity"] == "ERROR" and "ValueError: boom" in entry["stack_trace"]
