"""`rebuild`: the ledger refolded from the log without ever emptying what readers see.

A connection of its own folds the whole log, batch by batch in commit order below the snapshot
horizon, into a shadow beside the live ledger: a temporary table of one `ledger_state` per task
(`ledger_rebuild_*` in sql/), seeded with the rows other systems made as they were before
any event, merged batch by batch as the sweep merges into rows. Memory is bounded (the log is
never in Python). Readers and the real-time path keep using the live table meanwhile. The last
step runs in one transaction: fold what was committed meanwhile, then make the live table equal
to the shadow (`ledger_rebuild_apply`: UPDATE, INSERT, DELETE; the table keeps its OID, grants,
views). Interrupted anywhere before that commit (Ctrl-C, a crash, a killed connection), the
session's temporary table vanishes and the live ledger is as it was.

The sweep's advisory lock is held throughout: no sweep or other rebuild runs meanwhile. Events
after the rebuild's horizon are the live sweep's, whose offset the rebuild leaves where it was
(at or before the horizon: anything between is applied again, which changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger import sweep
from ledger.db import Database, Session, connect

BEGIN = "SELECT ledger_rebuild_begin(:vtid) AS seeded"
BATCH = """
SELECT read_count, last_tx::text AS last_tx, last_seq
FROM ledger_rebuild_batch(CAST(:tx AS xid8), :seq, :batch_size)"""
ONE = "SELECT events, inserted, updated, deleted FROM ledger_rebuild_one(:vtid)"
APPLY = "SELECT inserted, updated, deleted FROM ledger_rebuild_apply(:vtid)"
OUTDATED = 'SELECT vtid FROM ledger_outdated_vtids() AS vtid ORDER BY vtid COLLATE "C"'


class RebuildRunning(RuntimeError):
    """A sweep or another rebuild holds the lock."""


@dataclass(slots=True)
class Rebuilt:
    """What a rebuild did: events read from the log, and the rows it changed in the ledger."""

    events: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    vtids: list[str] = field(default_factory=list)

    def add(self, counts: Mapping[str, Any]) -> None:
        """Add what a statement (or another rebuild) read and changed."""
        self.events += int(counts.get("events", 0))
        self.inserted += int(counts["inserted"])
        self.updated += int(counts["updated"])
        self.deleted += int(counts["deleted"])

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            # Every row of the log read, the writer's own ledger_sync events included.
            "events_read": self.events,
            "rows": {"inserted": self.inserted, "updated": self.updated, "deleted": self.deleted},
        }
        if self.vtids:
            body["vtids"] = self.vtids
        return body


def _own_session(db: Database) -> Session:
    """A connection outside the pool: its temporary tables vanish with it, whatever happens."""
    return Session(connect(db.settings))


def _locked(session: Session) -> None:
    if not session.scalar(sweep.LOCK):
        raise RebuildRunning(
            "a sweep or another rebuild is running; try again when it finishes "
            "(python -m ledger status shows the sweep)"
        )


def _apply(session: Session, vtid: str | None, done: Rebuilt) -> None:
    row = session.one(APPLY, vtid=vtid)
    assert row is not None
    done.add(row)


def rebuild(
    db: Database,
    *,
    batch_size: int | None = None,
    on_batch: Callable[[Rebuilt], None] | None = None,
    before_switch: Callable[[], None] | None = None,
) -> Rebuilt:
    """Refold the whole log beside the live ledger, then apply the difference at once.
    `before_switch` runs just before the last transaction (tests interrupt it there)."""
    size = batch_size or db.settings.sweep_batch_size
    done = Rebuilt()
    session = _own_session(db)
    position = ("0", 0)

    def fold_batch() -> int:
        nonlocal position
        row = session.one(BATCH, tx=position[0], seq=position[1], batch_size=size)
        assert row is not None
        read = int(row["read_count"])
        if read:
            position = (row["last_tx"], int(row["last_seq"]))
            done.events += read
        return read

    try:
        _locked(session)
        session.one(BEGIN, vtid=None)
        while fold_batch():  # the bulk, each batch in its own transaction (the shadow only)
            if on_batch is not None:
                on_batch(done)
        if before_switch is not None:
            before_switch()
        with session.transaction():  # what was committed meanwhile, and the switch
            while fold_batch():
                pass
            _apply(session, None, done)
    finally:
        session.close()  # the lock and the temporary table go with the connection
    return done


def rebuild_one(db: Database, vtid: str) -> Rebuilt:
    """Refold one task from its events (found through the log's index), in one transaction."""
    done = Rebuilt(vtids=[vtid])
    session = _own_session(db)
    try:
        _locked(session)
        with session.transaction():
            # one function, which the HTTP function's role may call without deleting rows
            row = session.one(ONE, vtid=vtid)
            assert row is not None
            done.add(row)
    finally:
        session.close()
    return done


def rebuild_outdated(db: Database) -> Rebuilt:
    """Refold each row folded under older rules, one task at a time."""
    done = Rebuilt()
    for (vtid,) in db.run(lambda s: s.run(OUTDATED)):
        done.add(asdict(rebuild_one(db, vtid)))
        done.vtids.append(vtid)
    return done
