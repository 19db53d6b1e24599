"""The one place database errors are sorted (SQLSTATE by SQLSTATE): what a caller should see
instead of the driver's exception. Permanent for the event (`Refused`: record and acknowledge),
worth retrying (`Transient`, and its kinds), or the schema older than the code (`NotMigrated`)."""

from __future__ import annotations

# SQLSTATE classes a single event's data can cause (data exception, integrity constraint,
# program limit such as an index row too large): retrying the same event cannot help.
_REFUSED_CLASSES = ("22", "23", "54")
# A table or one of the writer's functions is missing: the schema is older than the code.
_NOT_MIGRATED = ("42P01", "42883", "42704")
# Worth retrying: the connection, the server going down, resources, a deadlock or a timeout.
_TRANSIENT_CLASSES = ("08", "53", "40", "57")
# lock_timeout (55P03) and a held object (55006) pass once the holder finishes.
_TRANSIENT_CODES = ("55P03", "55006")
NOT_MIGRATED = (
    "the database is not migrated, or this user may not use its schema: run python -m ledger "
    "migrate, then python -m ledger grant"
)


class Transient(RuntimeError):
    """A failure that may pass: raise it so Pub/Sub (or the caller) retries."""


class NotMigrated(Transient):
    """The writer's tables or functions are missing: `python -m ledger migrate` first."""

    def __init__(self) -> None:
        super().__init__(NOT_MIGRATED)


class NotPermitted(Transient):
    """The database user lacks a privilege (SQLSTATE 42501): `python -m ledger grant` fixes it,
    so the path retries rather than dropping the event."""


class Refused(Exception):
    """Postgres refused the data itself (SQLSTATE classes 22, 23, 54): the event is rejected
    and recorded rather than retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sqlstate(exc: BaseException) -> str | None:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], dict):
        code = args[0].get("C")
        return str(code) if code else None
    return None


def describe(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], dict):
        return f"{args[0].get('C', '?')}: {args[0].get('M', '')}"
    return str(exc)


# pg8000 raises InterfaceError for a lost connection and for a mistake in a call alike (a
# placeholder without its argument, a parameter of a type it cannot send): only these texts,
# or an OSError beneath, mean the connection is gone. A mistake must not pass for an outage
# (retried for ever, the connection thrown away).
_CONNECTION_LOST = ("network error", "connection is closed", "communication error")


def is_connection_error(exc: BaseException) -> bool:
    import pg8000.exceptions

    if isinstance(exc, OSError | EOFError):
        return True
    if isinstance(exc, pg8000.exceptions.InterfaceError):
        cause = exc.__cause__ or exc.__context__
        return str(exc) in _CONNECTION_LOST or isinstance(cause, OSError | EOFError)
    code = sqlstate(exc) or ""
    # 57P0x: the server shut down; 25P03: it ended a session left idle in a transaction.
    return code.startswith("08") or code in ("57P01", "57P02", "57P03", "25P03")


def classify(exc: Exception) -> Exception:
    """The one place database errors are sorted: what callers should see instead."""
    code = sqlstate(exc) or ""
    if code[:2] in _REFUSED_CLASSES:
        return Refused(describe(exc))
    if code in _NOT_MIGRATED:
        return NotMigrated()
    if code == "42501":
        return NotPermitted(
            f"database: {describe(exc)} (the user needs a ledger role: python -m ledger grant)"
        )
    if (code[:2] in _TRANSIENT_CLASSES or code in _TRANSIENT_CODES) and not is_connection_error(
        exc
    ):
        return Transient(f"database: {describe(exc)}")
    return exc


def classified(exc: Exception) -> Exception:
    """A connection error as it is (the pool replaces the connection), anything else sorted."""
    return exc if is_connection_error(exc) else classify(exc)


class PoolExhausted(Transient):
    """Every connection of the pool stayed busy for the whole wait: retry later (503)."""
