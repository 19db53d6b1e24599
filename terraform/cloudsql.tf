resource "google_sql_database_instance" "ledger" {
  project             = var.project_id
  region              = var.region
  name                = "${var.name_prefix}-pg"
  database_version    = var.database_version
  deletion_protection = var.database_deletion_protection

  settings {
    tier                        = var.database_tier
    edition                     = var.database_edition
    availability_type           = var.database_availability_type
    deletion_protection_enabled = var.database_deletion_protection
    disk_autoresize             = true
    disk_autoresize_limit       = var.database_disk_autoresize_limit_gb
    # Only the Cloud SQL connectors (and the Auth Proxy) may connect, as DEPLOY.md says.
    connector_enforcement = "REQUIRED"
    user_labels           = local.labels

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "03:00"
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = var.backup_retained_count
      }
    }

    # By default a public IP without authorized networks: only the Cloud SQL connector
    # (IAM-authorised, mTLS with its own client certificates) can reach it; no network is ever
    # trusted. database_network offers a private IP or Private Service Connect instead, for
    # organisations that enforce constraints/sql.restrictPublicIp.
    ip_configuration {
      ipv4_enabled       = var.database_network.public_ipv4
      private_network    = try(var.database_network.psa_config.private_network, null)
      allocated_ip_range = try(var.database_network.psa_config.allocated_ip_range, null)
      ssl_mode           = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"

      dynamic "psc_config" {
        for_each = local.database_psc_config
        content {
          psc_enabled               = psc_config.value.psc_enabled
          allowed_consumer_projects = psc_config.value.allowed_consumer_projects
        }
      }
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "max_connections"
      value = tostring(var.database_max_connections)
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
    database_flags {
      # A transaction left open holds the sweep back (docs/behaviour.md §6); end forgotten idle ones.
      name  = "idle_in_transaction_session_timeout"
      value = "600000"
    }

    insights_config {
      query_insights_enabled = true
    }

    maintenance_window {
      day          = var.database_maintenance_window.day
      hour         = var.database_maintenance_window.hour
      update_track = var.database_maintenance_window.update_track
    }
  }

  lifecycle {
    precondition {
      condition     = local.connections_needed <= local.connection_budget
      error_message = "max_instances x concurrency of both functions exceeds database_max_connections - database_reserved_connections."
    }
    precondition {
      # ENTERPRISE_PLUS runs only on performance-optimised tiers, which ENTERPRISE refuses.
      condition     = (var.database_edition == "ENTERPRISE_PLUS") == startswith(var.database_tier, "db-perf-optimized-")
      error_message = "database_tier does not fit database_edition: ENTERPRISE_PLUS takes db-perf-optimized-N-* tiers, ENTERPRISE takes db-custom-*, db-f1-micro or db-g1-small."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_sql_database" "ledger" {
  project  = var.project_id
  instance = google_sql_database_instance.ledger.name
  name     = var.database_name
}

# IAM database users: the functions log in as their service accounts, no passwords anywhere.
resource "google_sql_user" "event_function" {
  project  = var.project_id
  instance = google_sql_database_instance.ledger.name
  name     = trimsuffix(google_service_account.event_function.email, ".gserviceaccount.com")
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

resource "google_sql_user" "http_function" {
  project  = var.project_id
  instance = google_sql_database_instance.ledger.name
  name     = trimsuffix(google_service_account.http_function.email, ".gserviceaccount.com")
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# Operators log in as themselves (audit logs name them), not as a shared postgres: each user:,
# serviceAccount: or group: of `operators` is an IAM database user. Cloud SQL names a service
# account's user by its email without ".gserviceaccount.com" (Postgres limits names to 63
# bytes); a group's members log in with their own emails and inherit the group's grants.
resource "google_sql_user" "operators" {
  for_each = local.operator_database_users
  project  = var.project_id
  instance = google_sql_database_instance.ledger.name
  name     = each.value.name
  type     = each.value.type
}
