"""Tables of the job engine: an upload a background import reads, kept in the database in chunks."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Integer, LargeBinary, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base


class JobUpload(Base):
    """One chunk of the report a queued import reads: in the database, not on the API process's disk, so a
    worker on another machine reads it too. Deleted with its job, and as soon as the job ends."""

    __tablename__ = "job_uploads"

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
