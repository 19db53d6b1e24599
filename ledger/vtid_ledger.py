"""The `vtid_ledger` table: task reads, and the rows verify compares (all or one). Writes
go through the fold's SQL functions (ledger_apply_events in sql/)."""

from __future__ import annotations

# metadata as jsonb's text: answers carry it as stored (ledger.json_text), never re-parsed.
_COLUMNS = (
    "vtid, status, task_family, task_type, description, assigned_to, tenant, service, "
    "environment, last_event_id, last_event_at, metadata::text AS metadata, created_at, "
    "updated_at"
)

# Each filter is either NULL (not given) or an exact match; the statement never changes shape.
LIST = f"""
SELECT {_COLUMNS} FROM vtid_ledger
WHERE (CAST(:vtid AS text) IS NULL OR vtid = :vtid)
  AND (CAST(:status AS text) IS NULL OR status = :status)
  AND (CAST(:service AS text) IS NULL OR service = :service)
  AND (CAST(:environment AS text) IS NULL OR environment = :environment)
  AND (CAST(:after AS text) IS NULL OR vtid > :after)
ORDER BY vtid
LIMIT :limit"""

ONE = f"SELECT {_COLUMNS} FROM vtid_ledger WHERE vtid = :vtid"

# verify: the columns the fold determines, metadata as jsonb's text (numbers as stored), in the
# order Python sorts strings; and for rows another system made, what they were before any event.
FOLDED = """
SELECT vtid, status, service, environment, last_event_id, last_event_at, description,
    task_family, task_type, assigned_to, tenant, metadata::text AS metadata,
    fold_founding IS NULL AS made_elsewhere, fold_base::text AS fold_base
FROM vtid_ledger ORDER BY vtid COLLATE "C"
"""

FOLDED_ONE = FOLDED.replace('ORDER BY vtid COLLATE "C"', "WHERE vtid = :vtid")
