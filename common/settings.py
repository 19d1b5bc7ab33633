"""The one typed settings object, read from the environment (prefix CITYPIPE_).

Secrets come only from the environment or a ``*_FILE`` path and have no defaults.
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.warehouse_url import WarehouseTarget, parse_warehouse_url

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

    # The warehouse backend (docs/warehouse.md, common/warehouse_url.py): a DuckDB file
    # (duckdb:///path.duckdb) or a DuckLake catalog (ducklake:sqlite:///path/catalog.sqlite,
    # ducklake:postgres://user@host/db). None: the embedded default under home.
    warehouse: str | None = None
    # A lake's data files: a folder or s3://bucket/prefix/. None: {home}/warehouse/lake/.
    warehouse_data_path: str | None = None
    # Secret of a PostgreSQL catalog: only from the environment or *_FILE; never defaulted.
    warehouse_password: SecretStr | None = None
    warehouse_password_file: Path | None = None
    # S3-compatible object storage for an s3:// data path. Credentials live in these settings
    # (a per-connection secret), never in the lake's catalog.
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_secret_access_key_file: Path | None = None
    s3_use_ssl: bool = True
    s3_url_style: str = "path"
    # A lake writer whose commit conflicts (another writer, a busy SQLite catalog) redoes the
    # whole transaction this many times, backing off, before it fails.
    warehouse_write_retries: int = 12
    # Slots of the Airflow pool of warehouse writers (tasks that load or compute) on a lake:
    # they commit optimistically and retry conflicts. The single file always gets one slot (one
    # writer process at a time).
    warehouse_writer_slots: int = 4
    # Lake snapshots older than this are expired by the maintenance task (time travel ends here).
    snapshot_retention_days: int = 90

    # Readers of the warehouse give up after this many seconds behind a writer (warehouse.md).
    lock_timeout_s: float = 600.0
    # Group allowed to read the data folder; None: owner only (docs/operations.md).
    data_group: str | None = None

    # Keys of the read-only API (`citypipe serve`, docs/serving.md): comma- or line-separated,
    # only from CITYPIPE_API_KEYS or CITYPIPE_API_KEYS_FILE; never defaulted (no key: no serve).
    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None
    # The API's rate limit (serving/ratelimit.py): a token bucket per key, per browser session
    # and, for requests with neither (sign-in, wrong keys), per client IP. Requests a minute
    # sustained and the burst allowed on top; 0 disables. A dashboard load is ~20 requests
    # and its refresh 11 a minute: far below.
    serve_rate_limit_per_min: int = Field(default=600, ge=0)
    serve_rate_burst: int = Field(default=120, ge=0)
    # Reverse proxies whose X-Forwarded-For/-Proto `citypipe serve` believes (comma-separated
    # addresses, as uvicorn's forwarded_allow_ips). Empty: none, so the client address (and the
    # per-address rate limit) is always the TCP peer's and nobody on the host can pick another.
    serve_forwarded_allow_ips: str = ""

    # `citypipe up --executor celery` (docs/up.md): the PostgreSQL server where up creates its
    # Airflow metadata database (psycopg 3 URL, no database and no password in it), and Celery's
    # Redis broker. Passwords only from the environment or *_FILE; never defaulted.
    airflow_postgres_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432"
    airflow_postgres_password: SecretStr | None = None
    airflow_postgres_password_file: Path | None = None
    # Its database there; None: citypipe_airflow_<hash of the data folder> (one per data folder).
    airflow_database: str | None = None
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    celery_broker_password: SecretStr | None = None
    celery_broker_password_file: Path | None = None
    # The name a Celery worker reports as the host of the task instances it runs (set by
    # `citypipe up` per worker, so the UI and API tell two workers on one machine apart).
    airflow_worker_name: str | None = None

    @model_validator(mode="after")
    def _read_password_file(self) -> Settings:
        if self.mqtt_password is None and self.mqtt_password_file is not None:
            self.mqtt_password = SecretStr(self.mqtt_password_file.read_text().strip())
        if self.warehouse_password is None and self.warehouse_password_file is not None:
            self.warehouse_password = SecretStr(self.warehouse_password_file.read_text().strip())
        if self.s3_secret_access_key is None and self.s3_secret_access_key_file is not None:
            text = self.s3_secret_access_key_file.read_text().strip()
            self.s3_secret_access_key = SecretStr(text)
        if self.api_keys is None and self.api_keys_file is not None:
            self.api_keys = SecretStr(self.api_keys_file.read_text())
        if self.airflow_postgres_password is None and self.airflow_postgres_password_file:
            text = self.airflow_postgres_password_file.read_text().strip()
            self.airflow_postgres_password = SecretStr(text)
        if self.celery_broker_password is None and self.celery_broker_password_file:
            text = self.celery_broker_password_file.read_text().strip()
            self.celery_broker_password = SecretStr(text)
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
    def warehouse_dir(self) -> Path:
        """Local warehouse folder: the default file or catalog, staging, the file lock."""
        return self.home / "warehouse"

    @cached_property
    def warehouse_target(self) -> WarehouseTarget:
        if self.warehouse is None:
            return WarehouseTarget("file", path=self.warehouse_dir / "citypipe.duckdb")
        return parse_warehouse_url(self.warehouse, base=self.home)

    @cached_property
    def warehouse_path(self) -> Path:
        """The DuckDB file or the SQLite catalog; a PostgreSQL catalog has no local path, so
        this is then the folder's marker path (only used for the lock and messages)."""
        target = self.warehouse_target
        return target.path if target.path is not None else self.warehouse_dir / "postgres.catalog"

    @cached_property
    def lake_data_path(self) -> str:
        """Where a lake's Parquet files go: always ending in '/' (DuckLake joins names to it)."""
        raw = self.warehouse_data_path or str(self.warehouse_dir / "lake")
        return raw if raw.endswith("/") else raw + "/"

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
