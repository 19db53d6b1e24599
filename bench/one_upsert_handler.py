"""The real-time benchmark's reference: a functions-framework CloudEvent handler that does the
least a Pub/Sub-driven ledger writer can, one prepared conditional UPSERT per event (newest
event wins) into the same vtid_ledger table (its columns and indexes), on a connection per
thread, or on a pool of PEER_CONNECTIONS shared by the threads when that is set. Served the
same way as main.oasis_event."""

from __future__ import annotations

import base64
import json
import os
import queue
import threading
from typing import Any

import functions_framework
import pg8000.native

from ledger.db import parse_url

UPSERT = """
INSERT INTO vtid_ledger AS l (vtid, status, service, environment, last_event_id, last_event_at,
    description, task_family, task_type, tenant, metadata)
VALUES (:vtid, :status, :service, :environment, :id, CAST(:at AS timestamptz), :message,
    'auto', :status, 'system', CAST(:metadata AS jsonb))
ON CONFLICT (vtid) DO UPDATE SET status = EXCLUDED.status, service = EXCLUDED.service,
    environment = EXCLUDED.environment, last_event_id = EXCLUDED.last_event_id,
    last_event_at = EXCLUDED.last_event_at, metadata = l.metadata || EXCLUDED.metadata,
    updated_at = now()
WHERE EXCLUDED.last_event_at > l.last_event_at"""


def upsert(statement: Any, event: dict[str, Any]) -> None:
    statement.run(
        vtid=event["vtid"], status=event["topic"], service=event["service"],
        environment=event["metadata"].get("environment", "dev"), id=event["id"],
        at=event["created_at"], message=event["message"], metadata=json.dumps(event["metadata"]),
    )  # fmt: skip


_local = threading.local()
_shared: queue.Queue[Any] | None = None
_shared_lock = threading.Lock()


def _prepare() -> Any:
    p = parse_url(os.environ["DATABASE_URL"])
    conn = pg8000.native.Connection(
        p.user, host=p.host, port=p.port, database=p.database, unix_sock=p.unix_sock,
        password=p.password,
    )  # fmt: skip
    conn.run(f"SET search_path = {os.environ['LEDGER_DB_SCHEMA']}")
    return conn.prepare(UPSERT)


def _statement() -> Any:
    if not hasattr(_local, "upsert"):
        _local.upsert = _prepare()
    return _local.upsert


def _pool() -> queue.Queue[Any]:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = queue.Queue()
            for _ in range(int(os.environ["PEER_CONNECTIONS"])):
                _shared.put(_prepare())
        return _shared


@functions_framework.cloud_event
def one_upsert(cloud_event: Any) -> None:
    event = json.loads(base64.b64decode(cloud_event.get_data()["message"]["data"]))
    if not os.environ.get("PEER_CONNECTIONS"):
        upsert(_statement(), event)
        return
    pool = _pool()
    statement = pool.get()
    try:
        upsert(statement, event)
    finally:
        pool.put(statement)
