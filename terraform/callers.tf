# Who may use which route of the HTTP function (ledger/callers.py): Cloud Run's IAM decides who
# may call the function at all; the function then reads the email of the caller's ID token and
# lets the scheduler sync, ingesters ingest, and operators read, sync and rebuild.
locals {
  # The scheduler's address as Google makes it, known before the account exists, so that the
  # function's environment is known at plan time.
  scheduler_member = "serviceAccount:${google_service_account.scheduler.account_id}@${var.project_id}.iam.gserviceaccount.com"
  http_callers = {
    sync    = concat([local.scheduler_member], var.operators)
    ingest  = var.ingesters
    read    = var.operators
    rebuild = var.operators
  }
  # A user's or a service account's ID token carries its email. A group's or a domain's members
  # carry their own, which the function cannot tie to the group: a list naming one is open to
  # whoever IAM lets call the function ("*").
  http_caller_lists = {
    for capability, principals in local.http_callers : capability => join(",", distinct([
      for p in principals : (
        startswith(p, "user:") || startswith(p, "serviceAccount:")
        ? lower(split(":", p)[1])
        : "*"
      )
    ]))
  }
  http_caller_env = {
    LEDGER_SYNC_CALLERS    = local.http_caller_lists.sync
    LEDGER_INGEST_CALLERS  = local.http_caller_lists.ingest
    LEDGER_READ_CALLERS    = local.http_caller_lists.read
    LEDGER_REBUILD_CALLERS = local.http_caller_lists.rebuild
  }
}
