"""The Terraform module, evaluated offline by tfparse (a real HCL evaluator) and scanned by
checkov. No provider can be downloaded here, so the wiring is checked statically."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tfparse

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "terraform"
EXAMPLE = {
    "project_id": "acme-platform-prod",
    "region": "europe-west1",
    "operators": ["group:platform-oncall@example.com"],
}

Module = dict[str, list[dict[str, Any]]]


def hcl(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {hcl(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def evaluate(module_dir: Path, tmp: Path, variables: dict[str, Any]) -> Module:
    tfvars = tmp / "test.tfvars"
    tfvars.write_text("".join(f"{k} = {hcl(v)}\n" for k, v in variables.items()))
    cwd = os.getcwd()
    os.chdir(module_dir)  # path.module is "." to tfparse; source.tf reads "${path.module}/.."
    try:
        return dict(tfparse.load_from_path(".", vars_paths=[os.path.relpath(tfvars, module_dir)]))
    finally:
        os.chdir(cwd)


@pytest.fixture
def load(tmp_path: Path) -> Callable[..., Module]:
    def _load(**overrides: Any) -> Module:
        return evaluate(MODULE, tmp_path, {**EXAMPLE, **overrides})

    return _load


@pytest.fixture
def module(load: Callable[..., Module]) -> Module:
    return load()


def one(module: Module, kind: str, name: str) -> dict[str, Any]:
    [found] = [
        r for r in module[kind] if r["__tfmeta"]["path"].split("[")[0].endswith(f"{kind}.{name}")
    ]
    return found


def ref(value: Any) -> str:
    """The reference an unresolved attribute points at, e.g. google_service_account.push.email."""
    assert isinstance(value, dict) and "__attribute__" in value, value
    return str(value["__attribute__"])


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_resources(module: Module) -> None:
    kinds = {k for k in module if k not in ("locals", "output", "variable", "terraform")}
    assert kinds >= {
        "google_pubsub_topic",
        "google_pubsub_subscription",
        "google_cloudfunctions2_function",
        "google_cloud_scheduler_job",
        "google_sql_database_instance",
        "google_sql_database",
        "google_sql_user",
        "google_service_account",
        "google_project_iam_member",
        "google_cloud_run_v2_service_iam_member",
        "google_pubsub_topic_iam_member",
        "google_pubsub_subscription_iam_member",
        "google_service_account_iam_member",
        "google_monitoring_alert_policy",
        "google_project_service",
        "google_storage_bucket",
        "google_storage_bucket_object",
    }


def test_push_subscription_to_the_event_function_and_the_dead_letter_topic(module: Module) -> None:
    push = one(module, "google_pubsub_subscription", "push")
    dead_topic = one(module, "google_pubsub_topic", "dead_letter")
    assert push["topic"] == one(module, "google_pubsub_topic", "events")["id"]
    uri = "google_cloudfunctions2_function.event.service_config.[0].uri"  # the Cloud Run URI
    assert ref(push["push_config"]["push_endpoint"]) == uri
    oidc = push["push_config"]["oidc_token"]
    assert ref(oidc["service_account_email"]) == "google_service_account.push.email"
    assert ref(oidc["audience"]) == uri
    assert push["dead_letter_policy"]["dead_letter_topic"] == dead_topic["id"]
    assert push["dead_letter_policy"]["max_delivery_attempts"] == 10
    assert push["expiration_policy"]["ttl"] == ""
    assert push["message_retention_duration"] == "604800s"
    assert push["retry_policy"]["minimum_backoff"] == "10s"
    kept = one(module, "google_pubsub_subscription", "dead_letter")
    assert kept["topic"] == dead_topic["id"] and kept["expiration_policy"]["ttl"] == ""
    assert "push_config" not in kept  # a pull subscription: dead letters wait for an operator


def test_pubsub_service_agent_is_created_and_can_dead_letter(module: Module) -> None:
    identity = one(module, "google_project_service_identity", "pubsub")
    assert identity["service"] == "pubsub.googleapis.com"
    assert identity["__tfmeta"].get("provider", "google-beta") == "google-beta"
    agent = "google_project_service_identity.pubsub.member"
    publisher = one(module, "google_pubsub_topic_iam_member", "pubsub_dead_letters")
    assert publisher["topic"] == "vtid-ledger-oasis-events-dead-letter"
    assert (publisher["role"], ref(publisher["member"])) == ("roles/pubsub.publisher", agent)
    subscriber = one(module, "google_pubsub_subscription_iam_member", "pubsub_acks_dead_letters")
    assert subscriber["subscription"] == "vtid-ledger-oasis-events-push"
    assert (subscriber["role"], ref(subscriber["member"])) == ("roles/pubsub.subscriber", agent)
    minter = one(module, "google_service_account_iam_member", "pubsub_mints_push_tokens")
    assert ref(minter["service_account_id"]) == "google_service_account.push.name"
    assert (minter["role"], ref(minter["member"])) == (
        "roles/iam.serviceAccountTokenCreator",
        agent,
    )
    assert "provider   = google-beta" in (MODULE / "main.tf").read_text()


def test_scheduler_calls_the_sweep_with_oidc_and_a_deadline_above_the_budget(
    load: Callable[..., Module],
) -> None:
    module = load(sweep_time_budget_seconds=120)
    job = one(module, "google_cloud_scheduler_job", "sweep")
    target = job["http_target"]
    assert target["http_method"] == "POST"
    uri = "google_cloudfunctions2_function.http.service_config.[0].uri"
    assert target["uri"] == "${" + uri.replace(".[0]", "[0]") + "}/internal/oasis/ledger/sync"
    assert ref(target["oidc_token"]["audience"]) == uri
    assert job["retry_config"]["retry_count"] == 0  # busy answers 200: a failure is a failure
    assert (
        ref(target["oidc_token"]["service_account_email"])
        == "google_service_account.scheduler.email"
    )
    assert int(job["attempt_deadline"].rstrip("s")) > 120
    http = one(module, "google_cloudfunctions2_function", "http")
    assert http["service_config"]["timeout_seconds"] > 120


def test_functions_run_as_their_own_accounts_with_iam_database_auth(module: Module) -> None:
    for name, entry, account in [
        ("event", "oasis_event", "event_function"),
        ("http", "ledger_http", "http_function"),
    ]:
        fn = one(module, "google_cloudfunctions2_function", name)
        assert fn["build_config"]["entry_point"] == entry
        assert fn["build_config"]["runtime"] == "python312"
        repository = one(module, "google_artifact_registry_repository", "functions")
        assert fn["build_config"]["docker_repository"] == repository["id"]
        waits = [r["label"] + "." + r["name"] for r in fn["__tfmeta"]["references"]]
        assert "time_sleep.builder_roles_propagate" in waits
        service = fn["service_config"]
        assert ref(service["service_account_email"]) == f"google_service_account.{account}.email"
        env = service["environment_variables"]
        assert env["DB_IAM_AUTH"] == "true" and env["DB_NAME"] == "oasis"
        assert "INSTANCE_CONNECTION_NAME" in env and "DB_USER" in env
        user = one(module, "google_sql_user", account)
        assert user["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert {a["account_id"] for a in module["google_service_account"]} == {
        "vtid-ledger-event",
        "vtid-ledger-http",
        "vtid-ledger-push",
        "vtid-ledger-sched",
        "vtid-ledger-build",
    }


def test_service_accounts_get_only_their_roles(module: Module) -> None:
    grants: dict[str, set[str]] = {}
    for binding in module["google_project_iam_member"]:
        member = binding["member"]
        who = ref(member) if isinstance(member, dict) else member
        grants.setdefault(who, set()).add(binding["role"])
        if binding["role"].startswith("roles/cloudsql"):
            # the instance's own name, referenced, not repeated
            assert (
                "instances/${google_sql_database_instance.ledger.name}"
                in json.dumps((MODULE / "iam.tf").read_text())
                or "instances/vtid-ledger-pg" in binding["condition"]["expression"]
            )
            assert "instances/vtid-ledger-pg'" in binding["condition"]["expression"]
    assert grants == {
        "google_service_account.event_function.member": {
            "roles/cloudsql.client",
            "roles/cloudsql.instanceUser",
        },
        "google_service_account.http_function.member": {
            "roles/cloudsql.client",
            "roles/cloudsql.instanceUser",
        },
        "google_service_account.builder.member": {
            "roles/logging.logWriter",
            "roles/storage.objectViewer",
        },
        "group:platform-oncall@example.com": {
            "roles/cloudsql.client",
            "roles/cloudsql.instanceUser",
        },
    }
    publish = one(module, "google_pubsub_topic_iam_member", "http_publishes")
    assert ref(publish["member"]) == "google_service_account.http_function.member"
    assert (publish["topic"], publish["role"]) == (
        "vtid-ledger-oasis-events",
        "roles/pubsub.publisher",
    )


def test_the_builder_reaches_only_its_repository_and_source_buckets(module: Module) -> None:
    sources = one(module, "google_project_iam_member", "builder_reads_sources")
    expression = sources["condition"]["expression"]
    ours = "'projects/_/buckets/${google_storage_bucket.source.name}'"
    staged = "'projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}'"
    assert expression == f"resource.name.startsWith({ours}) || resource.name.startsWith({staged})"
    images = one(module, "google_artifact_registry_repository_iam_member", "builder_pushes_images")
    assert images["role"] == "roles/artifactregistry.writer"
    repository = one(module, "google_artifact_registry_repository", "functions")
    assert ref(images["repository"]) == "google_artifact_registry_repository.functions.name"
    assert repository["repository_id"] == "vtid-ledger-functions"
    assert (repository["format"], repository["location"]) == ("DOCKER", "europe-west1")
    wait = one(module, "time_sleep", "builder_roles_propagate")
    assert wait["create_duration"] == "90s"
    assert set(wait["triggers"]) == {"logs", "images", "sources"}
    assert (
        wait["triggers"]["sources"] == sources["id"] and wait["triggers"]["images"] == images["id"]
    )


def test_source_archives_expire_by_age(load: Callable[..., Module]) -> None:
    bucket = one(load(source_retention_days=14), "google_storage_bucket", "source")
    conditions = [r["condition"] for r in bucket["lifecycle_rule"]]
    assert 14 in [c.get("age") for c in conditions]
    assert all("num_newer_versions" not in c for c in conditions)


def test_invokers_are_only_push_scheduler_and_operators(module: Module) -> None:
    invokers: dict[str, set[str]] = {}
    for binding in module["google_cloud_run_v2_service_iam_member"]:
        member = binding["member"]
        invokers.setdefault(binding["name"], set()).add(
            ref(member) if isinstance(member, dict) else member
        )
        assert binding["role"] == "roles/run.invoker"
    assert invokers == {
        "vtid-ledger-oasis-event": {"google_service_account.push.member"},
        "vtid-ledger-http": {
            "google_service_account.scheduler.member",
            "group:platform-oncall@example.com",
        },
    }


def test_nothing_is_public(module: Module) -> None:
    resources = {k: v for k, v in module.items() if k != "variable"}
    text = json.dumps(resources)
    assert "allUsers" not in text and "allAuthenticatedUsers" not in text
    for key, value in walk(resources):
        if key in ("member", "members"):
            assert value not in ("allUsers", "allAuthenticatedUsers")
    sql = one(module, "google_sql_database_instance", "ledger")["settings"]
    assert "authorized_networks" not in sql["ip_configuration"]
    bucket = one(module, "google_storage_bucket", "source")
    assert bucket["public_access_prevention"] == "enforced"


def test_operators_cannot_be_public() -> None:
    text = (MODULE / "variables.tf").read_text()
    block = text[text.index('variable "operators"') :]
    assert '!contains(["allUsers", "allAuthenticatedUsers"], p)' in block[: block.index("\n}\n")]


def test_cloud_sql_is_hardened(module: Module) -> None:
    instance = one(module, "google_sql_database_instance", "ledger")
    settings = instance["settings"]
    flags = {f["name"]: f["value"] for f in settings["database_flags"]}
    assert flags["cloudsql.iam_authentication"] == "on"
    assert flags["max_connections"] == "200"
    backups = settings["backup_configuration"]
    assert backups["enabled"] is True and backups["point_in_time_recovery_enabled"] is True
    assert settings["ip_configuration"]["ssl_mode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    assert (
        instance["deletion_protection"] is True and settings["deletion_protection_enabled"] is True
    )
    assert instance["database_version"] == "POSTGRES_16"


def test_connection_budget_holds_and_is_enforced(load: Callable[..., Module]) -> None:
    fits = load()
    local = next(block for block in fits["locals"] if "connections_needed" in block)
    assert local["connections_needed"] == 20 * 2 + 5 * 4  # instances x pool, not x concurrency
    assert local["connection_budget"] == 200 - 20
    for kind, name in [
        ("google_cloudfunctions2_function", "event"),
        ("google_cloudfunctions2_function", "http"),
        ("google_sql_database_instance", "ledger"),
    ]:
        assert preconditions(one(fits, kind, name))[0] is True
    too_many = load(event_function={"max_instances": 100, "pool_size": 2})
    for kind, name in [
        ("google_cloudfunctions2_function", "event"),
        ("google_sql_database_instance", "ledger"),
    ]:
        assert preconditions(one(too_many, kind, name))[0] is False
    event = one(fits, "google_cloudfunctions2_function", "event")["service_config"]
    assert event["max_instance_request_concurrency"] == 80
    # (the environment is a merge() the offline evaluation leaves open: read it as written)
    functions = (ROOT / "terraform" / "functions.tf").read_text()
    assert "DB_POOL_SIZE = tostring(var.event_function.pool_size)" in functions
    assert "THREADS      = tostring(var.event_function.concurrency)" in functions
    push = one(fits, "google_pubsub_subscription", "push")
    assert push["ack_deadline_seconds"] == event["timeout_seconds"] == 90


def preconditions(resource: dict[str, Any]) -> list[Any]:
    found = resource["lifecycle"]["precondition"]
    return [p["condition"] for p in (found if isinstance(found, list) else [found])]


@pytest.mark.parametrize(
    ("edition", "tier", "fits"),
    [
        ("ENTERPRISE", "db-custom-1-3840", True),
        ("ENTERPRISE", "db-f1-micro", True),
        ("ENTERPRISE_PLUS", "db-perf-optimized-N-2", True),
        ("ENTERPRISE_PLUS", "db-custom-2-7680", False),
        ("ENTERPRISE", "db-perf-optimized-N-2", False),
    ],
)
def test_the_edition_must_fit_the_tier(
    load: Callable[..., Module], edition: str, tier: str, fits: bool
) -> None:
    instance = one(
        load(database_edition=edition, database_tier=tier), "google_sql_database_instance", "ledger"
    )
    assert preconditions(instance)[1] is fits


def test_maintenance_window_is_set(load: Callable[..., Module]) -> None:
    instance = one(
        load(database_maintenance_window={"day": 2, "hour": 4}),
        "google_sql_database_instance",
        "ledger",
    )
    window = instance["settings"]["maintenance_window"]
    assert (window["day"], window["hour"], window["update_track"]) == (2, 4, "stable")


def test_source_archive_is_named_by_content(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    for part in ("terraform", "ledger", "migrations", "sql"):
        shutil.copytree(
            ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__", ".build")
        )
    for part in ("main.py", "requirements.txt", "requirements.lock"):
        shutil.copy(ROOT / part, copy / part)
    before = one(
        evaluate(copy / "terraform", tmp_path, EXAMPLE), "google_storage_bucket_object", "source"
    )
    assert re.fullmatch(r"source-[0-9a-f]{64}\.zip", before["name"])
    (copy / "ledger" / "fold.py").write_text(
        (copy / "ledger" / "fold.py").read_text() + "\n# changed\n"
    )
    after = one(
        evaluate(copy / "terraform", tmp_path, EXAMPLE), "google_storage_bucket_object", "source"
    )
    assert after["name"] != before["name"]
    (copy / "sql" / "50_fold.sql").write_text(
        (copy / "sql" / "50_fold.sql").read_text() + "\n-- changed\n"
    )
    functions_changed = one(
        evaluate(copy / "terraform", tmp_path, EXAMPLE), "google_storage_bucket_object", "source"
    )
    assert functions_changed["name"] != after["name"]
    after = functions_changed
    fn = one(
        evaluate(copy / "terraform", tmp_path, EXAMPLE), "google_cloudfunctions2_function", "event"
    )
    assert fn["build_config"]["source"]["storage_source"]["object"] == after["name"]


def test_dead_letter_backlog_alert(module: Module) -> None:
    policy = one(module, "google_monitoring_alert_policy", "dead_letters")
    condition = policy["conditions"]["condition_threshold"]
    assert "subscription/oldest_unacked_message_age" in condition["filter"]
    assert 'subscription_id = \\"vtid-ledger-oasis-events-dead-letter\\"' in json.dumps(
        condition["filter"]
    )
    assert condition["threshold_value"] == 300


def test_variables_are_typed_and_described_and_provider_is_bounded(module: Module) -> None:
    for variable in module["variable"]:
        name = variable["__tfmeta"]["path"]
        assert variable.get("description"), name
    text = (MODULE / "variables.tf").read_text()
    assert text.count('variable "') == text.count("  type ") == len(module["variable"])
    versions = (MODULE / "versions.tf").read_text()
    assert re.search(
        r'google = \{\s*source\s*= "hashicorp/google"\s*version\s*= ">= \d+\.\d+\.\d+, < \d+',
        versions,
    )
    outputs = {o["__tfmeta"]["path"].split(".")[-1] for o in module["output"]}
    assert outputs >= {
        "event_function_url",
        "http_function_url",
        "topic",
        "dead_letter_subscription",
        "instance_connection_name",
    }


def test_apis_are_enabled(module: Module) -> None:
    services = {s["service"] for s in module["google_project_service"]}
    assert services >= {
        "cloudfunctions.googleapis.com",
        "run.googleapis.com",
        "pubsub.googleapis.com",
        "cloudscheduler.googleapis.com",
        "sqladmin.googleapis.com",
        "cloudbuild.googleapis.com",
        "monitoring.googleapis.com",
    }


CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def test_checkov_passes_with_only_the_documented_skips() -> None:
    if not CHECKOV.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("checkov is not installed (./dev test installs it in .venv-checkov)")
        pytest.skip("checkov is not installed (./dev test installs it in .venv-checkov)")
    done = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(MODULE),
            "--config-file",
            str(MODULE / ".checkov.yaml"),
            "-o",
            "json",
        ],
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(done.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["passed"] >= 50


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary (formatting is checked where one is installed)")
    done = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", str(MODULE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_alerts_watch_pushes_the_sweep_errors_and_the_database(
    load: Callable[..., Module],
) -> None:
    channel = "projects/acme-platform-prod/notificationChannels/42"
    module = load(notification_channels=[channel], alerts={"sweep_lag_seconds": 900})
    policies = {
        p["__tfmeta"]["path"].split(".")[-1]: p for p in module["google_monitoring_alert_policy"]
    }
    assert set(policies) == {"dead_letters", "push_backlog", "sweep", "function_errors", "database"}
    for policy in policies.values():
        assert policy["notification_channels"] == [channel]

    def conditions(name: str) -> list[dict[str, Any]]:
        found = policies[name]["conditions"]
        return found if isinstance(found, list) else [found]

    [push] = conditions("push_backlog")
    assert (
        'subscription_id = "vtid-ledger-oasis-events-push"' in push["condition_threshold"]["filter"]
    )
    lag, silence, failing = conditions("sweep")
    assert "user/vtid-ledger-sweep-failures" in failing["condition_threshold"]["filter"]
    assert "user/vtid-ledger-sweep-lag-seconds" in lag["condition_threshold"]["filter"]
    assert lag["condition_threshold"]["threshold_value"] == 900
    assert silence["condition_absent"]["duration"] == "900s"
    [errors] = conditions("function_errors")
    threshold = errors["condition_threshold"]
    assert 'response_code_class = "5xx"' in threshold["filter"]
    assert '"vtid-ledger-oasis-event", "vtid-ledger-http"' in threshold["denominator_filter"]
    cpu, connections, disk = conditions("database")
    assert "cpu/utilization" in cpu["condition_threshold"]["filter"]
    assert connections["condition_threshold"]["threshold_value"] == 160  # 80% of 200
    assert "disk/utilization" in disk["condition_threshold"]["filter"]
    assert (
        'database_id = "acme-platform-prod:vtid-ledger-pg"' in disk["condition_threshold"]["filter"]
    )


LOGGED = {  # log-based metric => what the code logs, which a change there must keep in step
    "sweep_lag": ('"sweep finished"', "jsonPayload.lag_seconds"),
    "sweep_backlog": ('"sweep finished"', "jsonPayload.backlog"),
    "events_applied": ('"event applied"', "jsonPayload.outcome"),
    # Sums each line's count of rejected events (tests/test_log_metrics.py runs the paths).
    "rejected_events": ('"events rejected"', "EXTRACT(jsonPayload.rejected)"),
    # Cloud Run's agent moves a line's httpRequest into the LogEntry's own field.
    "ingest_requests": ("/api/v1/events/ingest", "EXTRACT(httpRequest.status)"),
    "sweep_failures": ('"sweep failed"', ""),
}


def test_log_metrics_read_what_the_functions_log(module: Module) -> None:
    code = "".join(p.read_text() for p in (ROOT / "ledger").glob("*.py"))
    for name, (message, field) in LOGGED.items():
        metric = one(module, "google_logging_metric", name)
        extracted = metric.get("value_extractor") or json.dumps(metric.get("label_extractors"))
        assert message in metric["filter"] and field in extracted, name
        assert message.strip('"') in code and field.split(".")[-1] in code, name
    for message in ("event rejected", "events rejected", "message rejected"):
        assert f'"{message}"' in code


def test_the_dashboard_shows_ingest_realtime_sweep_rejections_and_dead_letters(
    module: Module,
) -> None:
    dashboard = json.loads(one(module, "google_monitoring_dashboard", "ledger")["dashboard_json"])
    tiles = dashboard["mosaicLayout"]["tiles"]
    queries = [json.dumps(t["widget"]["xyChart"]["dataSets"][0]["timeSeriesQuery"]) for t in tiles]
    for wanted in (
        "ingest-requests",
        "events-applied",
        "logging_googleapis_com:user_vtid_ledger_rejected_events_sum",
        "sweep-lag-seconds",
        "sweep-backlog-events",
        "num_undelivered_messages",
    ):
        assert any(wanted in q for q in queries), wanted  # fmt: skip
    places = {(t.get("xPos", 0), t.get("yPos", 0)) for t in tiles}
    assert len(places) == len(tiles)  # no tile hides another


def test_the_dashboard_json_is_what_the_api_returns(load: Callable[..., Module]) -> None:
    """The Monitoring API drops fields that hold their proto3 default (xPos/yPos 0, an empty
    groupByFields), and the provider then shows a change on every plan (upstream #16173)."""
    for prefix in ("vtid-ledger", "ops-ledger-2"):
        dashboard = json.loads(
            one(load(name_prefix=prefix), "google_monitoring_dashboard", "ledger")["dashboard_json"]
        )
        defaults = [
            (key, value)
            for key, value in walk(dashboard)
            if value in (0, "", [], {}, False, None) and value is not True
        ]
        assert defaults == [], defaults
        tiles = dashboard["mosaicLayout"]["tiles"]
        assert [(t.get("xPos"), t.get("yPos")) for t in tiles] == [
            (None, None), (6, None), (None, 4), (6, 4), (None, 8), (6, 8),
        ]  # fmt: skip


def plan_variables(tmp_path: Path, **values: Any) -> subprocess.CompletedProcess[str]:
    """`terraform plan` of the module's variables alone: their validations run for real
    (no provider is needed for that, so it works offline)."""
    terraform = shutil.which("terraform")
    if terraform is None:
        # No package registry ./dev may use ships Terraform; tfparse checks the wiring anyway.
        pytest.skip("no terraform binary: the variables' validations run where one is installed")
    work = tmp_path / "variables"
    work.mkdir(exist_ok=True)
    shutil.copy(MODULE / "variables.tf", work / "variables.tf")
    (work / "test.tfvars").write_text(
        "".join(f"{k} = {hcl(v)}\n" for k, v in {**EXAMPLE, **values}.items())
    )
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    subprocess.run(
        [terraform, "init", "-backend=false", "-input=false"], cwd=work, env=env,
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return subprocess.run(
        [terraform, "plan", "-input=false", "-var-file=test.tfvars", "-no-color"], cwd=work,
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"event_function": {"memory": "512"}}, "event_function.memory must be a quantity"),
        ({"http_function": {"cpu": "one"}}, "http_function.cpu must be a number"),
        ({"message_retention": "7d"}, "message_retention must be seconds"),
        ({"message_retention": "60s"}, "message_retention must be seconds"),
        ({"database_edition": "STANDARD"}, "database_edition must be ENTERPRISE"),
        ({"database_maintenance_window": {"day": 8}}, "day 1-7"),
        ({"runtime": "python311"}, "python312 or newer"),
        ({"alerts": {"database_cpu": 80}}, "shares between 0 and 1"),
        ({"operators": ["allUsers"]}, "never public"),
    ],
)
def test_variables_refuse_real_misuse(tmp_path: Path, values: dict[str, Any], error: str) -> None:
    done = plan_variables(tmp_path, **values)
    assert done.returncode != 0 and error in " ".join(done.stderr.split()), done.stderr


def test_the_defaults_and_the_example_pass_the_validations(tmp_path: Path) -> None:
    done = plan_variables(tmp_path)
    assert done.returncode == 0, done.stderr


def test_the_build_installs_the_pinned_lock_which_the_tests_ran() -> None:
    """requirements.lock (uv pip compile --python-version 3.12 --generate-hashes) is what the
    build installs; each direct requirement is in it, within its range, and at the version
    this test run imported, so what was tested is what deploys."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    locked: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", line):
            locked[match[1].lower().replace("_", "-")] = match[2]
    assert all("--hash=sha256:" in block for block in
               (ROOT / "requirements.lock").read_text().split("==")[1:])  # fmt: skip
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        wanted = Requirement(line)
        name = wanted.name.lower().replace("_", "-")
        assert name in locked, name
        assert wanted.specifier.contains(locked[name]), (name, locked[name])
        assert version(wanted.name) == locked[name], (name, "run ./dev test after re-locking")
    build = (MODULE / "build.tf").read_text()
    assert '"requirements.txt" = "requirements.lock"' in build


def test_the_first_apply_waits_for_log_based_metrics_before_alerting_on_them(
    module: Module,
) -> None:
    """An alert policy created moments after its log-based metric gets a 404 (the metric takes
    up to 10 minutes to appear), and the provider does not retry that."""
    wait = one(module, "time_sleep", "log_metrics_ready")
    assert wait["create_duration"] == "600s"
    text = (ROOT / "terraform" / "alerts.tf").read_text()
    for policy in re.findall(r'resource "google_monitoring_alert_policy" "(\w+)" \{', text):
        body = text.split(f'"google_monitoring_alert_policy" "{policy}"', 1)[1].split(
            "\nresource "
        )[0]
        if "logging.googleapis.com/user/" in body:
            assert "time_sleep.log_metrics_ready" in body, policy
    metric = one(module, "google_logging_metric", "ingest_requests")
    assert metric["filter"].count("httpRequest.requestUrl") == 1
    assert "jsonPayload.httpRequest" not in metric["filter"]


def test_provider_bound_bindings_and_cloud_sql_settings(module: Module) -> None:
    versions = (ROOT / "terraform" / "versions.tf").read_text()
    assert versions.count('">= 6.17.0, < 8.0.0"') == 2  # older_than = "30d" needs 6.17.0
    iam = (ROOT / "terraform" / "iam.tf").read_text()
    for binding, function in [
        ("event_invoker", "event"),
        ("http_invoker_scheduler", "http"),
        ("http_invoker_operators", "http"),
    ]:
        body = iam.split(f'"google_cloud_run_v2_service_iam_member" "{binding}"', 1)[1]
        body = body.split("\nresource ")[0]
        assert f"replace_triggered_by = [google_cloudfunctions2_function.{function}.id]" in body
    settings = one(module, "google_sql_database_instance", "ledger")["settings"]
    assert settings["connector_enforcement"] == "REQUIRED"
    assert settings["disk_autoresize_limit"] == 100
    outputs = (ROOT / "terraform" / "outputs.tf").read_text()
    assert 'output "database_name"' in outputs and 'output "service_accounts"' in outputs


def test_producers_are_granted_publishing_by_name_and_never_everyone(
    load: Callable[..., Module], tmp_path: Path
) -> None:
    granted = load(producers=["serviceAccount:ci@p.iam.gserviceaccount.com"])
    members = [
        r["member"]
        for r in granted["google_pubsub_topic_iam_member"]
        if r["role"] == "roles/pubsub.publisher"
    ]
    assert "serviceAccount:ci@p.iam.gserviceaccount.com" in members
    if shutil.which("terraform") is None:
        pytest.skip("no terraform binary to run the variables' validations")
    refused = plan_variables(tmp_path, producers=["allUsers"])
    assert refused.returncode != 0 and "producers cannot be allUsers" in refused.stderr


def test_a_sweep_that_never_succeeds_still_alerts(module: Module) -> None:
    """The absence condition needs one `sweep finished` to start from; failures have their own
    metric and condition."""
    policy = one(module, "google_monitoring_alert_policy", "sweep")
    names = [c["display_name"] for c in policy["conditions"]]
    assert "Sweeps fail" in names
    failing = next(c for c in policy["conditions"] if c["display_name"] == "Sweeps fail")
    assert "sweep-failures" in failing["condition_threshold"]["filter"]
    assert failing["condition_threshold"]["threshold_value"] == 0


def local_value(module: Module, name: str) -> Any:
    return next(block for block in module["locals"] if name in block)[name]


def test_cloud_sql_can_do_without_a_public_ip(load: Callable[..., Module]) -> None:
    """constraints/sql.restrictPublicIp: a private IP (private services access) or Private
    Service Connect instead, and the functions reach it through a VPC connector."""
    default = load()
    ip = one(default, "google_sql_database_instance", "ledger")["settings"]["ip_configuration"]
    assert (ip["ipv4_enabled"], ip.get("private_network")) == (True, None)
    assert local_value(default, "database_ip_type") == "PUBLIC"
    assert local_value(default, "database_psc_config") == []
    for name in ("event", "http"):
        fn = one(default, "google_cloudfunctions2_function", name)
        assert fn["service_config"].get("vpc_connector") is None
        assert all(preconditions(fn))

    connector = "projects/acme-platform-prod/locations/europe-west1/connectors/ledger"
    private = load(
        database_network={
            "public_ipv4": False,
            "psa_config": {"private_network": "projects/acme-host/global/networks/shared"},
        },
        vpc_connector={"name": connector},
    )
    ip = one(private, "google_sql_database_instance", "ledger")["settings"]["ip_configuration"]
    assert ip["ipv4_enabled"] is False
    assert ip["private_network"] == "projects/acme-host/global/networks/shared"
    assert ip["ssl_mode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    assert local_value(private, "database_ip_type") == "PRIVATE"
    for name in ("event", "http"):
        service = one(private, "google_cloudfunctions2_function", name)["service_config"]
        assert service["vpc_connector"] == connector
        assert service["vpc_connector_egress_settings"] == "PRIVATE_RANGES_ONLY"
    functions = (MODULE / "functions.tf").read_text()
    assert functions.count("DB_IP_TYPE               = local.database_ip_type") == 1

    psc = load(
        database_network={"public_ipv4": False, "psc_allowed_consumer_projects": ["acme-apps"]},
        vpc_connector={"name": connector},
    )
    assert local_value(psc, "database_ip_type") == "PSC"
    assert local_value(psc, "database_psc_config") == [
        {"psc_enabled": True, "allowed_consumer_projects": ["acme-apps"]}
    ]
    # (tfparse leaves the dynamic block out: check that it is fed by that local)
    cloudsql = (MODULE / "cloudsql.tf").read_text()
    assert 'dynamic "psc_config" {\n        for_each = local.database_psc_config' in cloudsql

    # A private address without a way into the VPC stops the apply before anything is made.
    stranded = load(database_network={"public_ipv4": False, "psc_allowed_consumer_projects": []})
    for name in ("event", "http"):
        assert preconditions(one(stranded, "google_cloudfunctions2_function", name))[1] is False


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"database_network": {"public_ipv4": False}}, "cannot be reached"),
        (
            {"database_network": {"psa_config": {"private_network": "shared"}}},
            "projects/PROJECT/global/networks/NAME",
        ),
        ({"vpc_connector": {"name": "ledger"}}, "projects/PROJECT/locations/REGION/connectors"),
        (
            {"vpc_connector": {"name": "projects/p/locations/r/connectors/c",
                               "egress_settings": "ALL"}},
            "PRIVATE_RANGES_ONLY or ALL_TRAFFIC",
        ),
    ],
)  # fmt: skip
def test_network_variables_refuse_real_misuse(
    tmp_path: Path, values: dict[str, Any], error: str
) -> None:
    done = plan_variables(tmp_path, **values)
    assert done.returncode != 0 and error in " ".join(done.stderr.split()), done.stderr


def test_the_event_function_is_internal_and_the_http_function_open_to_iam(
    load: Callable[..., Module],
) -> None:
    """Cloud Run counts Pub/Sub push (same project, run.app URL) as internal, so the event
    function needs no other ingress; operators and producers call the HTTP function from
    outside, so it stays ALLOW_ALL unless asked (IAM guards both)."""
    module = load()
    event = one(module, "google_cloudfunctions2_function", "event")["service_config"]
    http = one(module, "google_cloudfunctions2_function", "http")["service_config"]
    assert (event["ingress_settings"], http["ingress_settings"]) == (
        "ALLOW_INTERNAL_ONLY",
        "ALLOW_ALL",
    )
    # the push goes to the Cloud Run (run.app) URI, which is what internal ingress admits
    push = one(module, "google_pubsub_subscription", "push")
    uri = "google_cloudfunctions2_function.event.service_config.[0].uri"
    assert ref(push["push_config"]["push_endpoint"]) == uri
    opened = load(
        event_function={"ingress": "ALLOW_ALL"}, http_function={"ingress": "ALLOW_INTERNAL_ONLY"}
    )
    assert (
        one(opened, "google_cloudfunctions2_function", "event")["service_config"][
            "ingress_settings"
        ]
        == "ALLOW_ALL"
    )
    assert (
        one(opened, "google_cloudfunctions2_function", "http")["service_config"]["ingress_settings"]
        == "ALLOW_INTERNAL_ONLY"
    )


def test_operators_log_in_to_the_database_as_themselves(load: Callable[..., Module]) -> None:
    """No shared postgres password: each operator principal is an IAM database user, named the
    way Cloud SQL names them, with client and instanceUser on this instance only."""
    sa = "ops@acme-platform-prod.iam.gserviceaccount.com"
    module = load(
        operators=[
            "group:platform-oncall@example.com",
            "user:alice@example.com",
            f"serviceAccount:{sa}",
            "domain:example.com",  # may call the function, cannot be a database user
        ]
    )
    users = {
        u["__tfmeta"]["path"].split("[", 1)[1].strip('"]'): (u["name"], u["type"])
        for u in module["google_sql_user"]
        if u["__tfmeta"]["path"].startswith("google_sql_user.operators[")
    }
    assert users == {
        "group:platform-oncall@example.com": ("platform-oncall@example.com", "CLOUD_IAM_GROUP"),
        "user:alice@example.com": ("alice@example.com", "CLOUD_IAM_USER"),
        f"serviceAccount:{sa}": ("ops@acme-platform-prod.iam", "CLOUD_IAM_SERVICE_ACCOUNT"),
    }
    logins = {
        b["member"]
        for b in module["google_project_iam_member"]
        if b["role"] == "roles/cloudsql.instanceUser" and isinstance(b["member"], str)
    }
    assert logins == set(users)
    for binding in module["google_project_iam_member"]:
        if binding["role"].startswith("roles/cloudsql"):
            assert "instances/vtid-ledger-pg'" in binding["condition"]["expression"]
    outputs = (MODULE / "outputs.tf").read_text()
    assert "operators = { for principal, user in google_sql_user.operators" in outputs


def test_each_caller_may_use_its_own_routes_of_the_http_function(
    load: Callable[..., Module],
) -> None:
    """The HTTP function is told who may sync (the scheduler, operators), ingest (ingesters),
    read and rebuild (operators), by the emails their ID tokens carry; a group in a list opens
    it to whoever IAM lets in. Ingesters may call the function."""
    module = load(
        operators=["user:Alice@example.com", "serviceAccount:ops@p.iam.gserviceaccount.com"],
        ingesters=["serviceAccount:deployer@p.iam.gserviceaccount.com"],
    )
    env = one(module, "google_cloudfunctions2_function", "http")["service_config"][
        "environment_variables"
    ]
    assert env["LEDGER_INGEST_CALLERS"] == "deployer@p.iam.gserviceaccount.com"
    assert env["LEDGER_READ_CALLERS"] == "alice@example.com,ops@p.iam.gserviceaccount.com"
    assert env["LEDGER_REBUILD_CALLERS"] == env["LEDGER_READ_CALLERS"]
    assert env["LEDGER_SYNC_CALLERS"].split(",") == [
        "vtid-ledger-sched@acme-platform-prod.iam.gserviceaccount.com",
        "alice@example.com",
        "ops@p.iam.gserviceaccount.com",
    ]
    invokers = {
        b["member"]
        for b in module["google_cloud_run_v2_service_iam_member"]
        if b["__tfmeta"]["path"].startswith("google_cloud_run_v2_service_iam_member.http_invoker")
        and isinstance(b["member"], str)  # the scheduler's is known only after apply
    }
    assert "serviceAccount:deployer@p.iam.gserviceaccount.com" in invokers
    grouped = load(operators=["group:platform-oncall@example.com"])
    grouped_env = one(grouped, "google_cloudfunctions2_function", "http")["service_config"][
        "environment_variables"
    ]
    assert grouped_env["LEDGER_READ_CALLERS"] == "*"
    assert grouped_env["LEDGER_INGEST_CALLERS"] == ""
