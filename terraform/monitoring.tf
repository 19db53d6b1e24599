resource "google_monitoring_alert_policy" "dead_letters" {
  project      = var.project_id
  display_name = "${var.name_prefix}: OASIS events are dead-lettered"
  combiner     = "OR"
  user_labels  = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Messages reached `${google_pubsub_subscription.dead_letter.name}` after
      ${var.dead_letter_max_attempts} failed deliveries: the event function kept failing
      transiently (database unreachable?). Events are also in `oasis_events`, so the catch-up
      sweep applies them; inspect, then acknowledge or replay the dead letters (DEPLOY.md).
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
