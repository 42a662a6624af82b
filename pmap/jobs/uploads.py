"""Uploads a queued import reads, kept in the database (``job_uploads``), so the API and the workers need no
shared disk: the API stores the spooled file in chunks in the transaction that creates the job, and the worker
that runs it copies them to a private temporary file of its own, deleted when the import ends."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from pmap.core.errors import NotFound
from pmap.jobs.models import JobUpload

CHUNK_BYTES = 1024 * 1024


def store(session: Session, job_id: uuid.UUID, path: Path) -> int:
    """Add the file at ``path`` to the job, chunk by chunk, in the caller's transaction; its size."""
    size, pending = 0, []
    with path.open("rb") as src:
        for seq, data in enumerate(iter(lambda: src.read(CHUNK_BYTES), b"")):
            chunk = JobUpload(job_id=job_id, seq=seq, data=data)
            session.add(chunk)
            pending.append(chunk)
            size += len(data)
            if len(pending) == 16:  # a large upload does not sit in the session whole
                _flush(session, pending)
    _flush(session, pending)
    return size


def _flush(session: Session, chunks: list[JobUpload]) -> None:
    session.flush()
    for chunk in chunks:
        session.expunge(chunk)
    chunks.clear()


@contextmanager
def materialized(sessions: sessionmaker[Session], job_id: uuid.UUID) -> Iterator[Path]:
    """The job's upload as a private temporary file, read one chunk at a time, deleted on leaving."""
    with tempfile.TemporaryDirectory(prefix="pmap-job-") as directory:
        path = Path(directory) / "upload"
        seq, found = 0, False
        with path.open("wb") as out, sessions() as session:
            while True:  # one chunk in memory at a time
                data = session.scalar(select(JobUpload.data).where(JobUpload.job_id == job_id, JobUpload.seq == seq))
                if data is None:
                    break
                out.write(data)
                found, seq = True, seq + 1
                session.expire_all()
        if not found:
            raise NotFound("the uploaded report of this job is gone; upload it again")
        yield path


def discard(session: Session, job_id: uuid.UUID) -> None:
    """Delete the job's upload (its job ended), in the caller's transaction."""
    session.execute(delete(JobUpload).where(JobUpload.job_id == job_id))
