"""Leases on job rows: who runs a job, until when, and how a job whose worker died is taken over.

A task may be delivered more than once: a broker redelivers what a worker took and did not acknowledge (the
worker was killed, or Redis's visibility timeout passed while it still ran), and the sweep republishes jobs a
broker may have lost. Every delivery therefore *claims* its job first, with a compare-and-set on the row:

- a finished job (succeeded, failed) is done: the delivery is dropped;
- a queued job is taken: ``running``, ``runner`` = this process, ``attempts`` + 1, a lease of
  ``PMAP_JOB_LEASE_SECONDS``;
- a running job is taken over only when its attempt is dead: its process is gone (same host: the pid no longer
  exists) or its lease lapsed (another host: the heartbeat stopped). A job a stopping process gave back names no
  runner: anyone takes it. Otherwise the delivery is *busy* and comes
  back when the lease would lapse.

While a job runs, a heartbeat renews the lease (every third of it), writes the latest progress and reads a cancel
request. A heartbeat that finds the row taken by someone else stops its job (it lost the lease). On SQLite the
lease is not written (a write there waits on the database's one write lock); a SQLite database is one host's, and
the pid check decides.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from pmap.core.db import transaction, utcnow
from pmap.findings.models import Job, JobStatus

QUEUED, RUNNING, SUCCEEDED, FAILED = (s.value for s in JobStatus)
#: a job running on another host whose row has not moved for this long is dead (no lease was ever written:
#: SQLite, or a build before leases)
STALE_AFTER = timedelta(minutes=15)


def runner_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether a live process with this pid exists on this host (a zombie, killed and not yet reaped, is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    try:  # Linux: the state field follows the command name in parentheses
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def holder_dead(runner: str, lease_expires_at: datetime | None, updated_at: datetime, now: datetime) -> bool:
    """Whether the process named ``runner`` (``host:pid``) no longer holds its job: gone from this host, or silent
    past its lease (past :data:`STALE_AFTER` when it never wrote one)."""
    if not runner:  # given back by a process that stopped (see release): nobody holds it
        return True
    host, _, pid_text = runner.rpartition(":")
    if host == socket.gethostname():
        pid = int(pid_text) if pid_text.isdigit() else -1
        if pid == os.getpid():
            return False
        # a lapsed lease is a dead holder here too: a process that lives on but stopped renewing is stuck
        return not pid_alive(pid) or (lease_expires_at is not None and lease_expires_at < now)
    if lease_expires_at is not None:
        return lease_expires_at < now
    return updated_at < now - STALE_AFTER


@dataclass(frozen=True, slots=True)
class Claimed:
    """This process now runs the job."""

    kind: str
    organization_id: uuid.UUID
    params: dict[str, Any]
    actor: str
    attempts: int
    taken_over: str | None  # the dead runner whose attempt this one replaces


@dataclass(frozen=True, slots=True)
class Busy:
    """A live attempt runs the job: come back in ``retry_after`` seconds."""

    retry_after: float


def claim(sessions: sessionmaker[Session], job_id: uuid.UUID, owner: str, lease_seconds: float,
          *, write_lease: bool = True) -> Claimed | Busy | None:
    """Claim the job for ``owner`` (see the module doc); None when it has finished or no longer exists."""
    for _ in range(5):  # a lost compare-and-set means another delivery moved the row: look again
        with sessions() as session:
            job = session.get(Job, job_id)
            if job is None or job.status in (SUCCEEDED, FAILED):
                return None
            now = utcnow()
            seen = (job.status, job.runner, job.attempts)
            taken_over = None
            if job.status == RUNNING:
                if not holder_dead(job.runner, job.lease_expires_at, job.updated_at, now):
                    left = (job.lease_expires_at - now).total_seconds() if job.lease_expires_at else lease_seconds
                    return Busy(max(1.0, left + 1.0))
                taken_over = job.runner
            kind, organization_id, params, actor = job.kind, job.organization_id, dict(job.params), job.actor
        with transaction(sessions) as session:
            moved = cast(CursorResult[Any], session.execute(
                update(Job).where(Job.id == job_id, Job.status == seen[0], Job.runner == seen[1],
                                  Job.attempts == seen[2])
                .values(status=RUNNING, runner=owner, attempts=Job.attempts + 1, updated_at=now,
                        lease_expires_at=now + timedelta(seconds=lease_seconds) if write_lease else None,
                        started_at=now)
                .execution_options(synchronize_session=False)))
        if moved.rowcount == 1:
            return Claimed(kind, organization_id, params, actor, seen[2] + 1, taken_over)
    return Busy(lease_seconds)


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat found: whether the lease is still this process's, and who asked to cancel."""

    held: bool
    cancel_requested: str | None


def heartbeat(sessions: sessionmaker[Session], job_id: uuid.UUID, owner: str, lease_seconds: float,
              progress: dict[str, Any] | None, *, write: bool = True) -> Beat:
    """Renew the lease and write the progress (``write``), and read a cancel request."""
    with transaction(sessions) as session:
        if write:
            now = utcnow()
            values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_seconds), "updated_at": now}
            if progress is not None:
                values["progress"] = progress
            session.execute(update(Job).where(Job.id == job_id, Job.runner == owner, Job.status == RUNNING)
                            .values(**values).execution_options(synchronize_session=False))
        row = session.execute(select(Job.runner, Job.status, Job.cancel_requested).where(Job.id == job_id)).first()
    if row is None:
        return Beat(False, "the job was deleted")
    return Beat(row.runner == owner and row.status == RUNNING, row.cancel_requested)


def release(sessions: sessionmaker[Session], job_id: uuid.UUID, owner: str) -> bool:
    """Give a job this process stopped before it ended back to the queue (the service is stopping); True when it
    was this process's to give."""
    with transaction(sessions) as session:
        moved = cast(CursorResult[Any], session.execute(
            update(Job).where(Job.id == job_id, Job.runner == owner, Job.status == RUNNING)
            .values(status=QUEUED, runner="", lease_expires_at=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)))
    return moved.rowcount == 1


def let_go(sessions: sessionmaker[Session], owner: str) -> int:
    """Let go of the queued jobs this stopping process would have run (the embedded default): the next process
    that starts takes them, even on this host while this pid lives on (a server restarted in one process)."""
    with transaction(sessions) as session:
        moved = cast(CursorResult[Any], session.execute(
            update(Job).where(Job.runner == owner, Job.status == QUEUED).values(runner="")
            .execution_options(synchronize_session=False)))
    return int(moved.rowcount or 0)


def orphans(session: Session, *, now: datetime | None = None) -> list[tuple[uuid.UUID, str]]:
    """The queued or running jobs whose runner is dead (see :func:`holder_dead`), and the queued ones nobody
    started for :data:`STALE_AFTER` (a message the broker lost), as (id, kind): to be dispatched again."""
    now = now or utcnow()
    rows = session.execute(select(Job.id, Job.kind, Job.status, Job.runner, Job.lease_expires_at, Job.updated_at)
                           .where(Job.status.in_((QUEUED, RUNNING)))).all()
    return [(r.id, r.kind) for r in rows
            if holder_dead(r.runner, r.lease_expires_at, r.updated_at, now)
            or (r.status == QUEUED and r.updated_at < now - STALE_AFTER)]
