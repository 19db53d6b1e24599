resource "google_cloud_scheduler_job" "sweep" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-sweep"
  description      = "Runs the vtid_ledger catch-up sweep."
  schedule         = var.sweep_schedule
  time_zone        = var.sweep_time_zone
  attempt_deadline = "${local.http_timeout_seconds}s"

  retry_config {
    # The next scheduled run is the retry. A sweep that finds another one running answers 200
    # with busy: true, so a failed run here is a real failure (database down, timeout).
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.http.service_config[0].uri}/internal/oasis/ledger/sync"
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.http.service_config[0].uri
    }
  }

  depends_on = [google_project_service.apis]
}
