"""Organizations and the API tokens that act for them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, UTCDateTime, new_id, utcnow


class Organization(Base):
    """A tenant: every record PMAP holds belongs to exactly one organization."""

    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256 hash, with one role in one organization."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to recognise a token in a list
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # None: never expires


class ConsoleSession(Base):
    """A signed-in web console session (:mod:`pmap.auth.sessions`): the cookie's SHA-256 only, the token it acts
    as, and its timeouts. Ends when signed out, idle too long, past its lifetime, or when its token stops working."""

    __tablename__ = "console_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # the synchronizer token every state-changing request of this session must send (X-CSRF-Token); it guards
    # against cross-site requests, not against database readers, who could not use it without the cookie
    csrf_token: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # the absolute end, set at sign-in
