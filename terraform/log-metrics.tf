# Metrics drawn from the functions' JSON logs (one object per line; ledger/logs.py). The sweep
# logs `sweep finished` with `backlog` and `lag_seconds` after every run; the event function
# `event applied` with its outcome; both `event rejected`; the HTTP function one access line
# per request (httpRequest).
locals {
  http_logs  = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${google_cloudfunctions2_function.http.name}\""
  event_logs = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${google_cloudfunctions2_function.event.name}\""
}

resource "google_logging_metric" "sweep_lag" {
  project         = var.project_id
  name            = "${var.name_prefix}-sweep-lag-seconds"
  description     = "Age of the oldest event the sweep has yet to apply, after each sweep (0 when caught up)."
  filter          = "${local.http_logs} AND jsonPayload.message = \"sweep finished\""
  value_extractor = "EXTRACT(jsonPayload.lag_seconds)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "sweep_backlog" {
  project         = var.project_id
  name            = "${var.name_prefix}-sweep-backlog-events"
  description     = "Events the sweep has yet to apply, after each sweep."
  filter          = "${local.http_logs} AND jsonPayload.message = \"sweep finished\""
  value_extractor = "EXTRACT(jsonPayload.backlog)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 30
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "events_applied" {
  project     = var.project_id
  name        = "${var.name_prefix}-events-applied"
  description = "Events the event function handled, by outcome (created, updated, stale, skipped, ignored)."
  filter      = "${local.event_logs} AND jsonPayload.message = \"event applied\""
  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "created, updated, stale, skipped or ignored"
    }
  }
}

# Counts events, not lines: every line that is the record of rejected events says how many in
# `rejected` (1 for a push or a single ingest, a batch's count for the sweep, a request's count
# for NDJSON ingest), and the metric sums that field. The sweep's event-by-event fallback also
# logs each refused event, without `rejected`: its batch line counts it already.
# A new name and address: Cloud Logging cannot change an existing metric's value type (it was a
# line counter), so an upgrade deletes the old metric and creates this one.
resource "google_logging_metric" "rejected_events" {
  project         = var.project_id
  name            = "${var.name_prefix}-rejected-events"
  description     = "Events rejected (recorded in ledger_rejections), by source (pubsub, ingest, sweep): the distribution's sum is the number of events, its count the number of log lines."
  filter          = "(${local.event_logs} OR ${local.http_logs}) AND jsonPayload.message = (\"event rejected\" OR \"message rejected\" OR \"events rejected\" OR \"events ingested\") AND jsonPayload.rejected > 0"
  value_extractor = "EXTRACT(jsonPayload.rejected)"
  label_extractors = {
    source = "EXTRACT(jsonPayload.source)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
    labels {
      key         = "source"
      value_type  = "STRING"
      description = "pubsub, ingest or sweep"
    }
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 20
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "ingest_requests" {
  project     = var.project_id
  name        = "${var.name_prefix}-ingest-requests"
  description = "Requests to POST /api/v1/events/ingest, by HTTP status."
  # The access line's httpRequest is moved by Cloud Run's logging agent into the LogEntry's own
  # httpRequest field: it is not in jsonPayload.
  filter = "${local.http_logs} AND httpRequest.requestUrl =~ \"^/api/v1/events/ingest\""
  label_extractors = {
    status = "EXTRACT(httpRequest.status)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "HTTP status of the answer"
    }
  }
}

# A sweep that fails logs `sweep failed`: counted here, so that a sweep that has never once
# succeeded (no `sweep finished` yet, which the absence condition needs to start from) alerts.
resource "google_logging_metric" "sweep_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}-sweep-failures"
  description = "Sweeps that failed (the database unreachable, not migrated, a statement timed out)."
  filter      = "${local.http_logs} AND jsonPayload.message = \"sweep failed\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }
}
