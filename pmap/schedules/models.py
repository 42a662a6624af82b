"""Scheduled runs: one row per integration, kind and due time, so a due run is started once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, UTCDateTime, new_id, utcnow


class ScheduledRun(Base):
    """A schedule's due time, claimed by the scheduler that started it. Two schedulers racing for one due
    time both try to insert this row; the unique constraint lets exactly one of them through."""

    __tablename__ = "scheduled_runs"
    __table_args__ = (UniqueConstraint("integration_id", "kind", "due_at", name="uq_scheduled_runs_due"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # "sync", "webhook_rotation"
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)  # the job it started, once started
    # why it started nothing (the integration was busy or disabled by then): safe text, no secret
    skipped: Mapped[str | None] = mapped_column(String(300), nullable=True)
