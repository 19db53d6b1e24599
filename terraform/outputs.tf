output "event_function_url" {
  description = "URL of the Pub/Sub push target (oasis_event)."
  value       = google_cloudfunctions2_function.event.service_config[0].uri
}

output "http_function_url" {
  description = "URL of ledger_http: POST /internal/oasis/ledger/sync, GET /internal/oasis/ledger/status, ..."
  value       = google_cloudfunctions2_function.http.service_config[0].uri
}

output "topic" {
  description = "Topic producers publish OASIS events to (PUBSUB_TOPIC)."
  value       = google_pubsub_topic.events.id
}

output "dead_letter_subscription" {
  description = "Subscription that keeps dead-lettered events."
  value       = google_pubsub_subscription.dead_letter.id
}

output "instance_connection_name" {
  description = "Cloud SQL connection name (INSTANCE_CONNECTION_NAME)."
  value       = google_sql_database_instance.ledger.connection_name
}

output "database_users" {
  description = "IAM database users of the two functions and of the operators: after migrating, python -m ledger grant --writer <event_function> --service <http_function> --operator <each operator>."
  value = {
    event_function = google_sql_user.event_function.name
    http_function  = google_sql_user.http_function.name
    # principal => database user name, for grant --operator
    operators = { for principal, user in google_sql_user.operators : principal => user.name }
  }
}

output "source_object" {
  description = "The source archive deployed, named by the hash of its content."
  value       = google_storage_bucket_object.source.name
}

output "database_name" {
  description = "The database the functions use (DB_NAME; DEPLOY.md reads it from here)."
  value       = google_sql_database.ledger.name
}

output "service_accounts" {
  description = "Each account's email: the functions', the push identity's, the scheduler's and the builder's."
  value = {
    event_function = google_service_account.event_function.email
    http_function  = google_service_account.http_function.email
    push           = google_service_account.push.email
    scheduler      = google_service_account.scheduler.email
    builder        = google_service_account.builder.email
  }
}
