"""Integration records: one configured connector instance of one organization."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, JSONVariant, UTCDateTime, new_id, utcnow


class Integration(Base):
    """A connector instance. Every secret lives in ``encrypted_credentials`` (an AES-GCM envelope
    bound to this row and column); the webhook secret lives in ``encrypted_webhook_secret``."""

    __tablename__ = "integrations"
    __table_args__ = (
        UniqueConstraint("organization_id", "name", name="uq_integrations_org_name"),
        Index("ix_integrations_org_created", "organization_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    vendor: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    connection: Mapped[dict[str, Any]] = mapped_column(JSONVariant, default=dict)
    encrypted_credentials: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, nullable=True)
    # names of the secret fields that hold a value: metadata, so listing decrypts nothing
    credential_fields: Mapped[list[str]] = mapped_column(JSONVariant, default=list)
    encrypted_webhook_secret: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, nullable=True)
    webhook_state: Mapped[dict[str, Any]] = mapped_column(JSONVariant, default=dict)
    allow_unsigned_webhooks: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # findings ranked below this are counted and dropped at import (see pmap.findings.severity)
    severity_threshold: Mapped[str] = mapped_column(String(16), default="info")
    # a five-field cron expression (UTC) of scheduled syncs, or None; due times before sync_schedule_since
    # (when it was set) are not run, so setting a schedule does not start a sync of the past
    sync_schedule: Mapped[str | None] = mapped_column(String(100), nullable=True)
    sync_schedule_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the same for scheduled rotations of the webhook secret (rotate with the grace window, re-register
    # where an admin registered)
    webhook_rotation_schedule: Mapped[str | None] = mapped_column(String(100), nullable=True)
    webhook_rotation_schedule_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the last successful test of the saved settings as they are; last_test: the last such test, ok or not
    # (pmap.integrations.testing.last_test_record), both cleared when the tested settings change
    last_tested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_test: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, nullable=True)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the outcome of the last sync (pmap.sync): status, times, full, the summary or the scrubbed error
    last_sync: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, nullable=True)
    # what the next incremental sync starts from: the last successful sync's start and the vendor's state
    sync_state: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
