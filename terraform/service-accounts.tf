resource "google_service_account" "event_function" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-event"
  display_name = "VTID ledger: Pub/Sub event function"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "http_function" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-http"
  display_name = "VTID ledger: HTTP function (sweep, status, ingest, reads)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "VTID ledger: Pub/Sub push identity (OIDC)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-sched"
  display_name = "VTID ledger: Cloud Scheduler sweep caller (OIDC)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "builder" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "VTID ledger: builds the functions' images"
  depends_on   = [google_project_service.apis]
}
