# Two explicit resources rather than one for_each: each is wired to different accounts, topics
# and IAM, and keeping them apart lets offline evaluation (tests/test_terraform.py) see every
# reference; the shared part is local.database_env.
locals {
  database_env = {
    INSTANCE_CONNECTION_NAME = google_sql_database_instance.ledger.connection_name
    DB_NAME                  = google_sql_database.ledger.name
    DB_IAM_AUTH              = "true"
    DB_IP_TYPE               = local.database_ip_type
    GOOGLE_CLOUD_PROJECT     = var.project_id
  }
}

resource "google_cloudfunctions2_function" "event" {
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-oasis-event"
  description = "Applies each OASIS event published to ${google_pubsub_topic.events.name} to vtid_ledger."
  labels      = local.labels

  build_config {
    runtime           = var.runtime
    entry_point       = "oasis_event"
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.event_function.email
    max_instance_count               = var.event_function.max_instances
    min_instance_count               = var.event_function.min_instances
    max_instance_request_concurrency = var.event_function.concurrency
    available_memory                 = var.event_function.memory
    available_cpu                    = var.event_function.cpu
    timeout_seconds                  = local.event_timeout_seconds
    ingress_settings                 = var.event_function.ingress
    vpc_connector                    = try(var.vpc_connector.name, null)
    vpc_connector_egress_settings    = try(var.vpc_connector.egress_settings, null)
    all_traffic_on_latest_revision   = true
    environment_variables = merge(local.database_env, {
      DB_USER      = trimsuffix(google_service_account.event_function.email, ".gserviceaccount.com")
      DB_POOL_SIZE = tostring(var.event_function.pool_size)
      THREADS      = tostring(var.event_function.concurrency)
    })
  }

  lifecycle {
    precondition {
      condition     = local.connections_needed <= local.connection_budget
      error_message = "max_instances x pool_size of both functions exceeds database_max_connections - database_reserved_connections."
    }
    precondition {
      # A private IP or a PSC endpoint is an address in a VPC, which a function reaches only
      # through a connector.
      condition     = local.database_ip_type == "PUBLIC" || var.vpc_connector != null
      error_message = "database_network without public_ipv4 needs vpc_connector: the functions reach a private IP or a PSC endpoint only through the VPC."
    }
  }

  depends_on = [time_sleep.builder_roles_propagate]
}

resource "google_cloudfunctions2_function" "http" {
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-http"
  description = "Catch-up sweep, status, metrics, ingest and task reads for vtid_ledger."
  labels      = local.labels

  build_config {
    runtime           = var.runtime
    entry_point       = "ledger_http"
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.http_function.email
    max_instance_count               = var.http_function.max_instances
    min_instance_count               = var.http_function.min_instances
    max_instance_request_concurrency = var.http_function.concurrency
    available_memory                 = var.http_function.memory
    available_cpu                    = var.http_function.cpu
    timeout_seconds                  = local.http_timeout_seconds
    ingress_settings                 = var.http_function.ingress
    vpc_connector                    = try(var.vpc_connector.name, null)
    vpc_connector_egress_settings    = try(var.vpc_connector.egress_settings, null)
    all_traffic_on_latest_revision   = true
    environment_variables = merge(local.database_env, local.http_caller_env, {
      DB_USER             = trimsuffix(google_service_account.http_function.email, ".gserviceaccount.com")
      DB_POOL_SIZE        = tostring(var.http_function.pool_size)
      THREADS             = tostring(var.http_function.concurrency)
      PUBSUB_TOPIC        = google_pubsub_topic.events.id
      SWEEP_TIME_BUDGET_S = tostring(var.sweep_time_budget_seconds)
      SWEEP_BATCH_SIZE    = tostring(var.sweep_batch_size)
    })
  }

  lifecycle {
    precondition {
      condition     = local.connections_needed <= local.connection_budget
      error_message = "max_instances x pool_size of both functions exceeds database_max_connections - database_reserved_connections."
    }
    precondition {
      # A private IP or a PSC endpoint is an address in a VPC, which a function reaches only
      # through a connector.
      condition     = local.database_ip_type == "PUBLIC" || var.vpc_connector != null
      error_message = "database_network without public_ipv4 needs vpc_connector: the functions reach a private IP or a PSC endpoint only through the VPC."
    }
  }

  depends_on = [time_sleep.builder_roles_propagate]
}
