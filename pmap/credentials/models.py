"""The keyring canary: proof at start-up that the configured key opens what is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, JSONVariant, UTCDateTime, utcnow


class KeyringCanary(Base):
    """One row per key id: a known plaintext sealed under that key."""

    __tablename__ = "keyring_canaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONVariant)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
