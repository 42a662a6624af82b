"""Background jobs: an in-process worker pool with its state in the ``jobs`` table.

Large imports run here (the API answers 202 with the job), and so does every job kind a higher
component hands the runner a handler for (``sync``: :mod:`pmap.sync`, composed in ``pmap.app``).
The pool starts in the app's lifespan; each job's row moves queued -> running -> succeeded | failed,
with ``result`` (the import summary) or ``error`` (``{code, message, ...}``). Live progress is kept
in memory (and, on PostgreSQL, written to the row every couple of seconds; on SQLite such a write
would stall the import whenever another writer holds the database's single write lock, so progress
is only visible from this process).

A job belongs to the process whose pool holds it (``runner`` = ``host:pid``). At start-up, jobs
left queued or running by a process that no longer exists are marked failed with a clear error
(same host: the pid is gone; another host: no heartbeat for 15 minutes). Spooled uploads are
deleted when their job ends, whatever the outcome.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.db import transaction, utcnow
from pmap.core.errors import Conflict, IntegrationDisabled, NotFound, PmapError
from pmap.core.logs import correlation_id
from pmap.core.logs import job_id as job_context
from pmap.core.metrics import JobOutcome, Metrics
from pmap.core.redaction import scrub
from pmap.core.seams import Actor, AuditSink
from pmap.findings.importer import ImportOptions, run_import, target_for
from pmap.findings.models import Job, JobStatus
from pmap.findings.schemas import JobOut
from pmap.integrations.models import Integration

log = logging.getLogger("pmap.findings.jobs")

KIND_IMPORT = "import"
KIND_SYNC = "sync"
KIND_SCAN = "scan"
JOB_KINDS = (KIND_IMPORT, KIND_SYNC, KIND_SCAN)
#: what each kind's audit event says: its action and purpose
_AUDITED = {KIND_IMPORT: (AuditAction.FINDINGS_IMPORT, "background_import"),
            KIND_SYNC: (AuditAction.FINDINGS_SYNC, "sync"), KIND_SCAN: (AuditAction.SCAN_LAUNCH, "scan_launch")}
#: a job whose params name another purpose (a pipeline sync is a ``sync`` job) is audited as that purpose's action
_AUDITED_PURPOSE = {"pipeline_sync": AuditAction.PIPELINE_SYNC}
#: what to do again after a job of a kind was lost
_AGAIN = {KIND_IMPORT: "upload the file again", KIND_SYNC: "request the sync again",
          KIND_SCAN: "launch the scan again"}
HEARTBEAT_SECONDS = 2.0
STALE_AFTER = timedelta(minutes=15)
STALE_SPOOL = timedelta(days=1)  # an upload still being received is never this old
QUEUED, RUNNING, SUCCEEDED, FAILED = (s.value for s in JobStatus)


class JobCancelled(PmapError):
    """The service is stopping: the running import rolls back, the job fails."""

    status, code = 503, "job_cancelled"


@dataclass(frozen=True, slots=True)
class JobCall:
    """What a job handler gets: its job, the ids of its params, who asked, and where to report progress
    (raising :class:`JobCancelled` when the service stops)."""

    job_id: uuid.UUID
    organization_id: uuid.UUID
    params: dict[str, Any]
    actor: Actor
    progress: Callable[[dict[str, Any]], None]


#: runs one job of a kind other than ``import``; returns its ``result``, raises to fail it
JobHandler = Callable[[JobCall], dict[str, Any]]
#: checks, inside the transaction that would create the job, that it may be created (raises otherwise)
Admission = Callable[[Session], None]


def runner_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def error_body(exc: BaseException) -> dict[str, Any]:
    """The ``error`` of a failed job: a PMAP error's code, safe message and details; else a bare fault."""
    if isinstance(exc, PmapError):
        body: dict[str, Any] = {"code": exc.code, "message": scrub(exc.message), **exc.details}
        if exc.fields:
            body["fields"] = [{"field": f.field, "reason": f.reason} for f in exc.fields]
        return body
    return {"code": "internal_error", "message": "internal error; the job id is in the service log"}


class JobRunner:
    """The worker pool and the job lifecycle. Thread-safe; one per running app."""

    def __init__(self, engine: Engine, sessions: sessionmaker[Session], audit: AuditSink, *, workers: int,
                 spool: Path | None = None, metrics: Metrics | None = None,
                 handlers: Mapping[str, JobHandler] | None = None, pools: Mapping[str, int] | None = None,
                 on_success: Callable[[str, dict[str, Any]], object] | None = None) -> None:
        self._engine = engine
        # kinds that run on a pool of their own (a scan launch waits on its vendor for hours: it must not hold
        # the workers of imports and syncs), with that pool's size
        self._pool_sizes = dict(pools or {})
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._metrics = metrics or Metrics(job_kinds=list(JOB_KINDS))
        self._handlers = dict(handlers or {})
        self._on_success = on_success  # called with (kind, result) once a job has succeeded; its errors are logged
        self._admit = threading.Lock()  # an admission check and the job it admits are one step
        self._spool = spool
        self._sessions = sessions
        self._audit = audit
        self._workers = workers
        self._runner = runner_id()
        self._live: dict[uuid.UUID, dict[str, Any]] = {}
        self._queued: dict[uuid.UUID, str] = {}  # job id -> kind
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._cancelled: dict[uuid.UUID, str] = {}  # running jobs asked to stop -> who asked
        self._heartbeat = engine.dialect.name != "sqlite"
        self._executor: ThreadPoolExecutor | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> int:
        """Fail jobs orphaned by dead processes, then start the pool; returns how many were failed."""
        failed = self.recover()
        self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="pmap-job")
        self._pools = {kind: ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"pmap-{kind}")
                       for kind, size in self._pool_sizes.items()}
        return failed

    def recover(self) -> int:
        """Mark failed the queued/running jobs whose process is gone; delete their spooled files."""
        host, now, count = socket.gethostname(), utcnow(), 0
        with transaction(self._sessions) as session:
            for job in session.scalars(select(Job).where(Job.status.in_((QUEUED, RUNNING)))):
                job_host, _, pid_text = job.runner.rpartition(":")
                pid = int(pid_text) if pid_text.isdigit() else -1
                if job_host == host:
                    dead = pid != os.getpid() and not _pid_alive(pid)
                else:
                    dead = job.updated_at < now - STALE_AFTER
                if not dead:
                    continue
                job.status, job.finished_at, job.updated_at = FAILED, now, now
                job.error = {"code": "job_orphaned",
                             "message": f"the PMAP process that ran this job ({job.runner}) stopped before it "
                                        f"finished; nothing was imported: {_AGAIN.get(job.kind, 'try again')}"}
                _discard(job.params)
                self._metrics.job_finished(job.kind, JobOutcome.ORPHANED)
                count += 1
        if count:
            log.warning("marked %d orphaned job(s) failed", count)
        self._sweep_spool()
        return count

    def _sweep_spool(self) -> None:
        """Delete spooled uploads a crashed process left behind (no job holds them, a day old)."""
        if self._spool is None or not self._spool.is_dir():
            return
        with self._sessions() as session:
            held = {str(p.get("path")) for p in session.scalars(
                select(Job.params).where(Job.status.in_((QUEUED, RUNNING))))}
        cutoff = time.time() - STALE_SPOOL.total_seconds()
        for path in self._spool.glob("upload-*.part"):
            try:
                if str(path) not in held and path.stat().st_mtime < cutoff:
                    path.unlink()
                    log.warning("deleted the abandoned upload %s", path.name)
            except OSError:  # another process may be deleting it too
                continue

    def shutdown(self) -> None:
        """Stop: running imports roll back at their next progress check, queued jobs fail."""
        self._stopping.set()
        for executor in (self._executor, *self._pools.values()):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            never_started = list(self._queued.items())
            self._queued.clear()
        for job_id, kind in never_started:
            self._finish(job_id, FAILED, error={"code": "job_cancelled",
                                                "message": "the service stopped before the job started; "
                                                           f"{_AGAIN.get(kind, 'try again')}"})
            self._metrics.job_finished(kind, JobOutcome.CANCELLED)

    # --- submitting and reading -------------------------------------------------------------------

    def submit_import(self, actor: Actor, integration_id: uuid.UUID, path: Path, options: ImportOptions,
                      size: int) -> JobOut:
        """Queue an import of the spooled file at ``path`` (the job owns and deletes it)."""
        if self._executor is None or self._stopping.is_set():
            path.unlink(missing_ok=True)
            raise JobCancelled("the service is stopping; upload again shortly")
        params = {"integration_id": str(integration_id), "path": str(path), "format": options.format,
                  "scope": options.scope, "full": options.full, "filename": options.filename, "size": size}
        return self._queue(actor, KIND_IMPORT, params, size)

    def submit(self, actor: Actor, kind: str, params: dict[str, Any], *, admit: Admission | None = None) -> JobOut:
        """Queue a job of a kind with a handler; ``params`` carry ids, never a secret. ``admit`` runs in
        the transaction that creates the job, one at a time in this process (a 409 for a job already
        running is checked and the new job written with no other submission in between)."""
        if kind not in self._handlers:
            raise NotFound(f"no handler for {kind!r} jobs")
        if self._executor is None or self._stopping.is_set():
            raise JobCancelled(f"the service is stopping; {_AGAIN.get(kind, 'try again')} shortly")
        return self._queue(actor, kind, params, 0, admit)

    def _queue(self, actor: Actor, kind: str, params: dict[str, Any], size: int,
               admit: Admission | None = None) -> JobOut:
        assert self._executor is not None  # noqa: S101 - checked by both callers
        now = utcnow()
        with self._admit, transaction(self._sessions) as session:
            if admit is not None:
                admit(session)
            job = Job(organization_id=actor.organization_id, kind=kind, status=QUEUED, params=params,
                      progress={"phase": "queued", "bytes_read": 0, "bytes_total": size, "findings": 0},
                      runner=self._runner, actor=actor.label[:200], created_at=now, updated_at=now,
                      result=None, error=None, started_at=None, finished_at=None)
            session.add(job)
        with self._lock:
            self._queued[job.id] = kind
        # the job's log lines carry the id of the request that queued it, and the job's own id
        self._pools.get(kind, self._executor).submit(self._run, job.id, actor, correlation_id.get())
        return self.to_out(job)

    def to_out(self, job: Job) -> JobOut:
        """The API view of a job, with live progress when this process is running it."""
        out = JobOut.model_validate(job)
        live = self._live.get(job.id)
        if live is not None and out.status == RUNNING:
            out.progress = dict(live)
        return out

    def get(self, session: Session, organization_id: uuid.UUID, job_id: uuid.UUID) -> JobOut:
        """One job of the organization (404 otherwise)."""
        job = session.get(Job, job_id)
        if job is None or job.organization_id != organization_id:
            raise NotFound("job not found")
        return self.to_out(job)

    def cancel(self, session: Session, organization_id: uuid.UUID, job_id: uuid.UUID, by: str) -> JobOut:
        """Cancel a queued or running job of the organization: a queued one ends at once, a running one at
        its next progress report (an import or sync writes nothing then); 409 once it has finished."""
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.organization_id != organization_id:
            raise NotFound("job not found")
        if job.status not in (QUEUED, RUNNING):
            raise Conflict(f"the job has already {job.status}; nothing to cancel")
        message = f"cancelled by {by}"
        if job.status == QUEUED:
            now = utcnow()
            job.status, job.error, job.finished_at, job.updated_at = FAILED, {"code": "job_cancelled",
                                                                              "message": message}, now, now
            with self._lock:
                self._queued.pop(job_id, None)
            self._metrics.job_finished(job.kind, JobOutcome.CANCELLED)
        else:
            with self._lock:
                self._cancelled[job_id] = message
        session.commit()
        return self.to_out(job)

    # --- running ----------------------------------------------------------------------------------

    def _run(self, job_id: uuid.UUID, actor: Actor, origin: str | None = None) -> None:
        tokens = correlation_id.set(origin), job_context.set(str(job_id))
        try:
            self._run_job(job_id, actor)
        finally:
            job_context.reset(tokens[1])
            correlation_id.reset(tokens[0])

    def _run_job(self, job_id: uuid.UUID, actor: Actor) -> None:
        with self._lock:
            self._queued.pop(job_id, None)
        with transaction(self._sessions) as session:
            job = session.get(Job, job_id)
            if job is None or job.status != QUEUED:
                return
            job.status, job.started_at, job.updated_at = RUNNING, utcnow(), utcnow()
            params, organization_id, kind = dict(job.params), job.organization_id, job.kind
        self._live[job_id] = {"phase": "starting", "bytes_read": 0, "bytes_total": params.get("size", 0), "findings": 0}
        integration_id = uuid.UUID(params["integration_id"])
        started = time.monotonic()
        try:
            if self._stopping.is_set():
                raise JobCancelled(f"the service stopped before the job started; {_AGAIN.get(kind, 'try again')}")
            if kind == KIND_IMPORT:
                result = self._import(job_id, organization_id, integration_id, params, actor)
            else:
                result = self._handlers[kind](JobCall(job_id, organization_id, params, actor, self._progress(job_id)))
        except BaseException as exc:  # every failure ends the job; the process itself goes on
            if not isinstance(exc, PmapError):
                log.exception("job %s failed unexpectedly", job_id)
            # audited before the job reads finished: whoever sees the outcome finds its audit event too
            self._record(kind, actor, integration_id, AuditOutcome.FAILURE,
                         {"job_id": str(job_id), "error": error_body(exc)["code"]}, params.get("purpose"))
            self._finish(job_id, FAILED, error=error_body(exc))
            self._ended(kind, job_id, JobOutcome.CANCELLED if isinstance(exc, JobCancelled) else JobOutcome.FAILED,
                        started)
            if not isinstance(exc, Exception):
                raise
        else:
            if self._on_success is not None:  # before the job reads succeeded: its follow-up is part of it
                try:
                    self._on_success(kind, result)
                except Exception:  # follow-up work (reopening tickets) never changes the job's outcome
                    log.exception("after job %s succeeded, its follow-up failed", job_id)
            self._record(kind, actor, integration_id, AuditOutcome.SUCCESS,
                         {"job_id": str(job_id), "format": result.get("format"), "parsed": result.get("parsed"),
                          "created": result.get("created")}, params.get("purpose"))
            self._finish(job_id, SUCCEEDED, result=result)
            self._ended(kind, job_id, JobOutcome.SUCCEEDED, started)
        finally:
            _discard(params)
            self._live.pop(job_id, None)
            with self._lock:
                self._cancelled.pop(job_id, None)

    def _import(self, job_id: uuid.UUID, organization_id: uuid.UUID, integration_id: uuid.UUID,
                params: dict[str, Any], actor: Actor) -> dict[str, Any]:
        with self._sessions() as session:
            row = session.get(Integration, integration_id)
            if row is None or row.organization_id != organization_id:
                raise NotFound("the integration was deleted before the import ran")
            if not row.enabled:
                raise IntegrationDisabled("the integration was disabled before the import ran; enable it and "
                                          "upload the report again")
            target = target_for(row)
        options = ImportOptions(format=params.get("format"), scope=params.get("scope") or "default",
                                full=bool(params.get("full", True)), filename=params.get("filename"),
                                actor=actor.label)
        return run_import(self._engine, target, Path(params["path"]), options,
                          progress=self._progress(job_id)).as_dict()

    def _ended(self, kind: str, job_id: uuid.UUID, outcome: JobOutcome, started: float) -> None:
        seconds = time.monotonic() - started
        self._metrics.job_finished(kind, outcome, seconds)
        log.info("%s job %s %s in %.2f s", kind, job_id, outcome.value, seconds)

    def _progress(self, job_id: uuid.UUID) -> Any:
        last = [time.monotonic()]

        def report(progress: dict[str, Any]) -> None:
            if self._stopping.is_set():
                raise JobCancelled("the service stopped while the job ran; nothing was imported: upload again")
            asked = self._cancelled.get(job_id)
            if asked is not None:
                raise JobCancelled(f"{asked} while it ran; nothing of it was kept")
            self._live[job_id] = progress
            now = time.monotonic()
            if self._heartbeat and now - last[0] >= HEARTBEAT_SECONDS:
                last[0] = now
                with transaction(self._sessions) as session:
                    session.execute(update(Job).where(Job.id == job_id).values(progress=progress, updated_at=utcnow()))

        return report

    def _finish(self, job_id: uuid.UUID, status: str, *, result: dict[str, Any] | None = None,
                error: dict[str, Any] | None = None) -> None:
        now = utcnow()
        with transaction(self._sessions) as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            job.status, job.result, job.error, job.finished_at, job.updated_at = status, result, error, now, now
            done = dict(job.progress or {})
            done["phase"] = "done" if status == SUCCEEDED else "failed"
            if result is not None:
                done.update(bytes_read=done.get("bytes_total", 0), findings=result.get("parsed", 0))
            job.progress = done

    def _record(self, kind: str, actor: Actor, integration_id: uuid.UUID, outcome: AuditOutcome,
                detail: dict[str, Any], purpose_of_params: Any = None) -> None:
        action, purpose = _AUDITED.get(kind, (AuditAction.FINDINGS_IMPORT, kind))
        if isinstance(purpose_of_params, str) and purpose_of_params in _AUDITED_PURPOSE:
            action, purpose = _AUDITED_PURPOSE[purpose_of_params], purpose_of_params
        try:
            self._audit.record(actor=actor, action=action, integration_id=integration_id,
                               purpose=purpose, outcome=outcome, detail=detail)
        except Exception:  # the job's own row already tells the outcome
            log.exception("could not audit job %s", detail.get("job_id"))


def _discard(params: dict[str, Any]) -> None:
    path = params.get("path")
    if path:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:
            log.warning("could not delete the spooled upload %s", path)


def start_jobs(state: Any, handlers: Mapping[str, JobHandler] | None = None,
               pools: Mapping[str, int] | None = None,
               on_success: Callable[[str, dict[str, Any]], object] | None = None) -> JobRunner:
    """Build and start the pool for a started app (one worker on SQLite: it has one write lock), running
    imports and the job kinds of ``handlers``; the kinds of ``pools`` run on pools of their own;
    ``on_success(kind, result)`` follows each job that succeeds."""
    workers = 1 if state.engine.dialect.name == "sqlite" else 2
    runner = JobRunner(state.engine, state.sessions, state.audit, workers=workers,
                       spool=(state.settings.data_dir / "imports").resolve(), metrics=state.metrics,
                       handlers=handlers, pools=pools, on_success=on_success)
    runner.start()
    return runner
