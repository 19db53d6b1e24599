"""/metrics in Prometheus's text format (0.0.4), written by prometheus_client.

The figures are the report `writer_status.metrics` reads from Postgres at each scrape (as an
exporter does), plus this process's own ingest counters: a collector turns them into metric
families, and prometheus_client writes the format (escaping, number formatting, histograms).
Nothing is registered globally; each scrape builds its registry and drops it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (key in each projector's JSON, kind, metric name, help): the names are kept as they were
# before prometheus_client wrote them, so that dashboards and alerts keep working.
PROJECTOR_METRICS = (
    ("events_processed", "counter", "vtid_ledger_events_processed_total",
     "Events processed (created, updated, stale, skipped or rejected)."),
    ("created", "counter", "vtid_ledger_created_total", "Events that created a ledger row."),
    ("updated", "counter", "vtid_ledger_updated_total", "Events that changed a ledger row."),
    ("stale", "counter", "vtid_ledger_stale_total",
     "Events that changed nothing: duplicates, or older than what the row holds."),
    ("skipped", "counter", "vtid_ledger_skipped_total", "Events without a valid VTID."),
    ("errors", "counter", "vtid_ledger_errors_total",
     "Events this projector rejected as unreadable (each also recorded in ledger_rejections, "
     "which holds ingest's refusals too: vtid_ledger_rejections_kept)."),
    ("redelivered", "counter", "vtid_ledger_redelivered_total",
     "Messages delivered again after a failed or timed-out attempt (deliveryAttempt > 1); "
     "they precede dead letters."),
    ("lag_seconds", "gauge", "vtid_ledger_lag_seconds",
     "Real-time: publish to applied for the newest event. Sweep: age of the oldest event not "
     "yet swept (0 when caught up)."),
    ("backlog", "gauge", "vtid_ledger_backlog_events", "Events the sweep has yet to apply."),
    ("outdated_rows", "gauge", "vtid_ledger_outdated_rows",
     "Ledger rows folded under older rules than the current ones (rebuild --outdated)."),
    ("last_processed_at", "gauge", "vtid_ledger_last_processed_at_seconds",
     "Unix time the projector last processed an event."),
    ("last_event_time", "gauge", "vtid_ledger_last_event_time_seconds",
     "created_at of the newest event the projector processed, Unix time."),
)  # fmt: skip


def _seconds(value: Any) -> float:
    if isinstance(value, str):  # a time, as the JSON writes it
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


def _families(report: dict[str, Any]) -> Iterator[Metric]:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    projectors: dict[str, dict[str, Any]] = report["projectors"]
    for key, kind, name, help_text in PROJECTOR_METRICS:
        values = [(p, v[key]) for p, v in projectors.items() if v.get(key) is not None]
        if not values:
            continue
        family: Metric
        if kind == "counter":
            family = CounterMetricFamily(name, help_text, labels=["projector"])
        else:
            family = GaugeMetricFamily(name, help_text, labels=["projector"])
        for projector, value in values:
            family.add_metric([projector], _seconds(value))
        yield family

    realtime = projectors.get("vtid_ledger_sync", {})
    if "delivery_lag_buckets" in realtime:
        lag = HistogramMetricFamily(
            "vtid_ledger_delivery_lag_seconds",
            "Publish-to-applied seconds of the real-time path's events (lags counted before the "
            "buckets existed are in +Inf only).",
            labels=["projector"],
        )
        lag.add_metric(
            ["vtid_ledger_sync"],
            [(le, float(n)) for le, n in realtime["delivery_lag_buckets"].items()],
            float(realtime["delivery_lag_seconds_sum"]),
        )
        yield lag

    ledger = report.get("ledger")
    if ledger is not None:
        yield GaugeMetricFamily("vtid_ledger_rows", "Rows in vtid_ledger.", value=ledger["rows"])
        kept = GaugeMetricFamily(
            "vtid_ledger_rejections_kept",
            "Rejected events kept in ledger_rejections (pruned after the retention), by the "
            "path that refused them.",
            labels=["source"],
        )
        for source, n in sorted(ledger["rejections_kept"].items()):
            kept.add_metric([source], n)
        yield kept
        by_reason = GaugeMetricFamily(
            "vtid_ledger_rejections_kept_by_reason",
            "Rejected events kept in ledger_rejections, by path and kind of reason "
            "(python -m ledger rejections --reason shows the reasons themselves).",
            labels=["source", "reason"],
        )
        for source, kinds in sorted(ledger["rejections_kept_by_reason"].items()):
            for kind, n in sorted(kinds.items()):
                by_reason.add_metric([source, kind], n)
        yield by_reason
        info = GaugeMetricFamily(
            "vtid_ledger_build_info",
            "The writer's version and its fold's rules version.",
            labels=["version", "rules_version"],
        )
        info.add_metric([ledger["version"], ledger["rules_version"]], 1)
        yield info

    instance = report.get("instance")
    if instance is not None:
        ingested = CounterMetricFamily(
            "vtid_ledger_ingested_events_total",
            "Events ingest answered, by outcome, in THIS instance since it started (per "
            "instance; the rest of these metrics are the database's totals).",
            labels=["outcome"],
        )
        for outcome, n in instance["ingested"].items():
            ingested.add_metric([outcome], n)
        yield ingested
        yield GaugeMetricFamily(
            "vtid_ledger_instance_start_time_seconds",
            "Unix time this instance started: its per-instance counters count from here.",
            value=_seconds(instance["started_at"]),
        )


class _Report:
    """A prometheus_client collector over one report."""

    def __init__(self, report: dict[str, Any]) -> None:
        self._report = report

    def collect(self) -> Iterator[Metric]:
        return _families(self._report)


def prometheus(report: dict[str, Any]) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Report(report))
    return generate_latest(registry).decode()
