"""The one typed settings object, read from the environment (prefix CITYPIPE_).

Secrets come only from the environment or a ``*_FILE`` path and have no defaults.
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYPIPE_", extra="ignore")

    # Broker URL, e.g. mqtt://user@host:1883. None: the demo starts an embedded broker.
    mqtt_url: str | None = None
    mqtt_username: str | None = None
    # Secret: only from CITYPIPE_MQTT_PASSWORD or CITYPIPE_MQTT_PASSWORD_FILE; never defaulted.
    mqtt_password: SecretStr | None = None
    mqtt_password_file: Path | None = None
    # Fixed client id: the persistent session is keyed on it.
    mqtt_client_id: str | None = None
    # Seconds the broker keeps our session (and queued QoS 1 messages) while we are away.
    mqtt_session_expiry_s: int = 7 * 24 * 3600

    home: Path = Field(default=REPO_ROOT / "data")
    city: str = "wushan"
    timezone: str = "Asia/Shanghai"
    reference_dir: Path = Field(default=REPO_ROOT / "reference")

    # Contract limits (feeds.md): payloads above this are quarantined unread.
    max_payload_bytes: int = 256 * 1024
    # observed_at further ahead than this is "future" (clock skew allowance).
    future_tolerance_s: int = 300
    # Oldest accepted observed_at (a local date). Unset: each site's valid_from in the
    # catalogue. Set it to import an archive older than the catalogue rows.
    oldest_observed_at: date | None = None
    # Local dates one message may span (one landing file each; the flush bounds ack latency).
    max_dates_per_message: int = 31

    # Landing writer: flush by size or age, whichever first; the age bounds ack latency.
    flush_max_records: int = 20_000
    flush_max_age_s: float = 1.0

    # Readers of the warehouse give up after this many seconds behind a writer (warehouse.md).
    lock_timeout_s: float = 600.0
    # Group allowed to read the data folder; None: owner only (docs/operations.md).
    data_group: str | None = None

    @model_validator(mode="after")
    def _read_password_file(self) -> Settings:
        if self.mqtt_password is None and self.mqtt_password_file is not None:
            self.mqtt_password = SecretStr(self.mqtt_password_file.read_text().strip())
        if self.flush_max_age_s > 5:
            raise ValueError(
                "CITYPIPE_FLUSH_MAX_AGE_S must be at most 5 s (contract of ack latency)"
            )
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt_client_id or f"citypipe-ingest-{self.city}"

    @property
    def topic_filter(self) -> str:
        return f"city/{self.city}/+/+"

    @cached_property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @cached_property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @cached_property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse" / "citypipe.duckdb"

    @cached_property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @cached_property
    def gx_dir(self) -> Path:
        return self.home / "gx"

    @cached_property
    def status_dir(self) -> Path:
        return self.home / "status"

    @property
    def dags_folder(self) -> Path:
        return REPO_ROOT / "dags"


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (CLI flags, tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
