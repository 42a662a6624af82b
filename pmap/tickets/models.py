"""Ticket-to-finding links and the ticket status changes learned from deliveries (tables ``ticket_links``
and ``ticket_events``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, UTCDateTime, new_id, utcnow

#: a link is open until its tracker reports the ticket done (``closed_at`` set)
OPEN_LINK = "closed_at IS NULL"


class TicketLink(Base):
    """A ticket PMAP opened (or tracks) on a work tracker, and the finding it is about.

    Opening a ticket takes the row first (``ticket_key`` NULL while the tracker is called), so the
    partial unique index ``uq_ticket_links_open_finding`` makes a second request for the same finding
    and tracker find that row instead of opening a second vendor ticket."""

    __tablename__ = "ticket_links"
    __table_args__ = (
        UniqueConstraint("integration_id", "ticket_key", name="uq_ticket_links_integration_ticket"),
        Index("uq_ticket_links_open_finding", "finding_id", "integration_id", unique=True,
              sqlite_where=text(OPEN_LINK), postgresql_where=text(OPEN_LINK)),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    # NULL only while the ticket is being opened (the tracker has not answered its key yet)
    ticket_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # no foreign key: the findings tables arrive in a later migration and may be pruned on their own
    finding_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # when the ticket was opened
    url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    status: Mapped[str | None] = mapped_column(String(100), nullable=True)  # the tracker's name for it
    done: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # when PMAP last learned the ticket's status (opened, a delivery, a reconcile): reconcile reads it
    status_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the last reconcile's scrubbed failure, cleared by the next success
    reconcile_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


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
