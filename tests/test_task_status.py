import pytest

from ledger.task_status import BY_TYPE, map_status, priority

SPEC_TYPES = {
    "deployment_started": "active",
    "deployment_succeeded": "complete",
    "deployment_failed": "blocked",
    "deployment_validated": "complete",
    "task_created": "pending",
    "task_started": "active",
    "task_completed": "complete",
    "task_failed": "blocked",
    "task_cancelled": "cancelled",
    "pr_created": "active",
    "pr_merged": "complete",
    "pr_closed": "cancelled",
    "build_started": "active",
    "build_succeeded": "complete",
    "build_failed": "blocked",
    "workflow_started": "active",
    "workflow_completed": "complete",
    "workflow_failed": "blocked",
}


def test_table_is_exactly_the_spec() -> None:
    assert BY_TYPE == SPEC_TYPES


@pytest.mark.parametrize(("event_type", "expected"), sorted(SPEC_TYPES.items()))
def test_every_type_in_both_spellings(event_type: str, expected: str) -> None:
    assert map_status(event_type, "weird") == expected
    assert map_status(event_type.replace("_", "."), None) == expected
    assert map_status(event_type.upper(), "success") == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("success", "complete"),
        ("complete", "complete"),
        ("completed", "complete"),
        ("fail", "blocked"),
        ("failed", "blocked"),
        ("failure", "blocked"),
        ("error", "blocked"),
        ("blocked", "blocked"),
        ("cancelled", "cancelled"),
        ("canceled", "cancelled"),
        ("start", "active"),
        ("started", "active"),
        ("in_progress", "active"),
        ("running", "active"),
        ("info", "active"),
        ("warning", "active"),
        ("queued", "pending"),
        ("pending", "pending"),
        ("SUCCESS", "complete"),
        ("mystery", "active"),
        (None, "active"),
    ],
)
def test_status_fallback_for_unmapped_types(status: str | None, expected: str) -> None:
    assert map_status("something_else", status) == expected
    assert map_status(None, status) == expected


def test_priority_order() -> None:
    order = ["pending", "active", "blocked", "cancelled", "complete"]
    assert [priority(s) for s in order] == [1, 2, 3, 4, 5]
    assert priority("archived") == 0
    assert priority(None) == 0


def test_only_ascii_letters_change_case() -> None:
    assert map_status("TAS\u212a_CREATED", None) == "active"  # the Kelvin sign is not a k
    assert map_status(None, "BLOC\u212aED") == "active"
    assert map_status(None, " Success\u00a0") == "complete"  # trimmed as str.strip() trims
