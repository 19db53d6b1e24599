# What the build needs and makes: the functions' source (main.py, ledger/, migrations/, sql/ and
# the pinned requirements), zipped into an object named by the hash of its content, so any change
# deploys a new revision; and the repository the built images go to.
locals {
  source_root = "${path.module}/.."
  # Archive name => file in the repository. The build installs requirements.lock (every
  # package pinned, with hashes) as its requirements.txt: what was tested is what deploys.
  source_files = merge(
    { "main.py" = "main.py", "requirements.txt" = "requirements.lock" },
    { for f in fileset(local.source_root, "ledger/**") : f => f if !strcontains(f, "__pycache__") },
    { for f in fileset(local.source_root, "migrations/*.sql") : f => f },
    { for f in fileset(local.source_root, "sql/*.sql") : f => f },
  )
  source_hash = sha256(join("", [
    for name in sort(keys(local.source_files)) :
    "${name}:${filesha256("${local.source_root}/${local.source_files[name]}")}"
  ]))
}

data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.module}/.build/source-${local.source_hash}.zip"
  dynamic "source" {
    for_each = local.source_files
    content {
      content  = file("${local.source_root}/${source.value}")
      filename = source.key
    }
  }
}

resource "google_storage_bucket" "source" {
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = local.labels
  versioning {
    enabled = true
  }
  # Every archive has a name of its own, so "newer versions" never accrue: delete by age.
  # Cloud Functions keeps its own copy of what it built, so old archives serve no deployment.
  lifecycle_rule {
    condition {
      age = var.source_retention_days
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  name   = "source-${local.source_hash}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

resource "google_artifact_registry_repository" "functions" {
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  description   = "Images of the VTID ledger writer's functions."
  format        = "DOCKER"
  labels        = local.labels

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "${var.source_retention_days}d"
    }
  }

  depends_on = [google_project_service.apis]
}
