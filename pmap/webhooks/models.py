"""Webhook delivery records (ticket links and events live in :mod:`pmap.tickets.models`).

A delivery row is written in the receiver's one transaction before the 2xx answer. Its outcome moves
``accepted`` -> ``processed`` | ``failed``; a ``failed`` delivery that the vendor sends again (same
delivery id) goes back to ``accepted`` and is processed again. Rejected and duplicate deliveries get
rows of their own (``dedupe_key`` NULL) so they are visible and counted; a rejected row never holds
the body.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, UTCDateTime, new_id, utcnow


class Outcome(str, enum.Enum):
    """Where a delivery stands."""

    ACCEPTED = "accepted"  # verified (or allowed unsigned), stored, not processed yet
    DUPLICATE = "duplicate"  # same delivery id as one already accepted or processed: acknowledged, ignored
    REJECTED = "rejected"  # failed verification (or unsigned where not allowed): 401, body not kept
    PROCESSED = "processed"
    FAILED = "failed"  # processing raised; a redelivery with the same id is processed again


class Verification(str, enum.Enum):
    """How a delivery proved itself."""

    SIGNED = "signed"  # a configured secret verified it
    UNSIGNED = "unsigned"  # no secret configured and unsigned deliveries allowed (warned)
    FAILED = "failed"


class WebhookDelivery(Base):
    """One inbound delivery attempt to ``/hooks/{integration_id}``."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # de-duplication: only the row that holds a delivery carries its key
        UniqueConstraint("integration_id", "dedupe_key", name="uq_webhook_deliveries_integration_dedupe"),
        Index("ix_webhook_deliveries_integration_created", "integration_id", "created_at", "id"),
        # only rows waiting for processing: the sweep's index stays tiny and cheap to maintain
        Index("ix_webhook_deliveries_accepted", "created_at", postgresql_where=text("outcome = 'accepted'"),
              sqlite_where=text("outcome = 'accepted'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    delivery_id: Mapped[str | None] = mapped_column(String(255), nullable=True)  # the vendor's, as received
    event: Mapped[str | None] = mapped_column(String(100), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    verification: Mapped[str] = mapped_column(String(16))
    secret_slot: Mapped[str | None] = mapped_column(String(16), nullable=True)  # current | previous
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
