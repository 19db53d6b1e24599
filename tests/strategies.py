"""Hypothesis strategies for OASIS events: few VTIDs, few timestamps (so ties are common),
every status source, and metadata that exercises each fold rule."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ledger.events import Event, decode
from ledger.fold import Base

VTIDS = ["VTID-0001", "VTID-0002", "DEV-OASIS-0010"]
TIMES = [f"2025-11-29T10:00:0{i}Z" for i in range(4)]
TYPES = [
    None,
    "task_created",
    "task.started",
    "task_completed",
    "deployment_failed",
    "pr_closed",
    "build_started",
    "custom_event",
    "TASK_CREATED",
]
STATUSES = [None, "success", "info", "error", "cancelled", "queued", "odd"]
TEXT = st.sampled_from([None, "alpha", "beta"])
META_KEYS = [
    "description",
    "summary",
    "taskFamily",
    "task_type",
    "assignee",
    "environment",
    "env",
    "tenant",
    "branch",
    "autoCreated",
    "lastEventType",
    "vtid",
]
META_VALUES = st.one_of(st.none(), st.sampled_from(["", "one", "two"]), st.integers(0, 3))


@st.composite
def raw_events(draw: st.DrawFn, vtids: list[str] = VTIDS) -> dict[str, Any]:
    metadata = draw(st.dictionaries(st.sampled_from(META_KEYS), META_VALUES, max_size=4))
    metadata.pop("vtid", None)
    raw: dict[str, Any] = {
        "id": f"e{draw(st.integers(0, 30))}",
        "created_at": draw(st.sampled_from(TIMES)),
        "vtid": draw(st.sampled_from(vtids)),
        "topic": draw(st.sampled_from(TYPES)),
        "status": draw(st.sampled_from(STATUSES)),
        "service": draw(st.sampled_from([None, "ci", "gateway"])),
        "title": draw(TEXT),
        "message": draw(TEXT),
        "layer": draw(TEXT),
        "kind": draw(TEXT),
        "tenant": draw(TEXT),
        "metadata": metadata,
    }
    return raw


def events(vtids: list[str] = VTIDS, max_size: int = 12) -> st.SearchStrategy[list[Event]]:
    return st.lists(raw_events(vtids).map(decode), min_size=1, max_size=max_size)


bases = st.one_of(
    st.none(),
    st.builds(
        Base,
        status=st.sampled_from([None, "active", "complete", "archived"]),
        service=TEXT,
        last_event_id=st.sampled_from([None, "e3", "legacy"]),
        last_event_at=st.sampled_from([None, *TIMES]).map(
            lambda t: None if t is None else decode({"id": "x", "created_at": t}).created_at
        ),
        description=TEXT,
        task_family=TEXT,
        tenant=TEXT,
        metadata=st.dictionaries(st.sampled_from(["branch", "owner"]), st.just("legacy")),
    ),
)
