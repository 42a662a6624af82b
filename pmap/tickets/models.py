"""Ticket-to-finding links and the ticket status changes learned from deliveries (tables ``ticket_links``
and ``ticket_events``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, UTCDateTime, new_id, utcnow


class TicketLink(Base):
    """A ticket PMAP opened (or tracks) on a work tracker, and the finding it is about."""

    __tablename__ = "ticket_links"
    __table_args__ = (UniqueConstraint("integration_id", "ticket_key", name="uq_ticket_links_integration_ticket"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    ticket_key: Mapped[str] = mapped_column(String(255))
    # no foreign key: the findings tables arrive in a later migration and may be pruned on their own
    finding_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TicketEvent(Base):
    """A ticket status change a delivery reported (Jira, ServiceNow, GitHub, GitLab, Azure DevOps)."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        Index("ix_ticket_events_integration_created", "integration_id", "created_at", "id"),
        Index("ix_ticket_events_integration_ticket", "integration_id", "ticket_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    delivery_row_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="SET NULL"), nullable=True
    )
    ticket_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(100), nullable=True)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    finding_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    finding_updated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
