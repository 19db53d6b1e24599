locals {
  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ]
  labels = merge({ app = "vtid-ledger" }, var.labels)

  # Each instance keeps at most `concurrency` connections (one per in-flight request; the
  # process pool is sized to it), so this is the most the functions can ever open together.
  # A process holds at most DB_POOL_SIZE connections (its requests wait for one), so the
  # database sees instances x pool, however many requests each instance takes.
  connections_needed = (
    var.event_function.max_instances * var.event_function.pool_size +
    var.http_function.max_instances * var.http_function.pool_size
  )
  connection_budget = var.database_max_connections - var.database_reserved_connections

  # Function timeout and scheduler deadline sit above the sweep's own budget, so a sweep always
  # ends by itself (committing its last batch) before anything cuts it off.
  http_timeout_seconds = var.sweep_time_budget_seconds + 30

  # A delivery may wait for the batch in flight on each connection, then run its own: two
  # statement timeouts (30 s each) and a connection's wait (10 s), with room to spare. The push
  # subscription's acknowledgement deadline is the same, so Pub/Sub does not redeliver an
  # event its batch is still applying.
  event_timeout_seconds = 90

  # How the functions' connector reaches the instance (DB_IP_TYPE): the public IP when there is
  # one (it needs no VPC), else the private IP, else the PSC endpoint.
  database_ip_type = (
    var.database_network.public_ipv4 ? "PUBLIC" :
    var.database_network.psa_config != null ? "PRIVATE" : "PSC"
  )

  # Private Service Connect on the instance, when asked for (a list of one block, or none).
  database_psc_config = var.database_network.psc_allowed_consumer_projects == null ? [] : [{
    psc_enabled               = true
    allowed_consumer_projects = var.database_network.psc_allowed_consumer_projects
  }]

  # operators => IAM database users; other principal kinds (domain:, principalSet://…) cannot
  # log in to a database and get none.
  operator_user_types = {
    user           = "CLOUD_IAM_USER"
    serviceAccount = "CLOUD_IAM_SERVICE_ACCOUNT"
    group          = "CLOUD_IAM_GROUP"
  }
  operator_database_users = {
    for principal in var.operators : principal => {
      type = local.operator_user_types[split(":", principal)[0]]
      name = trimsuffix(trimprefix(principal, "${split(":", principal)[0]}:"), ".gserviceaccount.com")
    } if contains(keys(local.operator_user_types), split(":", principal)[0])
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "apis" {
  for_each           = var.enable_apis ? toset(local.apis) : toset([])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# Pub/Sub's service agent signs the push subscription's OIDC tokens and moves dead letters.
# Enabling the API does not always create it before the IAM grants that name it; this does.
resource "google_project_service_identity" "pubsub" {
  provider   = google-beta
  project    = var.project_id
  service    = "pubsub.googleapis.com"
  depends_on = [google_project_service.apis]
}
