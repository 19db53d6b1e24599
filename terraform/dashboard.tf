# One dashboard: what comes in (ingest), what the real-time path does with it, how far behind
# the sweep is, what is rejected, and what is dead-lettered.
#
# The JSON is written as the Monitoring API returns it, or every plan shows a change
# (hashicorp/terraform-provider-google#16173): the API drops fields that hold their proto3
# default (a tile's xPos or yPos of 0, an empty groupByFields), and the provider only ignores
# fields the API adds, not ones it drops. So no field here is ever 0, "", [] or false
# (tests/test_terraform.py walks the JSON for them).
locals {
  user_metric = "logging.googleapis.com/user"
  # PromQL's spelling of logging.googleapis.com/user/<name> (Cloud Monitoring's mapping: the
  # first "/" becomes ":", every other character not a letter, digit or "_" becomes "_").
  rejected_events_promql = "logging_googleapis_com:user_${replace(google_logging_metric.rejected_events.name, "/[^a-zA-Z0-9_]/", "_")}"
  dashboard_tiles = [
    {
      title = "Ingest requests / s, by status"
      query = {
        timeSeriesFilter = {
          filter = "metric.type = \"${local.user_metric}/${google_logging_metric.ingest_requests.name}\" AND resource.type = \"cloud_run_revision\""
          aggregation = {
            alignmentPeriod    = "60s"
            perSeriesAligner   = "ALIGN_RATE"
            crossSeriesReducer = "REDUCE_SUM"
            groupByFields      = ["metric.label.status"]
          }
        }
      }
    },
    {
      title = "Real-time path: events / s, by outcome"
      query = {
        timeSeriesFilter = {
          filter = "metric.type = \"${local.user_metric}/${google_logging_metric.events_applied.name}\" AND resource.type = \"cloud_run_revision\""
          aggregation = {
            alignmentPeriod    = "60s"
            perSeriesAligner   = "ALIGN_RATE"
            crossSeriesReducer = "REDUCE_SUM"
            groupByFields      = ["metric.label.outcome"]
          }
        }
      }
    },
    {
      # The metric is a distribution of each line's `rejected` count: its sum is the number
      # of events, which a filter's aligners cannot chart and PromQL's _sum series can.
      title = "Rejected events / s, by source"
      query = {
        prometheusQuery = "sum by (source) (rate(${local.rejected_events_promql}_sum{monitored_resource=\"cloud_run_revision\"}[5m]))"
      }
    },
    {
      title = "Sweep lag, seconds (p99 after each sweep)"
      query = {
        timeSeriesFilter = {
          filter = "metric.type = \"${local.user_metric}/${google_logging_metric.sweep_lag.name}\" AND resource.type = \"cloud_run_revision\""
          aggregation = {
            alignmentPeriod    = "60s"
            perSeriesAligner   = "ALIGN_PERCENTILE_99"
            crossSeriesReducer = "REDUCE_MAX"
          }
        }
      }
    },
    {
      title = "Sweep backlog, events (p99 after each sweep)"
      query = {
        timeSeriesFilter = {
          filter = "metric.type = \"${local.user_metric}/${google_logging_metric.sweep_backlog.name}\" AND resource.type = \"cloud_run_revision\""
          aggregation = {
            alignmentPeriod    = "60s"
            perSeriesAligner   = "ALIGN_PERCENTILE_99"
            crossSeriesReducer = "REDUCE_MAX"
          }
        }
      }
    },
    {
      title = "Dead letters waiting"
      query = {
        timeSeriesFilter = {
          filter = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type = \"pubsub_subscription\" AND resource.label.subscription_id = \"${google_pubsub_subscription.dead_letter.name}\""
          aggregation = {
            alignmentPeriod    = "60s"
            perSeriesAligner   = "ALIGN_MAX"
            crossSeriesReducer = "REDUCE_SUM"
          }
        }
      }
    },
  ]
}

resource "google_monitoring_dashboard" "ledger" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name_prefix}: OASIS → VTID ledger"
    mosaicLayout = {
      columns = 12
      # Two tiles a row; the left column and the top row leave xPos / yPos out (0).
      tiles = [
        for i, tile in local.dashboard_tiles : merge(
          i % 2 == 0 ? {} : { xPos = 6 },
          i < 2 ? {} : { yPos = floor(i / 2) * 4 },
          {
            width  = 6
            height = 4
            widget = {
              title = tile.title
              xyChart = {
                dataSets = [{
                  plotType        = "LINE"
                  timeSeriesQuery = tile.query
                }]
              }
            }
          },
        )
      ]
    }
  })
  depends_on = [google_project_service.apis]
}
