# One dashboard: what comes in (ingest), what the real-time path does with it, how far behind
# the sweep is, what is rejected, and what is dead-lettered.
locals {
  user_metric = "logging.googleapis.com/user"
  dashboard_tiles = [
    {
      title  = "Ingest requests / s, by status"
      filter = "metric.type = \"${local.user_metric}/${google_logging_metric.ingest_requests.name}\" AND resource.type = \"cloud_run_revision\""
      align  = "ALIGN_RATE"
      reduce = "REDUCE_SUM"
      group  = ["metric.label.status"]
    },
    {
      title  = "Real-time path: events / s, by outcome"
      filter = "metric.type = \"${local.user_metric}/${google_logging_metric.events_applied.name}\" AND resource.type = \"cloud_run_revision\""
      align  = "ALIGN_RATE"
      reduce = "REDUCE_SUM"
      group  = ["metric.label.outcome"]
    },
    {
      title  = "Rejections / s, by source"
      filter = "metric.type = \"${local.user_metric}/${google_logging_metric.events_rejected.name}\" AND resource.type = \"cloud_run_revision\""
      align  = "ALIGN_RATE"
      reduce = "REDUCE_SUM"
      group  = ["metric.label.source"]
    },
    {
      title  = "Sweep lag, seconds (p99 after each sweep)"
      filter = "metric.type = \"${local.user_metric}/${google_logging_metric.sweep_lag.name}\" AND resource.type = \"cloud_run_revision\""
      align  = "ALIGN_PERCENTILE_99"
      reduce = "REDUCE_MAX"
      group  = []
    },
    {
      title  = "Sweep backlog, events (p99 after each sweep)"
      filter = "metric.type = \"${local.user_metric}/${google_logging_metric.sweep_backlog.name}\" AND resource.type = \"cloud_run_revision\""
      align  = "ALIGN_PERCENTILE_99"
      reduce = "REDUCE_MAX"
      group  = []
    },
    {
      title  = "Dead letters waiting"
      filter = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type = \"pubsub_subscription\" AND resource.label.subscription_id = \"${google_pubsub_subscription.dead_letter.name}\""
      align  = "ALIGN_MAX"
      reduce = "REDUCE_SUM"
      group  = []
    },
  ]
}

resource "google_monitoring_dashboard" "ledger" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name_prefix}: OASIS → VTID ledger"
    mosaicLayout = {
      columns = 12
      tiles = [
        for i, tile in local.dashboard_tiles : {
          xPos   = (i % 2) * 6
          yPos   = floor(i / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = tile.title
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = tile.filter
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = tile.align
                      crossSeriesReducer = tile.reduce
                      groupByFields      = tile.group
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })
  depends_on = [google_project_service.apis]
}
