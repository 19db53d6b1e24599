terraform {
  required_version = ">= 1.5.0, < 2.0.0"
  required_providers {
    # 6.17.0: the first to take durations in days (older_than = "30d", build.tf).
    google = {
      source  = "hashicorp/google"
      version = ">= 6.17.0, < 8.0.0"
    }
    # Only for google_project_service_identity (the Pub/Sub service agent), beta-only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.17.0, < 8.0.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4.0, < 3.0.0"
    }
    # Waits for the builder's IAM grants to propagate before the first build.
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9.0, < 1.0.0"
    }
  }
}
