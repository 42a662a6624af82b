"""Scan launches: one row per scan PMAP launched on a vendor, its state and its outcome."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, JSONVariant, UTCDateTime, new_id, utcnow


class ScanLaunch(Base):
    """A launch of a vendor's configured scan: queued -> launching -> running -> importing -> completed | failed.

    ``vendor_scan_id`` is what the operator asked to launch (a scan, policy or target id); ``vendor_run_ref``
    is the vendor's reference of this run (a scan uuid, an active-scan id). ``summary`` holds the import
    summary of a completed launch, ``error`` the scrubbed error (code, message, step) of a failed one.
    """

    __tablename__ = "scan_launches"
    __table_args__ = (Index("ix_scan_launches_integration", "integration_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    vendor_scan_id: Mapped[str] = mapped_column(String(500))
    vendor_run_ref: Mapped[str | None] = mapped_column(String(500), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    vendor_status: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the vendor's own last word
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
