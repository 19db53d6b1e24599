# The functions' source: main.py, requirements.txt, ledger/ and migrations/, zipped into an
# object named by the hash of its content, so any code change deploys a new revision.
locals {
  source_root = "${path.module}/.."
  source_files = sort(concat(
    ["main.py", "requirements.txt"],
    [for f in fileset(local.source_root, "ledger/**") : f if !strcontains(f, "__pycache__")],
    tolist(fileset(local.source_root, "migrations/*.sql")),
  ))
  source_hash = sha256(join("", [for f in local.source_files : "${f}:${filesha256("${local.source_root}/${f}")}"]))
}

data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.module}/.build/source-${local.source_hash}.zip"
  dynamic "source" {
    for_each = local.source_files
    content {
      content  = file("${local.source_root}/${source.value}")
      filename = source.value
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
  lifecycle_rule {
    condition {
      num_newer_versions = 5
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
