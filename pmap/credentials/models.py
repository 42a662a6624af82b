"""The key canaries (proof at start-up that the configured keys open what is stored) and key rotation runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, JSONVariant, UTCDateTime, utcnow


class KeyringCanary(Base):
    """One row per key-encryption key (``keyring:<id>``, ``pkcs11:<label>``; an older row's bare id is a keyring
    key): a known plaintext sealed under that key."""

    __tablename__ = "keyring_canaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONVariant)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyRotation(Base):
    """One run of ``pmapctl keys rotate``: where it has got to, committed with each batch, so a run that was killed
    continues after its last committed batch (pmap.credentials.rotation)."""

    __tablename__ = "key_rotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(300))  # the KEK every envelope moves under (KekRef as text)
    new_data_keys: Mapped[bool] = mapped_column(Boolean, default=False)  # re-seal under new data keys too
    cursor: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)  # the last integration id done
    done: Mapped[int] = mapped_column(Integer, default=0)  # integrations walked
    total: Mapped[int] = mapped_column(Integer, default=0)  # integrations when the run started
    rewrapped: Mapped[int] = mapped_column(Integer, default=0)  # data keys re-wrapped by its committed batches
    resealed: Mapped[int] = mapped_column(Integer, default=0)  # envelopes re-sealed by its committed batches
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)  # finished, incomplete, superseded
