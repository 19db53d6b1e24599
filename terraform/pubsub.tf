resource "google_pubsub_topic" "events" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-oasis-events"
  labels                     = local.labels
  message_retention_duration = var.message_retention
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-oasis-events-dead-letter"
  labels                     = local.labels
  message_retention_duration = var.message_retention
  depends_on                 = [google_project_service.apis]
}

# Push delivery to the event function, authenticated with an OIDC token of the push account.
# A message that keeps failing (5xx: only transient failures) goes to the dead-letter topic.
resource "google_pubsub_subscription" "push" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-oasis-events-push"
  topic                      = google_pubsub_topic.events.id
  labels                     = local.labels
  ack_deadline_seconds       = local.event_timeout_seconds
  message_retention_duration = var.message_retention

  # The gen2 function's Cloud Run URI, as the provider's gen2 examples push to; the token's
  # audience is the same URI, which Cloud Run checks.
  push_config {
    push_endpoint = google_cloudfunctions2_function.event.service_config[0].uri
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = google_cloudfunctions2_function.event.service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.dead_letter_max_attempts
  }

  # Never expire for inactivity (the default is 31 days without a delivery).
  expiration_policy {
    ttl = ""
  }
}

# Keeps dead letters so an operator can inspect and replay them.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-oasis-events-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = local.labels
  ack_deadline_seconds       = 60
  message_retention_duration = var.message_retention
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}
