# Least privilege: each identity gets only the roles its job needs, on the narrowest resource.

locals {
  database_roles = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
  database_condition = {
    title      = "only-${var.name_prefix}-pg"
    expression = "resource.name == 'projects/${var.project_id}/instances/${var.name_prefix}-pg' && resource.service == 'sqladmin.googleapis.com'"
  }
  builder_roles = [
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
    "roles/storage.objectViewer",
  ]
}

# Cloud SQL roles exist only at project level; the condition narrows them to this instance.
resource "google_project_iam_member" "event_function_database" {
  for_each = toset(local.database_roles)
  project  = var.project_id
  role     = each.value
  member   = google_service_account.event_function.member
  condition {
    title      = local.database_condition.title
    expression = local.database_condition.expression
  }
}

resource "google_project_iam_member" "http_function_database" {
  for_each = toset(local.database_roles)
  project  = var.project_id
  role     = each.value
  member   = google_service_account.http_function.member
  condition {
    title      = local.database_condition.title
    expression = local.database_condition.expression
  }
}

resource "google_project_iam_member" "builder" {
  for_each = toset(local.builder_roles)
  project  = var.project_id
  role     = each.value
  member   = google_service_account.builder.member
}

# Ingest publishes to the topic.
resource "google_pubsub_topic_iam_member" "http_publishes" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.http_function.member
}

# Invoker on the event function: only the push identity.
resource "google_cloud_run_v2_service_iam_member" "event_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.event.name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# Invoker on the HTTP function: the scheduler and the operators, nobody else.
resource "google_cloud_run_v2_service_iam_member" "http_invoker_scheduler" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.http.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_v2_service_iam_member" "http_invoker_operators" {
  for_each = toset(var.operators)
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.http.name
  role     = "roles/run.invoker"
  member   = each.value
}

# Pub/Sub's service agent mints the push OIDC tokens, and dead-letters: it must publish to the
# dead-letter topic and acknowledge on the source subscription.
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "pubsub_dead_letters" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_acks_dead_letters" {
  project      = var.project_id
  subscription = google_pubsub_subscription.push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
