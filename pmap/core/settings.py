"""Service settings, read from ``PMAP_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pmap.core.db import SQLITE_BUSY_TIMEOUT_SECONDS


class Settings(BaseSettings):
    """Everything PMAP reads from its environment; secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_prefix="PMAP_", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path(".pmap")
    database_url: str | None = None
    platform_key: SecretStr | None = None
    keyring_file: Path | None = None
    bootstrap_admin_token: SecretStr | None = None
    egress_allow_cidrs: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_import_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    import_background_bytes: int = Field(default=8 * 1024 * 1024, ge=0)  # larger uploads import as a background job
    connection_test_timeout: float = Field(default=10.0, gt=0, le=120)
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    webhook_rate_per_minute: int = Field(default=600, ge=1)
    webhook_grace_seconds: int = Field(default=24 * 3600, ge=0)
    webhook_retention_days: int = Field(default=30, ge=1, le=36500)  # finished deliveries' payloads (pmap.webhooks.retention)
    # how long a write waits for SQLite's one write lock before answering 503 + Retry-After
    sqlite_busy_timeout: float = Field(default=SQLITE_BUSY_TIMEOUT_SECONDS, gt=0, le=300)

    @field_validator("env", mode="before")
    @classmethod
    def _lower_env(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object, info: ValidationInfo) -> object:
        # `export PMAP_WEBHOOK_RETENTION_DAYS=` means "not set" (the default), not "set to nothing"; except
        # PMAP_ENV: an empty one (say `PMAP_ENV=${UNSET}` in a deployment) must not mean development
        if info.field_name == "env" or not isinstance(v, str) or v.strip():
            return v
        return cls.model_fields[info.field_name].default

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
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
