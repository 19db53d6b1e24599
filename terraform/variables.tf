variable "project_id" {
  description = "Project to deploy into."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region for the functions, the scheduler job, Cloud SQL and the source bucket."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name; service account ids add up to 6 characters to it."
  type        = string
  default     = "vtid-ledger"
  validation {
    # Service account ids are at most 30 characters and the longest suffix is 6 ("-event").
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-24 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "enable_apis" {
  description = "Enable the Google APIs the module uses. Turn off where a platform team manages them."
  type        = bool
  default     = true
}

variable "sweep_schedule" {
  description = "Cron schedule of the catch-up sweep (Cloud Scheduler syntax)."
  type        = string
  default     = "* * * * *"
}

variable "sweep_time_zone" {
  description = "Time zone of sweep_schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "sweep_time_budget_seconds" {
  description = "A sweep stops after this many seconds and reports more=true; the next call continues."
  type        = number
  default     = 50
  validation {
    # The scheduler's attempt deadline and the function timeout are derived from it (budget + 30 s).
    condition     = var.sweep_time_budget_seconds >= 5 && var.sweep_time_budget_seconds <= 1700
    error_message = "sweep_time_budget_seconds must be between 5 and 1700 (Cloud Scheduler allows 30 minutes)."
  }
}

variable "sweep_batch_size" {
  description = "Events per sweep batch (one statement, one transaction). 50,000 keeps the database backend near 0.5 GB per batch; 100,000 sweeps faster with about 0.8 GB (BENCHMARKS.md)."
  type        = number
  default     = 50000
  validation {
    condition     = var.sweep_batch_size >= 1 && var.sweep_batch_size <= 500000
    error_message = "sweep_batch_size must be between 1 and 500000."
  }
}

variable "event_function" {
  description = "The Pub/Sub-triggered function: instances, requests per instance (functions-framework's THREADS follow it), database connections per instance (deliveries that arrive while its statements run are applied together by the next), memory, CPU, ingress. Ingress is ALLOW_INTERNAL_ONLY by default: Cloud Run counts Pub/Sub push from the same project (or VPC Service Controls perimeter) to the run.app URL as internal, and nothing else calls it; IAM guards it as well."
  type = object({
    max_instances = optional(number, 20)
    min_instances = optional(number, 0)
    concurrency   = optional(number, 80)
    pool_size     = optional(number, 2)
    memory        = optional(string, "512Mi")
    cpu           = optional(string, "1")
    ingress       = optional(string, "ALLOW_INTERNAL_ONLY")
  })
  default = {}
  validation {
    condition     = var.event_function.max_instances >= 1 && var.event_function.min_instances <= var.event_function.max_instances
    error_message = "event_function needs max_instances >= 1 and min_instances <= max_instances."
  }
  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.event_function.ingress)
    error_message = "event_function.ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
  validation {
    # Cloud Run's quantities: 512Mi, 1Gi, 2G; "512" alone would mean bytes.
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi|M|G)$", var.event_function.memory))
    error_message = "event_function.memory must be a quantity such as 512Mi or 1Gi."
  }
  validation {
    condition     = can(regex("^([1-9][0-9]*|0\\.[0-9]+)$", var.event_function.cpu))
    error_message = "event_function.cpu must be a number of CPUs such as 1, 2 or 0.5."
  }
  validation {
    condition     = var.event_function.concurrency >= 1 && var.event_function.concurrency <= 1000
    error_message = "event_function.concurrency must be between 1 and 1000."
  }
  validation {
    # More connections than requests could never be used.
    condition     = var.event_function.pool_size >= 1 && var.event_function.pool_size <= var.event_function.concurrency
    error_message = "event_function.pool_size must be between 1 and event_function.concurrency."
  }
}

variable "http_function" {
  description = "The HTTP function (sweep, status, metrics, ingest, task reads): instances, requests per instance, memory, CPU, ingress. Ingress is ALLOW_ALL by default because operators and producers call it from outside Google Cloud (IAM guards it); ALLOW_INTERNAL_ONLY still admits the scheduler, and callers inside the VPC; ALLOW_INTERNAL_AND_GCLB adds a load balancer."
  type = object({
    max_instances = optional(number, 5)
    min_instances = optional(number, 0)
    concurrency   = optional(number, 4)
    pool_size     = optional(number, 4)
    memory        = optional(string, "1Gi")
    cpu           = optional(string, "1")
    ingress       = optional(string, "ALLOW_ALL")
  })
  default = {}
  validation {
    condition     = var.http_function.max_instances >= 1 && var.http_function.min_instances <= var.http_function.max_instances
    error_message = "http_function needs max_instances >= 1 and min_instances <= max_instances."
  }
  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.http_function.ingress)
    error_message = "http_function.ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
  validation {
    # Cloud Run's quantities: 512Mi, 1Gi, 2G; "512" alone would mean bytes.
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi|M|G)$", var.http_function.memory))
    error_message = "http_function.memory must be a quantity such as 512Mi or 1Gi."
  }
  validation {
    condition     = can(regex("^([1-9][0-9]*|0\\.[0-9]+)$", var.http_function.cpu))
    error_message = "http_function.cpu must be a number of CPUs such as 1, 2 or 0.5."
  }
  validation {
    condition     = var.http_function.concurrency >= 1 && var.http_function.concurrency <= 1000
    error_message = "http_function.concurrency must be between 1 and 1000."
  }
  validation {
    condition     = var.http_function.pool_size >= 1 && var.http_function.pool_size <= var.http_function.concurrency
    error_message = "http_function.pool_size must be between 1 and http_function.concurrency."
  }
}

variable "runtime" {
  description = "Cloud Functions Python runtime. requirements.lock is resolved for python312."
  type        = string
  default     = "python312"
  validation {
    condition     = can(regex("^python3(1[2-9])$", var.runtime))
    error_message = "runtime must be python312 or newer (google.api_core drops Python 3.11 in 2027)."
  }
}

variable "source_retention_days" {
  description = "Days to keep each uploaded source archive and each built image (the ten newest images are always kept)."
  type        = number
  default     = 30
  validation {
    condition     = var.source_retention_days >= 1
    error_message = "source_retention_days must be at least 1."
  }
}

variable "dead_letter_max_attempts" {
  description = "Deliveries of one message before Pub/Sub moves it to the dead-letter topic."
  type        = number
  default     = 10
  validation {
    condition     = var.dead_letter_max_attempts >= 5 && var.dead_letter_max_attempts <= 100
    error_message = "Pub/Sub allows 5 to 100 delivery attempts."
  }
}

variable "message_retention" {
  description = "How long the topics and subscriptions keep messages, in seconds with an s (Pub/Sub allows 600s to 604800s on a subscription)."
  type        = string
  default     = "604800s"
  validation {
    condition     = can(regex("^[0-9]+s$", var.message_retention)) && try(tonumber(trimsuffix(var.message_retention, "s")) >= 600 && tonumber(trimsuffix(var.message_retention, "s")) <= 604800, false)
    error_message = "message_retention must be seconds with an s, from 600s to 604800s (7 days)."
  }
}

variable "dead_letter_alert_age_seconds" {
  description = "Alert when the oldest dead-lettered message is older than this."
  type        = number
  default     = 300
}

variable "notification_channels" {
  description = "Monitoring notification channels (projects/P/notificationChannels/N) every alert notifies. Empty: alerts open incidents that notify no one."
  type        = list(string)
  default     = []
}

variable "alerts" {
  description = "Alert thresholds: sweep lag, age of the oldest undelivered push message, the functions' 5xx share, Cloud SQL CPU and disk utilisation (0-1), connections as a share of max_connections."
  type = object({
    sweep_lag_seconds           = optional(number, 600)
    sweep_silence_seconds       = optional(number, 900)
    push_oldest_unacked_seconds = optional(number, 600)
    error_ratio                 = optional(number, 0.05)
    database_cpu                = optional(number, 0.8)
    database_disk               = optional(number, 0.8)
    database_connections        = optional(number, 0.8)
  })
  default = {}
  validation {
    condition     = alltrue([for v in [var.alerts.error_ratio, var.alerts.database_cpu, var.alerts.database_disk, var.alerts.database_connections] : v > 0 && v <= 1])
    error_message = "alerts.error_ratio and the database_* thresholds are shares between 0 and 1."
  }
}

variable "database_version" {
  description = "Cloud SQL for PostgreSQL version (13 or newer: the sweep uses pg_current_xact_id)."
  type        = string
  default     = "POSTGRES_16"
  validation {
    condition     = can(regex("^POSTGRES_(1[3-9]|[2-9][0-9])$", var.database_version))
    error_message = "database_version must be POSTGRES_13 or newer."
  }
}

variable "database_tier" {
  description = "Cloud SQL machine tier: db-custom-CPUS-MB (or db-f1-micro, db-g1-small) for ENTERPRISE, db-perf-optimized-N-CPUS for ENTERPRISE_PLUS."
  type        = string
  default     = "db-custom-1-3840"
}

variable "database_edition" {
  description = "Cloud SQL edition, ENTERPRISE or ENTERPRISE_PLUS; it must match database_tier (checked before apply)."
  type        = string
  default     = "ENTERPRISE"
  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.database_edition)
    error_message = "database_edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
}

variable "database_maintenance_window" {
  description = "When Cloud SQL may restart the instance for maintenance: day 1-7 (Monday is 1), hour 0-23 UTC, update_track canary, stable or week5."
  type = object({
    day          = optional(number, 7)
    hour         = optional(number, 3)
    update_track = optional(string, "stable")
  })
  default = {}
  validation {
    condition     = var.database_maintenance_window.day >= 1 && var.database_maintenance_window.day <= 7 && var.database_maintenance_window.hour >= 0 && var.database_maintenance_window.hour <= 23
    error_message = "database_maintenance_window needs day 1-7 and hour 0-23."
  }
  validation {
    condition     = contains(["canary", "stable", "week5"], var.database_maintenance_window.update_track)
    error_message = "database_maintenance_window.update_track must be canary, stable or week5."
  }
}

variable "database_availability_type" {
  description = "ZONAL, or REGIONAL for a standby in another zone."
  type        = string
  default     = "REGIONAL"
  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.database_availability_type)
    error_message = "database_availability_type must be ZONAL or REGIONAL."
  }
}

variable "database_max_connections" {
  description = "The instance's max_connections flag: the connection budget the functions must fit in. Changing it restarts the instance."
  type        = number
  default     = 200
}

variable "database_reserved_connections" {
  description = "Connections kept free for operators, migrations and Cloud SQL itself."
  type        = number
  default     = 20
}

variable "database_disk_autoresize_limit_gb" {
  description = "The most the instance's disk may grow to by itself, in GB (0: no limit). A bound keeps a runaway log from growing the bill without a word."
  type        = number
  default     = 100
  validation {
    condition     = var.database_disk_autoresize_limit_gb >= 0
    error_message = "database_disk_autoresize_limit_gb must be 0 (no limit) or more."
  }
}

variable "database_name" {
  description = "Database holding oasis_events, vtid_ledger and the writer's tables."
  type        = string
  default     = "oasis"
}

variable "database_deletion_protection" {
  description = "Protect the instance from deletion (Terraform and the API)."
  type        = bool
  default     = true
}

variable "backup_retained_count" {
  description = "Automated backups to keep."
  type        = number
  default     = 14
}

variable "operators" {
  description = "Principals allowed to call the HTTP function and to log in to the database as themselves (for example group:platform@example.com): each user:, serviceAccount: or group: becomes an IAM database user (CLOUD_IAM_USER, CLOUD_IAM_SERVICE_ACCOUNT, CLOUD_IAM_GROUP) with roles/cloudsql.client and roles/cloudsql.instanceUser on the instance; python -m ledger grant --operator gives it its database role (DEPLOY.md)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for p in var.operators : !contains(["allUsers", "allAuthenticatedUsers"], p)])
    error_message = "operators cannot be allUsers or allAuthenticatedUsers: the functions are never public."
  }
}

variable "database_network" {
  description = "How Cloud SQL is reached. public_ipv4 (default): a public IP without authorized networks, which only the Cloud SQL connectors reach (IAM, mutual TLS). Where constraints/sql.restrictPublicIp is enforced, set public_ipv4 = false and give psa_config (a private IP on private_network, projects/P/global/networks/N, whose private services access the network's owner has set up; allocated_ip_range picks one of its reserved ranges) or psc_allowed_consumer_projects (Private Service Connect: the projects that may create an endpoint to the instance; the endpoint and its DNS record are the network owner's). The functions connect over the public IP when there is one, else the private IP, else PSC; the last two need vpc_connector."
  type = object({
    public_ipv4 = optional(bool, true)
    psa_config = optional(object({
      private_network    = string
      allocated_ip_range = optional(string)
    }))
    psc_allowed_consumer_projects = optional(list(string))
  })
  default = {}
  validation {
    condition     = var.database_network.public_ipv4 || var.database_network.psa_config != null || var.database_network.psc_allowed_consumer_projects != null
    error_message = "database_network needs public_ipv4, psa_config or psc_allowed_consumer_projects: an instance with none of them cannot be reached."
  }
  validation {
    # The provider's own pattern for private_network, without the optional URL prefix.
    condition     = var.database_network.psa_config == null ? true : can(regex("^projects/[^/]+/global/networks/[a-z]([-a-z0-9]*[a-z0-9])?$", var.database_network.psa_config.private_network))
    error_message = "database_network.psa_config.private_network must be a network's path: projects/PROJECT/global/networks/NAME."
  }
}

variable "vpc_connector" {
  description = "Serverless VPC Access connector (projects/P/locations/R/connectors/N) both functions send traffic through, to reach Cloud SQL's private IP or a PSC endpoint. egress_settings PRIVATE_RANGES_ONLY (default: Google APIs and Pub/Sub keep the default path) or ALL_TRAFFIC (then the connector's network needs Cloud NAT or Private Google Access). Null: no VPC egress."
  type = object({
    name            = string
    egress_settings = optional(string, "PRIVATE_RANGES_ONLY")
  })
  default = null
  validation {
    condition     = var.vpc_connector == null ? true : can(regex("^projects/[^/]+/locations/[^/]+/connectors/[^/]+$", var.vpc_connector.name))
    error_message = "vpc_connector.name must be a connector's path: projects/PROJECT/locations/REGION/connectors/NAME."
  }
  validation {
    condition     = var.vpc_connector == null ? true : contains(["PRIVATE_RANGES_ONLY", "ALL_TRAFFIC"], var.vpc_connector.egress_settings)
    error_message = "vpc_connector.egress_settings must be PRIVATE_RANGES_ONLY or ALL_TRAFFIC."
  }
}

variable "producers" {
  description = "Principals that publish OASIS events straight to the topic (for example serviceAccount:ci@p.iam.gserviceaccount.com). Publishing writes ledger rows: grant it like write access to the ledger."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for p in var.producers : !contains(["allUsers", "allAuthenticatedUsers"], p)])
    error_message = "producers cannot be allUsers or allAuthenticatedUsers: the topic writes the ledger."
  }
}

variable "ingesters" {
  description = "Principals that send events to POST /api/v1/events/ingest of the HTTP function (for example serviceAccount:deployer@p.iam.gserviceaccount.com): each may call the function, and the function lets them ingest and nothing else. Events they store carry their email as ingested_by."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for p in var.ingesters : !contains(["allUsers", "allAuthenticatedUsers"], p)])
    error_message = "ingesters cannot be allUsers or allAuthenticatedUsers: ingest writes the log."
  }
}

variable "labels" {
  description = "Labels for every resource that takes them."
  type        = map(string)
  default     = {}
}
