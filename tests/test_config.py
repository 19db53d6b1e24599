from pathlib import Path

import pytest

from ledger.config import ConfigError, Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.database_url, s.sweep_time_budget_s, s.sweep_batch_size) == (None, 50.0, 50_000)
    checkout = Path(__file__).resolve().parent.parent
    assert s.data_dir == checkout / ".ledger-data" and s.db_iam_auth is True


def test_every_wait_is_bounded_by_default() -> None:
    s = Settings.from_env({})
    assert (s.db_connect_timeout_s, s.statement_timeout_s, s.lock_timeout_s) == (10, 30, 10)
    assert s.idle_in_transaction_timeout_s == 60
    bounded = Settings.from_env({"LEDGER_STATEMENT_TIMEOUT_S": "2.5", "DB_CONNECT_TIMEOUT_S": "3"})
    assert (bounded.statement_timeout_s, bounded.db_connect_timeout_s) == (2.5, 3)


def test_values_are_read_and_blank_means_unset() -> None:
    s = Settings.from_env(
        {
            "DATABASE_URL": " postgresql://x ",
            "SWEEP_BATCH_SIZE": "50",
            "SWEEP_TIME_BUDGET_S": "2.5",
            "DB_IAM_AUTH": "false",
            "LEDGER_API_TOKEN": "",
        }
    )
    assert (s.database_url, s.sweep_batch_size, s.sweep_time_budget_s) == (
        "postgresql://x",
        50,
        2.5,
    )
    assert s.db_iam_auth is False and s.api_token is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SWEEP_BATCH_SIZE": "lots"}, "SWEEP_BATCH_SIZE must be an integer"),
        ({"SWEEP_BATCH_SIZE": "0"}, "between 1 and 500000"),
        ({"SWEEP_TIME_BUDGET_S": "-1"}, "SWEEP_TIME_BUDGET_S must be between"),
        ({"DB_IAM_AUTH": "maybe"}, "true or false"),
        ({"INSTANCE_CONNECTION_NAME": "p:r:i"}, "needs DB_NAME and DB_USER"),
        ({"LEDGER_DB_SCHEMA": "x; drop"}, "LEDGER_DB_SCHEMA"),
        ({"LEDGER_STATEMENT_TIMEOUT_S": "0"}, "LEDGER_STATEMENT_TIMEOUT_S must be between"),
        ({"LEDGER_LOCK_TIMEOUT_S": "soon"}, "LEDGER_LOCK_TIMEOUT_S must be a number"),
        ({"DB_CONNECT_TIMEOUT_S": "-2"}, "DB_CONNECT_TIMEOUT_S must be between"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_topic_path() -> None:
    assert (
        Settings.from_env({"PUBSUB_TOPIC": "projects/p/topics/t"}).topic_path
        == "projects/p/topics/t"
    )
    short = Settings.from_env({"PUBSUB_TOPIC": "t", "GOOGLE_CLOUD_PROJECT": "p"})
    assert short.topic_path == "projects/p/topics/t"
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        _ = Settings.from_env({"PUBSUB_TOPIC": "t"}).topic_path
    assert Settings.from_env({}).topic_path is None


def test_the_connector_reaches_the_address_terraform_says() -> None:
    """database_network (Terraform) sets DB_IP_TYPE: a private IP or Private Service Connect
    for organisations that forbid public IPs; DB_PRIVATE_IP=true is the older spelling."""
    from google.cloud.sql.connector import IPTypes

    assert Settings.from_env({}).db_ip_type == "PUBLIC"
    for value in ("PUBLIC", "private", " PSC "):
        ip_type = Settings.from_env({"DB_IP_TYPE": value}).db_ip_type
        assert IPTypes[ip_type].name == value.strip().upper()
    assert Settings.from_env({"DB_PRIVATE_IP": "true"}).db_ip_type == "PRIVATE"
    with pytest.raises(ConfigError, match="DB_IP_TYPE must be PUBLIC, PRIVATE or PSC"):
        Settings.from_env({"DB_IP_TYPE": "internal"})
