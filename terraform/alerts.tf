# Alerts. Every one notifies var.notification_channels; with none set they open incidents
# that nobody hears about (README: set them). Each says what to look at in its documentation.
locals {
  database_id = "${var.project_id}:${google_sql_database_instance.ledger.name}"
  functions   = [google_cloudfunctions2_function.event.name, google_cloudfunctions2_function.http.name]
  run_requests = join(" AND ", [
    "resource.type = \"cloud_run_revision\"",
    "metric.type = \"run.googleapis.com/request_count\"",
    "resource.labels.service_name = one_of(${join(", ", [for f in local.functions : "\"${f}\""])})",
  ])
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project      = var.project_id
  display_name = "${var.name_prefix}: OASIS events are dead-lettered"
  combiner     = "OR"
  severity     = "ERROR"
  user_labels  = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Messages reached `${google_pubsub_subscription.dead_letter.name}` after
      ${var.dead_letter_max_attempts} failed deliveries: the event function kept failing
      transiently (database unreachable?). Events producers also stored in `oasis_events` are
      applied by the sweep anyway; inspect, replay and acknowledge the dead letters (DEPLOY.md,
      "Dead letters").
    EOT
  }

  conditions {
    display_name = "Oldest dead letter older than ${var.dead_letter_alert_age_seconds}s"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.dead_letter_alert_age_seconds
      duration        = "60s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  notification_channels = var.notification_channels
  depends_on            = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "push_backlog" {
  project      = var.project_id
  display_name = "${var.name_prefix}: pushed events are not being acknowledged"
  combiner     = "OR"
  severity     = "WARNING"
  user_labels  = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The oldest message on `${google_pubsub_subscription.push.name}` has waited more than
      ${var.alerts.push_oldest_unacked_seconds}s: the event function is failing (5xx: the
      database?) or too slow. Look at its logs and at `vtid_ledger_redelivered_total` in
      `/metrics`. After ${var.dead_letter_max_attempts} attempts messages move to the dead-letter
      topic.
    EOT
  }

  conditions {
    display_name = "Oldest unacknowledged push message older than ${var.alerts.push_oldest_unacked_seconds}s"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.push.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.push_oldest_unacked_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  notification_channels = var.notification_channels
  depends_on            = [google_project_service.apis]
}

# A log-based metric can be named by an alert policy only some minutes after it is created (the
# API answers 404 "Cannot find metric(s)... could take up to 10 minutes"; the provider does not
# retry that). Policies on log-based metrics wait this long after the metrics are (re)created.
resource "time_sleep" "log_metrics_ready" {
  create_duration = "600s"
  triggers = {
    sweep_lag      = google_logging_metric.sweep_lag.id
    sweep_failures = google_logging_metric.sweep_failures.id
  }
}

resource "google_monitoring_alert_policy" "sweep" {
  project      = var.project_id
  display_name = "${var.name_prefix}: the catch-up sweep is behind or not running"
  combiner     = "OR"
  severity     = "ERROR"
  user_labels  = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Either the oldest event not yet swept is older than ${var.alerts.sweep_lag_seconds}s, or
      no sweep has finished for ${var.alerts.sweep_silence_seconds}s. Run `python -m ledger
      status`: `held_back` with an `oldest_open_transaction` means a transaction left open on the
      server holds the sweep back (docs/operations.md, "The sweep is held back"); `last_error`
      says why sweeps fail; the scheduler job `${google_cloud_scheduler_job.sweep.name}` shows
      failed runs.
    EOT
  }

  conditions {
    display_name = "Sweep lag above ${var.alerts.sweep_lag_seconds}s"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.sweep_lag.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.sweep_lag_seconds
      duration        = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }

  conditions {
    display_name = "No sweep finished for ${var.alerts.sweep_silence_seconds}s"
    condition_absent {
      filter   = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.sweep_lag.name}\""
      duration = "${var.alerts.sweep_silence_seconds}s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "Sweeps fail"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.sweep_failures.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  notification_channels = var.notification_channels
  depends_on            = [google_project_service.apis, time_sleep.log_metrics_ready]
}

resource "google_monitoring_alert_policy" "function_errors" {
  project      = var.project_id
  display_name = "${var.name_prefix}: the functions answer 5xx"
  combiner     = "OR"
  severity     = "ERROR"
  user_labels  = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      More than ${var.alerts.error_ratio * 100}% of a function's requests failed with a 5xx for
      five minutes. Bad input never causes one: the database is unreachable, restarting, out of
      connections or not migrated (its logs say which; `/ready` answers 503 with the reason).
    EOT
  }

  conditions {
    display_name = "5xx share above ${var.alerts.error_ratio}"
    condition_threshold {
      filter             = "${local.run_requests} AND metric.labels.response_code_class = \"5xx\""
      denominator_filter = local.run_requests
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alerts.error_ratio
      duration           = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  notification_channels = var.notification_channels
  depends_on            = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "database" {
  project      = var.project_id
  display_name = "${var.name_prefix}: Cloud SQL near its limits"
  combiner     = "OR"
  severity     = "WARNING"
  user_labels  = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      `${google_sql_database_instance.ledger.name}` is near a limit. CPU: a larger
      `database_tier`, or smaller sweep batches. Connections: fewer function instances, or a
      larger `database_max_connections` (changing it restarts the instance). Disk: disk
      autoresize is on; check that it can still grow, and what grows (the log, rejections).
    EOT
  }

  conditions {
    display_name = "CPU above ${var.alerts.database_cpu * 100}%"
    condition_threshold {
      filter          = "resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${local.database_id}\" AND metric.type = \"cloudsql.googleapis.com/database/cpu/utilization\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.database_cpu
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  conditions {
    display_name = "Connections above ${var.alerts.database_connections * 100}% of max_connections"
    condition_threshold {
      filter          = "resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${local.database_id}\" AND metric.type = \"cloudsql.googleapis.com/database/postgresql/num_backends\""
      comparison      = "COMPARISON_GT"
      threshold_value = floor(var.database_max_connections * var.alerts.database_connections)
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "Disk above ${var.alerts.database_disk * 100}%"
    condition_threshold {
      filter          = "resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${local.database_id}\" AND metric.type = \"cloudsql.googleapis.com/database/disk/utilization\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.database_disk
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  notification_channels = var.notification_channels
  depends_on            = [google_project_service.apis]
}
