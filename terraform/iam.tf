# Least privilege: each identity gets only the roles its job needs, on the narrowest resource.

locals {
  database_roles = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
  database_condition = {
    title      = "only-${google_sql_database_instance.ledger.name}"
    expression = "resource.name == 'projects/${var.project_id}/instances/${google_sql_database_instance.ledger.name}' && resource.service == 'sqladmin.googleapis.com'"
  }
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

# The builder writes logs (no narrower resource than the project), pushes images to the
# module's repository only, and reads sources from the two buckets only.
resource "google_project_iam_member" "builder_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.builder.member
}

resource "google_artifact_registry_repository_iam_member" "builder_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.builder.member
}

resource "google_project_iam_member" "builder_reads_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.builder.member
  condition {
    title = "only-${var.name_prefix}-sources"
    # Cloud Functions stages the uploaded source in a bucket of its own before the build.
    description = "The module's source bucket and the one Cloud Functions stages sources in."
    expression  = "resource.name.startsWith('projects/_/buckets/${google_storage_bucket.source.name}') || resource.name.startsWith('projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}')"
  }
}

# IAM grants take a minute or two to reach Cloud Build; a first apply on a new project would
# otherwise start the build before the builder may read its source.
resource "time_sleep" "builder_roles_propagate" {
  create_duration = "90s"
  triggers = {
    logs    = google_project_iam_member.builder_logs.id
    images  = google_artifact_registry_repository_iam_member.builder_pushes_images.id
    sources = google_project_iam_member.builder_reads_sources.id
  }
}

# Operators reach the database through the Cloud SQL connector with their own credentials,
# on this instance only: client to connect, instanceUser to log in as their IAM database user
# (cloudsql.tf). A group's grant covers its members.
resource "google_project_iam_member" "operators_database" {
  for_each = toset(var.operators)
  project  = var.project_id
  role     = "roles/cloudsql.client"
  member   = each.value
  condition {
    title      = local.database_condition.title
    expression = local.database_condition.expression
  }
}

resource "google_project_iam_member" "operators_database_login" {
  for_each = local.operator_database_users
  project  = var.project_id
  role     = "roles/cloudsql.instanceUser"
  member   = each.key
  condition {
    title      = local.database_condition.title
    expression = local.database_condition.expression
  }
}

# Ingest publishes to the topic.
resource "google_pubsub_topic_iam_member" "http_publishes" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.http_function.member
}

# The topic is a write path into the ledger: whoever may publish to it writes rows, with none
# of ingest's field checks. Producers are granted here, by name, and by nobody else.
resource "google_pubsub_topic_iam_member" "producers_publish" {
  for_each = toset(var.producers)
  project  = var.project_id
  topic    = google_pubsub_topic.events.name
  role     = "roles/pubsub.publisher"
  member   = each.value
}

# Invoker on the event function: only the push identity.
resource "google_cloud_run_v2_service_iam_member" "event_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.event.name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member

  # A recreated function is a new Cloud Run service without this binding, while the state
  # would still show it: bind again whenever the function is replaced.
  lifecycle {
    replace_triggered_by = [google_cloudfunctions2_function.event.id]
  }
}

# Invoker on the HTTP function: the scheduler, the operators and the ingesters, nobody else; the
# function then lets each use its own routes only (callers.tf).
resource "google_cloud_run_v2_service_iam_member" "http_invoker_scheduler" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.http.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member

  # A recreated function is a new Cloud Run service without this binding, while the state
  # would still show it: bind again whenever the function is replaced.
  lifecycle {
    replace_triggered_by = [google_cloudfunctions2_function.http.id]
  }
}

# Operators and ingesters, one binding per principal (someone in both lists gets one).
resource "google_cloud_run_v2_service_iam_member" "http_invoker_operators" {
  for_each = toset(concat(var.operators, var.ingesters))
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.http.name
  role     = "roles/run.invoker"
  member   = each.value

  # A recreated function is a new Cloud Run service without this binding, while the state
  # would still show it: bind again whenever the function is replaced.
  lifecycle {
    replace_triggered_by = [google_cloudfunctions2_function.http.id]
  }
}

# Pub/Sub's service agent mints the push OIDC tokens, and dead-letters: it must publish to the
# dead-letter topic and acknowledge on the source subscription.
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_project_service_identity.pubsub.member
}

resource "google_pubsub_topic_iam_member" "pubsub_dead_letters" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = google_project_service_identity.pubsub.member
}

resource "google_pubsub_subscription_iam_member" "pubsub_acks_dead_letters" {
  project      = var.project_id
  subscription = google_pubsub_subscription.push.name
  role         = "roles/pubsub.subscriber"
  member       = google_project_service_identity.pubsub.member
}
