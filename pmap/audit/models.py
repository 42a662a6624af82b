"""The audit trail: who did what to which integration, why, and how it ended. Never a secret."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, JSONVariant, UTCDateTime, new_id, utcnow


class AuditEvent(Base):
    """One audited action (credential resolve, reveal, rotation, token management, ...)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_org_time", "organization_id", "created_at"),
                      Index("ux_audit_events_org_seq", "organization_id", "seq", unique=True))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    integration_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    purpose: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONVariant, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the tamper-evident chain (pmap.audit.chain): NULL until the sealer assigns them, after the event's commit
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # per organization, contiguous from its anchor
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)  # hex HMAC-SHA256, chained to the previous
    key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)  # the audit_keys row of the MAC's key


class AuditKey(Base):
    """An audit chain key (32 random bytes), sealed under the platform keyring like a credential, bound to
    its row (``audit_keys.envelope`` + the row id). Never leaves the process that opened it."""

    __tablename__ = "audit_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONVariant)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditChainHead(Base):
    """The last sealed event of an organization's chain, and the anchor the chain is verified from (moved
    forward only by a prune, which is itself a chained event)."""

    __tablename__ = "audit_chain_heads"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"),
                                                       primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    mac: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int] = mapped_column(BigInteger)
    anchor_prev_mac: Mapped[str] = mapped_column(String(64))
