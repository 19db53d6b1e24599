"""Configuration, read from the environment in this one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


IP_TYPES = ("PUBLIC", "PRIVATE", "PSC")


def _ip_type(env: Mapping[str, str]) -> str:
    raw = env.get("DB_IP_TYPE", "").strip().upper()
    if not raw:
        return "PRIVATE" if _bool(env, "DB_PRIVATE_IP", False) else "PUBLIC"
    if raw not in IP_TYPES:
        raise ConfigError(f"DB_IP_TYPE must be PUBLIC, PRIVATE or PSC, got {raw!r}")
    return raw


def _opt(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


@dataclass(frozen=True, slots=True)
class Callers:
    """Who may use each capability of ledger_http, by the email in the caller's ID token (a
    service account's or a person's); `*` is anyone Cloud Run lets in. ledger/callers.py says
    which route needs which."""

    sync: frozenset[str] = frozenset()
    ingest: frozenset[str] = frozenset()
    read: frozenset[str] = frozenset()
    rebuild: frozenset[str] = frozenset()

    def allowed(self, capability: str) -> frozenset[str]:
        found: frozenset[str] = getattr(self, capability)
        return found


def _callers(env: Mapping[str, str]) -> Callers | None:
    """LEDGER_SYNC_CALLERS, LEDGER_INGEST_CALLERS, LEDGER_READ_CALLERS, LEDGER_REBUILD_CALLERS:
    comma-separated emails or `*`. None when none is set: no check by caller."""
    lists: dict[str, frozenset[str]] = {}
    for capability in (f.name for f in fields(Callers)):
        name = f"LEDGER_{capability.upper()}_CALLERS"
        names = frozenset(n.strip().lower() for n in env.get(name, "").split(",") if n.strip())
        odd = sorted(n for n in names if n != "*" and "@" not in n)
        if odd:
            raise ConfigError(f"{name} takes emails or *, got {', '.join(odd)}")
        lists[capability] = names
    return Callers(**lists) if any(lists.values()) else None


DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / ".ledger-data"
"""The embedded Postgres's data: the checkout's own, whatever the working directory (a CLI run
elsewhere used to make a new, empty cluster there)."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    instance_connection_name: str | None = None
    db_name: str | None = None
    db_user: str | None = None
    db_pass: str | None = None
    db_iam_auth: bool = True
    db_ip_type: str = "PUBLIC"
    """DB_IP_TYPE: which of the instance's addresses the Cloud SQL connector uses: PUBLIC,
    PRIVATE or PSC (Terraform sets it from database_network); DB_PRIVATE_IP=true, the older
    spelling, means PRIVATE."""
    db_schema: str | None = None
    db_pool_size: int = 4
    data_dir: Path = DEFAULT_DATA_DIR
    pubsub_topic: str | None = None
    google_cloud_project: str | None = None
    api_token: str | None = None
    callers: Callers | None = None
    """Who may use each capability of ledger_http (LEDGER_<CAPABILITY>_CALLERS); None: anyone
    who gets through (Cloud Run's IAM, LEDGER_API_TOKEN)."""
    sweep_time_budget_s: float = 50.0
    sweep_batch_size: int = 50_000
    # Every wait is bounded. A statement or lock wait past these is transient (retried); a
    # session left idle inside a transaction is ended by the server, so it cannot hold the
    # sweep's horizon back.
    db_connect_timeout_s: float = 10.0
    statement_timeout_s: float = 30.0
    lock_timeout_s: float = 10.0
    idle_in_transaction_timeout_s: float = 60.0
    max_future_s: float | None = None
    """LEDGER_MAX_FUTURE_S: written into the database by `migrate`, so that every path and
    every process judge future times alike (default there: 300)."""
    rejections_retention_days: int | None = None
    """LEDGER_REJECTIONS_RETENTION_DAYS: written into the database by `migrate` (default 30)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            database_url=_opt(env, "DATABASE_URL"),
            instance_connection_name=_opt(env, "INSTANCE_CONNECTION_NAME"),
            db_name=_opt(env, "DB_NAME"),
            db_user=_opt(env, "DB_USER"),
            db_pass=_opt(env, "DB_PASS"),
            db_iam_auth=_bool(env, "DB_IAM_AUTH", True),
            db_ip_type=_ip_type(env),
            db_schema=_opt(env, "LEDGER_DB_SCHEMA"),
            db_pool_size=_int(env, "DB_POOL_SIZE", 4, 1, 100),
            data_dir=Path(_opt(env, "LEDGER_DATA_DIR") or DEFAULT_DATA_DIR).resolve(),
            pubsub_topic=_opt(env, "PUBSUB_TOPIC"),
            google_cloud_project=_opt(env, "GOOGLE_CLOUD_PROJECT"),
            api_token=_opt(env, "LEDGER_API_TOKEN"),
            callers=_callers(env),
            sweep_time_budget_s=_float(env, "SWEEP_TIME_BUDGET_S", 50.0, 0.1, 3600.0),
            sweep_batch_size=_int(env, "SWEEP_BATCH_SIZE", 50_000, 1, 500_000),
            db_connect_timeout_s=_float(env, "DB_CONNECT_TIMEOUT_S", 10.0, 0.1, 300.0),
            statement_timeout_s=_float(env, "LEDGER_STATEMENT_TIMEOUT_S", 30.0, 0.1, 3600.0),
            lock_timeout_s=_float(env, "LEDGER_LOCK_TIMEOUT_S", 10.0, 0.1, 3600.0),
            idle_in_transaction_timeout_s=_float(
                env, "LEDGER_IDLE_IN_TRANSACTION_TIMEOUT_S", 60.0, 1.0, 86400.0
            ),
            max_future_s=(
                _float(env, "LEDGER_MAX_FUTURE_S", 300.0, 0.0, 31_622_400.0)
                if _opt(env, "LEDGER_MAX_FUTURE_S")
                else None
            ),
            rejections_retention_days=(
                _int(env, "LEDGER_REJECTIONS_RETENTION_DAYS", 30, 1, 3650)
                if _opt(env, "LEDGER_REJECTIONS_RETENTION_DAYS")
                else None
            ),
        )
        if settings.instance_connection_name and not (settings.db_name and settings.db_user):
            raise ConfigError("INSTANCE_CONNECTION_NAME needs DB_NAME and DB_USER")
        if settings.db_schema and not settings.db_schema.replace("_", "a").isalnum():
            raise ConfigError("LEDGER_DB_SCHEMA must be letters, digits and underscores")
        return settings

    @property
    def topic_path(self) -> str | None:
        """The topic's full resource name; a short name needs GOOGLE_CLOUD_PROJECT."""
        topic = self.pubsub_topic
        if topic is None or topic.startswith("projects/"):
            return topic
        if not self.google_cloud_project:
            raise ConfigError("PUBSUB_TOPIC is a short name; set GOOGLE_CLOUD_PROJECT too")
        return f"projects/{self.google_cloud_project}/topics/{topic}"
