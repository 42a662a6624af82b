"""Service settings, read from ``PMAP_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pmap.core.concurrency import RESERVED_THREADS, WORKER_THREADS
from pmap.core.db import SQLITE_BUSY_TIMEOUT_SECONDS


class Settings(BaseSettings):
    """Everything PMAP reads from its environment; secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_prefix="PMAP_", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path(".pmap")
    database_url: str | None = None
    platform_key: SecretStr | None = None
    keyring_file: Path | None = None
    # the key-encryption key in an HSM (pmap.credentials.pkcs11): all four, or none
    pkcs11_module: Path | None = None
    pkcs11_token_label: str | None = None
    pkcs11_pin_file: Path | None = None
    pkcs11_key_label: str | None = None  # the KEK new envelopes use; envelopes under other labels still open
    # unwrapped data keys are kept in memory this long at most (pmap.core.crypto.KeyStore); 0: never
    data_key_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    # how often a process reads which KEK the last `pmapctl keys rotate` named, to seal new envelopes under it
    kek_refresh_seconds: float = Field(default=10.0, ge=0.5, le=3600)
    # HTTPS served by `pmapctl serve` itself (pmap.core.tls): a PEM certificate (then its chain) and its unencrypted
    # PEM key, readable by PMAP's user alone; both, or neither (plain HTTP, behind a TLS-terminating proxy)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # how often `pmapctl serve` looks for renewed TLS files (taken without a restart once they pass the start checks)
    tls_reload_seconds: float = Field(default=60.0, ge=0, le=86_400)
    bootstrap_admin_token: SecretStr | None = None
    egress_allow_cidrs: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_import_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    import_background_bytes: int = Field(default=8 * 1024 * 1024, ge=0)  # larger uploads import as a background job
    connection_test_timeout: float = Field(default=10.0, gt=0, le=120)
    # a sync pulls a vendor's whole findings export (polls, chunks, pages): its budget is far longer than a test's
    sync_timeout: float = Field(default=3600.0, gt=0, le=86_400)
    # the scheduler (pmap.schedules) passes every interval seconds: a due sync starts within that of its time
    scheduler_enabled: bool = True
    scheduler_interval: float = Field(default=15.0, ge=1, le=60)
    # a launched scan's status is polled every scan_poll_seconds at first, backing off to ten times that;
    # scan_timeout bounds the whole launch (the launch, the scan itself, its export and download)
    scan_poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    scan_timeout: float = Field(default=86_400.0, gt=0, le=7 * 86_400)
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    webhook_rate_per_minute: int = Field(default=600, ge=1)  # verified deliveries per integration
    # failed verifications recorded one by one, per source address and per integration (the rest are counted)
    webhook_failed_rate_per_minute: int = Field(default=60, ge=1)
    # outbound operations (connection tests, permission checks, webhook setup, tickets) at once
    outbound_concurrency: int = Field(default=32, ge=1)
    outbound_concurrency_per_org: int = Field(default=8, ge=1)
    webhook_grace_seconds: int = Field(default=24 * 3600, ge=0)
    # how long finished deliveries' payloads are kept (pmap.webhooks.retention)
    webhook_retention_days: int = Field(default=30, ge=1, le=36500)
    # audit events streamed out once each as they are sealed (pmap.audit.chain.AuditStream):
    # file:/abs/path.jsonl, syslog (the local /dev/log) or syslog://host:port (UDP); unset: off
    audit_stream: str | None = Field(default=None, pattern=r"^(file:/.+|syslog|syslog://[^/:]+:[0-9]{1,5})$")
    # every finding of every import runs the organization's rules: bounded when one is saved
    # (pmap.findings.rules_limits)
    rules_max_per_org: int = Field(default=100, ge=1, le=10_000)
    rules_max_rule_size: int = Field(default=5_000, ge=10, le=1_000_000)  # syntax nodes + RE2 program instructions
    rules_max_org_size: int = Field(default=20_000, ge=10, le=10_000_000)  # the same, summed over the organization
    rules_cost_sample: int = Field(default=200, ge=1, le=10_000)  # findings the cost of a rule set is measured on
    # how long a write waits for SQLite's one write lock before answering 503 + Retry-After
    sqlite_busy_timeout: float = Field(default=SQLITE_BUSY_TIMEOUT_SECONDS, gt=0, le=300)
    metrics_enabled: bool = True  # GET /metrics (Prometheus text, no token); false: 404
    # how long each /readyz check (and the sync lag read of a /metrics scrape) may take before it counts as failed
    readiness_timeout: float = Field(default=2.0, gt=0, le=60)

    # the job engine (pmap.jobs): with a broker (redis://... or amqp://...), API processes only enqueue and
    # `pmapctl worker` processes run the jobs; without one, `pmapctl serve` runs them itself (the embedded default)
    broker_url: SecretStr | None = None
    # the prefix of the broker's queue names (<namespace>.jobs, .scans, .webhooks): PMAP deployments sharing a broker
    # each take their own
    broker_namespace: str = Field(default="pmap", pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    # Redis for what several processes must agree on (webhook rate limits); defaults to a redis:// broker
    redis_url: SecretStr | None = None
    # a running job's lease on its row: renewed every third of it; a job whose lease lapsed is taken over
    job_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    # Redis as broker: an unacknowledged task is redelivered after this many seconds (its worker died);
    # longer than the longest job, or a live one is delivered twice (the lease then keeps it from running twice)
    broker_visibility_timeout: int = Field(default=6 * 3600, ge=10)
    # a report file of 8 MB or more imported into PostgreSQL is parsed by a process of its own
    # (pmap.findings.overlap); off: measured no faster on 2 cores, and ~80 MB more
    import_overlap: bool = False

    # the web console (pmap.console, pmap.auth.sessions): a session ends after this many idle minutes, and this
    # many hours after sign-in whatever its activity
    console_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    console_session_hours: int = Field(default=12, ge=1, le=7 * 24)

    # seconds an open ticket may go without news (a delivery, a reconcile) before reconcile asks its tracker
    ticket_reconcile_after: int = Field(default=3600, ge=1)

    @field_validator("env", mode="before")
    @classmethod
    def _lower_env(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object, info: ValidationInfo) -> object:
        # `export PMAP_WEBHOOK_RETENTION_DAYS=` means "not set" (the default), not "set to nothing"; except
        # PMAP_ENV: an empty one (say `PMAP_ENV=${UNSET}` in a deployment) must not mean development
        if info.field_name is None or info.field_name == "env" or not isinstance(v, str) or v.strip():
            return v
        return cls.model_fields[info.field_name].default

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, v: Path) -> Path:
        # fixed against the working directory PMAP started in, so every message names the real place
        return Path(os.path.abspath(os.path.expanduser(v)))

    @model_validator(mode="after")
    def _outbound_leaves_a_reserve(self) -> Settings:
        # outbound operations hold worker threads while vendors answer: reads and health checks need the rest
        most = WORKER_THREADS - RESERVED_THREADS
        if self.outbound_concurrency > most:
            raise ValueError(f"PMAP_OUTBOUND_CONCURRENCY must be at most {most}: the {WORKER_THREADS} worker threads "
                             f"keep {RESERVED_THREADS} for reads, receivers and health checks")
        if self.outbound_concurrency_per_org > self.outbound_concurrency:
            raise ValueError("PMAP_OUTBOUND_CONCURRENCY_PER_ORG must not exceed PMAP_OUTBOUND_CONCURRENCY")
        return self

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def resolved_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pmap.db').resolve()}"

    @property
    def resolved_redis_url(self) -> str | None:
        """Redis for state shared across processes: PMAP_REDIS_URL, else a redis:// broker, else none."""
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        broker = self.broker_url.get_secret_value() if self.broker_url is not None else ""
        return broker if broker.startswith(("redis://", "rediss://")) else None

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
