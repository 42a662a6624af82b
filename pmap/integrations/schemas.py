"""Request and response bodies of the integrations API. Secrets are write-only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from pmap.core.cron import check_cron
from pmap.core.text import OneLine

#: minimum severity an import keeps for an integration (unknown keeps everything)
SeverityThreshold = Literal["unknown", "info", "low", "medium", "high", "critical"]
_THRESHOLD_DOC = (
    "Imports drop findings ranked below this severity (counted as filtered_out). Findings whose severity "
    "maps to nothing (unknown) are always kept and counted as unknown_severity."
)

#: a five-field cron expression; anything else is a 422 saying why
CronExpression = Annotated[str, AfterValidator(check_cron)]
_SCHEDULE_DOC = (
    "Scheduled syncs: a five-field cron expression (minute hour day-of-month month day-of-week, in UTC), e.g. "
    "`0 3 * * 1` (Mondays 03:00) or `*/30 * * * *`; null for none. A due time before the schedule was set is "
    "not run; a disabled integration runs nothing."
)

_ROTATION_DOC = (
    "Scheduled rotations of the webhook secret (admin): a five-field cron expression in UTC, or null for none. "
    "Each rotation keeps the old secret valid for PMAP_WEBHOOK_GRACE_SECONDS, then re-registers the hook on "
    "the vendor where an admin registered it on the current target."
)

# every credential value arrives as SecretStr, so no repr, log or traceback of a request shows it
CredentialValues = dict[str, SecretStr | None]

_CREDENTIALS_DOC = (
    "Secret fields of the vendor type (see GET /api/v1/connector-types credentials_schema). Write-only: "
    "never returned. On update, a field left out stays as it is, null clears it, a value replaces it."
)

_UNSIGNED_DOC = (
    "Accept webhook deliveries without a signature while no webhook secret is configured (not recommended). "
    "In production only an admin may turn it on; every change is audited (webhook.allow_unsigned)."
)


class IntegrationCreate(BaseModel):
    """A new integration: vendor type, non-secret connection settings and credentials."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: OneLine = Field(min_length=1, max_length=200)
    vendor: str = Field(min_length=1, max_length=64)
    connection: dict[str, Any] = Field(
        default_factory=dict,
        description="Non-secret settings (base_url, verify_tls, ...). A legacy `api_key` here is write-only "
        "and stored encrypted with the credentials.",
    )
    credentials: CredentialValues = Field(default_factory=dict, description=_CREDENTIALS_DOC,
                                          json_schema_extra={"writeOnly": True})
    enabled: bool = True
    allow_unsigned_webhooks: bool = Field(default=False, description=_UNSIGNED_DOC)
    severity_threshold: SeverityThreshold = Field(default="info", description=_THRESHOLD_DOC)
    sync_schedule: CronExpression | None = Field(default=None, description=_SCHEDULE_DOC)
    webhook_rotation_schedule: CronExpression | None = Field(default=None, description=_ROTATION_DOC)


class IntegrationUpdate(BaseModel):
    """A partial update. Omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: OneLine | None = Field(default=None, min_length=1, max_length=200)
    connection: dict[str, Any] | None = Field(
        default=None, description="Keys given replace stored ones; a key set to null is removed."
    )
    credentials: CredentialValues | None = Field(default=None, description=_CREDENTIALS_DOC,
                                                 json_schema_extra={"writeOnly": True})
    enabled: bool | None = None
    allow_unsigned_webhooks: bool | None = Field(default=None, description=_UNSIGNED_DOC)
    severity_threshold: SeverityThreshold | None = Field(default=None, description=_THRESHOLD_DOC)
    sync_schedule: CronExpression | None = Field(default=None, description=_SCHEDULE_DOC + " null removes it.")
    webhook_rotation_schedule: CronExpression | None = Field(default=None, description=_ROTATION_DOC)


class IntegrationOut(BaseModel):
    """Integration metadata. Never a secret value: ``credentials_set`` names the fields that hold one."""

    id: uuid.UUID
    name: str
    vendor: str
    category: str
    connection: dict[str, Any]
    credentials_set: list[str]
    enabled: bool
    allow_unsigned_webhooks: bool
    webhook_secret_configured: bool
    severity_threshold: str
    warnings: list[str] = Field(default_factory=list)
    last_tested_at: datetime | None = Field(
        description="When a test of the saved settings as they are (POST /integrations/{id}/test) last succeeded; "
        "null once the settings or secrets change.")
    last_test: dict[str, Any] | None = Field(
        default=None, description="The last test of the saved settings as they are, ok or not: ok, at (ISO time), "
        "latency_ms, step (the failed step or null), product, version, license_expires_at. Never the test's "
        "message. Null when never tested, or once the settings or secrets change.")
    last_synced_at: datetime | None
    last_sync: dict[str, Any] | None = Field(
        default=None, description="The last sync (POST /integrations/{id}/sync): status ok|failed, started_at, "
        "finished_at, full, and the import summary or the error and its failing step.")
    sync_schedule: str | None = None
    next_sync_at: datetime | None = Field(default=None, description="When the next scheduled sync is due (UTC).")
    webhook_rotation_schedule: str | None = None
    next_webhook_rotation_at: datetime | None = Field(
        default=None, description="When the next scheduled rotation of the webhook secret is due (UTC).")
    created_at: datetime
    updated_at: datetime


class IntegrationPage(BaseModel):
    """One page of integrations; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[IntegrationOut]
    next_cursor: str | None
    total: int = Field(description="Integrations matching the filters, on every page (not just this one).")
