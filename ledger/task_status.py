"""Event type and status → a task's ledger status, and status priority (docs/behaviour.md §3).

The reference version of `ledger_status_of` and `ledger_priority` in sql/."""

from __future__ import annotations

PENDING, ACTIVE, BLOCKED, CANCELLED, COMPLETE = (
    "pending",
    "active",
    "blocked",
    "cancelled",
    "complete",
)

PRIORITY: dict[str, int] = {PENDING: 1, ACTIVE: 2, BLOCKED: 3, CANCELLED: 4, COMPLETE: 5}

BY_TYPE: dict[str, str] = {
    "deployment_started": ACTIVE,
    "deployment_succeeded": COMPLETE,
    "deployment_failed": BLOCKED,
    "deployment_validated": COMPLETE,
    "task_created": PENDING,
    "task_started": ACTIVE,
    "task_completed": COMPLETE,
    "task_failed": BLOCKED,
    "task_cancelled": CANCELLED,
    "pr_created": ACTIVE,
    "pr_merged": COMPLETE,
    "pr_closed": CANCELLED,
    "build_started": ACTIVE,
    "build_succeeded": COMPLETE,
    "build_failed": BLOCKED,
    "workflow_started": ACTIVE,
    "workflow_completed": COMPLETE,
    "workflow_failed": BLOCKED,
}

BY_STATUS: dict[str, str] = {
    **dict.fromkeys(("success", "complete", "completed"), COMPLETE),
    **dict.fromkeys(("fail", "failed", "failure", "error", "blocked"), BLOCKED),
    **dict.fromkeys(("cancelled", "canceled"), CANCELLED),
    **dict.fromkeys(("start", "started", "in_progress", "running", "info", "warning"), ACTIVE),
    **dict.fromkeys(("queued", "pending"), PENDING),
}


# Only ASCII letters change case, as in SQL under COLLATE "C": str.lower() would turn the
# Kelvin sign into 'k'.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def map_status(event_type: str | None, event_status: str | None) -> str:
    """The type looked up exactly and lower-cased ('.' and '_' alike), else the status."""
    if event_type is not None:
        mapped = BY_TYPE.get(event_type.replace(".", "_").translate(_ASCII_LOWER))
        if mapped:
            return mapped
    if event_status is not None:
        return BY_STATUS.get(event_status.strip().translate(_ASCII_LOWER), ACTIVE)
    return ACTIVE


def priority(status: str | None) -> int:
    return PRIORITY.get(status or "", 0)
