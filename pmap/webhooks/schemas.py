"""Request and response bodies of the webhook endpoints. No response here carries a secret; the
reveal endpoint builds its one-field answer itself."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from pmap.connectors.base import PermissionReport


class WebhookStatus(BaseModel):
    """Where an integration's webhook stands. Never the secret."""

    integration_id: uuid.UUID
    vendor: str
    scheme: str
    configured: bool = Field(description="A webhook secret is stored (encrypted).")
    receiving_url: str
    registered: bool = Field(description="PMAP installed the webhook on the vendor.")
    registered_at: datetime | None = None
    hook_id: str | None = None
    registration_supported: bool
    ping_supported: bool
    allow_unsigned: bool
    target_approved: bool = Field(description=(
        "The webhook secret may be sent to the integration's current target without an admin: it was generated "
        "there or an admin registered there. After a change of target only an admin may register."))
    secret_created_at: datetime | None = None
    secret_rotated_at: datetime | None = None
    previous_secret_valid_until: datetime | None = Field(
        default=None, description="End of the grace period during which the previous secret is still accepted.")
    last_delivery_at: datetime | None = None
    last_delivery_outcome: str | None = None
    last_verified_delivery_at: datetime | None = None
    last_rejection_at: datetime | None = None
    last_rejection_reason: str | None = None
    rejected_count: int = 0
    warnings: list[str] = Field(default_factory=list)


class RegenerateRequest(BaseModel):
    """Rotation options: how long the previous secret stays valid (default PMAP_WEBHOOK_GRACE_SECONDS)."""

    model_config = ConfigDict(extra="forbid")

    grace_seconds: int | None = Field(default=None, ge=0, le=30 * 24 * 3600,
                                      description="0 ends the previous secret's validity at once.")


class RegisterResult(BaseModel):
    """The webhook PMAP installed on the vendor."""

    hook_id: str
    url: str
    signed: bool
    ping_supported: bool
    registered_at: datetime


class PingResult(BaseModel):
    """What happened to the vendor's test delivery during auto-setup."""

    supported: bool
    sent: bool = False
    received: bool = False
    verified: bool = False
    delivery_id: str | None = None
    outcome: str | None = None
    failed_step: str | None = None
    message: str | None = None


class AutoSetupResult(BaseModel):
    """Generate (if missing), register, ping, and whether PMAP received and verified the ping."""

    ok: bool
    generated: bool
    registration: RegisterResult
    ping: PingResult
    warnings: list[str] = Field(default_factory=list)


class DeliveryOut(BaseModel):
    """One recorded delivery (the body is never returned)."""

    id: uuid.UUID
    delivery_id: str | None
    event: str | None
    outcome: str
    reason: str | None
    verification: str
    secret: str | None = Field(description="current | previous: which secret verified it")
    size: int
    attempts: int
    received_at: datetime
    processed_at: datetime | None


class DeliveryPage(BaseModel):
    """One page of deliveries, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[DeliveryOut]
    next_cursor: str | None


__all__ = ["AutoSetupResult", "DeliveryOut", "DeliveryPage", "PermissionReport", "PingResult", "RegenerateRequest",
           "RegisterResult", "WebhookStatus"]
