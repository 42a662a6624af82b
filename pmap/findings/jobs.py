"""Background jobs: their lifecycle on the ``jobs`` table, run by whatever dispatcher the process has.

Large imports run here (the API answers 202 with the job), and so does every job kind a higher component hands
the runner a handler for (``sync``: :mod:`pmap.sync`, ``scan``: :mod:`pmap.scans`, composed in ``pmap.app``).
A job's row moves queued -> running -> succeeded | failed, with ``result`` (the import summary) or ``error``
(``{code, message, ...}``), and counts its ``attempts``.

Where it runs is the dispatcher's business (:mod:`pmap.jobs.dispatch`): threads of the API process (no broker:
the embedded default) or Celery workers (:mod:`pmap.jobs.broker`). Either way a delivery of a job runs
:meth:`JobRunner.execute`: claim the row under a lease (:mod:`pmap.jobs.lease`), run, finish. A heartbeat renews
the lease and writes progress (not on SQLite: a write there waits on its one write lock, so progress is only live
in the process running the job), and reads a cancel request from another process.

Nothing is lost when a process stops: a graceful stop gives its running jobs back to the queue (their import
rolled back) and leaves queued ones queued; a crash leaves them to be taken over (the next start of the embedded
default dispatches jobs whose process is gone; a broker redelivers). An upload a queued import reads lives in the
database (:mod:`pmap.jobs.uploads`), never on one process's disk.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.db import transaction, utcnow
from pmap.core.errors import Conflict, IntegrationDisabled, NotFound, PmapError
from pmap.core.logs import correlation_id
from pmap.core.logs import job_id as job_context
from pmap.core.metrics import JobOutcome, Metrics
from pmap.core.redaction import scrub
from pmap.core.seams import Actor, AuditSink
from pmap.findings import overlap
from pmap.findings.importer import STREAM_WAIT_SECONDS, ImportOptions, run_import, target_for
from pmap.findings.models import Job, JobStatus
from pmap.findings.schemas import JobOut
from pmap.integrations.models import Integration
from pmap.jobs import lease, uploads
from pmap.jobs.dispatch import Again, Dispatcher, Outcome, Requeue, ThreadDispatcher
from pmap.jobs.lease import runner_id

log = logging.getLogger("pmap.findings.jobs")

KIND_IMPORT = "import"
KIND_SYNC = "sync"
KIND_SCAN = "scan"
KIND_TICKET_RECONCILE = "ticket_reconcile"
JOB_KINDS = (KIND_IMPORT, KIND_SYNC, KIND_SCAN, KIND_TICKET_RECONCILE)
#: what each kind's audit event says: its action and purpose
_AUDITED = {KIND_IMPORT: (AuditAction.FINDINGS_IMPORT, "background_import"),
            KIND_SYNC: (AuditAction.FINDINGS_SYNC, "sync"), KIND_SCAN: (AuditAction.SCAN_LAUNCH, "scan_launch"),
            KIND_TICKET_RECONCILE: (AuditAction.TICKET_RECONCILE, "ticket_reconcile")}
#: a job whose params name another purpose (a pipeline sync is a ``sync`` job) is audited as that purpose's action
_AUDITED_PURPOSE = {"pipeline_sync": AuditAction.PIPELINE_SYNC}
#: what to do again after a job of a kind was lost
_AGAIN = {KIND_IMPORT: "upload the file again", KIND_SYNC: "request the sync again",
          KIND_SCAN: "launch the scan again", KIND_TICKET_RECONCILE: "the next reconcile pass asks again"}
MAX_UNAUDITED = 10_000  # jobs' audit events kept while the database is away (one per job end)
HEARTBEAT_SECONDS = 2.0  # at most this long between two heartbeats (a third of the lease when shorter)
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


def error_body(exc: BaseException) -> dict[str, Any]:
    """The ``error`` of a failed job: a PMAP error's code, safe message and details; else a bare fault."""
    if isinstance(exc, PmapError):
        body: dict[str, Any] = {"code": exc.code, "message": scrub(exc.message), **exc.details}
        if exc.fields:
            body["fields"] = [{"field": f.field, "reason": f.reason} for f in exc.fields]
        return body
    return {"code": "internal_error", "message": "internal error; the job id is in the service log"}


class JobRunner:
    """The job lifecycle, over a dispatcher. Thread-safe; one per running app or worker process."""

    def __init__(self, engine: Engine, sessions: sessionmaker[Session], audit: AuditSink, *,
                 dispatcher: Dispatcher, spool: Path | None = None, metrics: Metrics | None = None,
                 handlers: Mapping[str, JobHandler] | None = None, lease_seconds: float = 60.0,
                 on_success: Callable[[str, dict[str, Any]], object] | None = None) -> None:
        self._engine = engine
        self._dispatcher = dispatcher
        self._metrics = metrics or Metrics(job_kinds=list(JOB_KINDS))
        self._handlers = dict(handlers or {})
        self._on_success = on_success  # called with (kind, result) once a job has succeeded; its errors are logged
        self._spool = spool
        self._sessions = sessions
        self._audit = audit
        self._lease = lease_seconds
        self._runner = runner_id()
        self._write_lease = engine.dialect.name != "sqlite"
        self._live: dict[uuid.UUID, dict[str, Any]] = {}  # jobs running here -> their latest progress
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._cancelled: dict[uuid.UUID, str] = {}  # running jobs asked to stop -> why
        self._lost: set[uuid.UUID] = set()  # running jobs whose lease another process took
        #: ended jobs whose end the database did not take (it was away): written at the next heartbeats
        self._unwritten: dict[uuid.UUID, tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = {}
        #: jobs' audit events the database did not take: written, in order, at the next heartbeats
        self._unaudited: list[Callable[[], None]] = []
        self._beat_thread: threading.Thread | None = None
        self._started = False

    @property
    def dispatcher(self) -> Dispatcher:
        """Where this runner's jobs go to run."""
        return self._dispatcher

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> int:
        """Start the dispatcher and the heartbeat; when jobs run in this process, dispatch those a stopped or dead
        process left (returns how many)."""
        self._dispatcher.start(self.execute)
        self._started = True
        self._beat_thread = threading.Thread(target=self._beat_loop, name="pmap-job-heartbeat", daemon=True)
        self._beat_thread.start()
        return self.recover() if self._dispatcher.runs_here else 0

    def recover(self) -> int:
        """Dispatch again the queued or running jobs whose process is gone (they resume here: an interrupted import
        rolled back, so it starts over; its attempts count on) and delete spooled uploads left behind."""
        with self._sessions() as session:
            found = lease.orphans(session)
        self.redispatch(found)
        if found:
            log.warning("resuming %d job(s) a stopped PMAP process left", len(found))
        self._sweep_spool()
        return len(found)

    def redispatch(self, jobs: list[tuple[uuid.UUID, str]]) -> None:
        """Dispatch these jobs again (a duplicate delivery is harmless: a delivery claims its job first)."""
        if not jobs:
            return
        with transaction(self._sessions) as session:  # the next sweep waits STALE_AFTER again before resending
            session.execute(update(Job).where(Job.id.in_([i for i, _ in jobs]), Job.status == QUEUED)
                            .values(updated_at=utcnow()).execution_options(synchronize_session=False))
        for job_id, kind in jobs:
            self._dispatcher.dispatch(job_id, kind)

    def _sweep_spool(self) -> None:
        """Delete spooled uploads a crashed process left behind while it received them (a day old)."""
        if self._spool is None or not self._spool.is_dir():
            return
        cutoff = time.time() - STALE_SPOOL.total_seconds()
        for path in self._spool.glob("upload-*.part"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    log.warning("deleted the abandoned upload %s", path.name)
            except OSError:  # another process may be deleting it too
                continue

    def shutdown(self) -> None:
        """Stop: running jobs go back to the queue at their next progress report (an import rolls back), queued
        ones stay queued; the next start (or another worker) runs them."""
        self._stopping.set()
        self._dispatcher.shutdown()
        if self._beat_thread is not None:
            self._beat_thread.join(timeout=5)
        try:
            if self._dispatcher.runs_here and lease.let_go(self._sessions, self._runner):
                log.info("queued jobs stay queued for the next start")
        except Exception:  # a database gone at shutdown: the next start finds them by this process's pid instead
            log.warning("could not let go of this process's queued jobs", exc_info=True)

    # --- submitting and reading -------------------------------------------------------------------

    def submit_import(self, actor: Actor, integration_id: uuid.UUID, path: Path, options: ImportOptions,
                      size: int) -> JobOut:
        """Queue an import of the spooled file at ``path``: it is stored with the job (in the database, so any
        worker reads it) and deleted here."""
        try:
            if not self._started or self._stopping.is_set():
                raise JobCancelled("the service is stopping; upload again shortly")
            params = {"integration_id": str(integration_id), "format": options.format, "scope": options.scope,
                      "full": options.full, "resolve": options.resolve, "filename": options.filename, "size": size}
            return self._queue(actor, KIND_IMPORT, params, size, upload=path)
        finally:
            path.unlink(missing_ok=True)

    def submit(self, actor: Actor, kind: str, params: dict[str, Any], *, admit: Admission | None = None,
               exclusive: str | None = None) -> JobOut:
        """Queue a job of a kind with a handler; ``params`` carry ids, never a secret. ``admit`` runs in the
        transaction that creates the job (a 409 naming a job already running); ``exclusive`` names what only one
        queued or running job may hold (``sync:<integration>``), enforced by the database whichever process
        admits the job."""
        if kind not in self._handlers:
            raise NotFound(f"no handler for {kind!r} jobs")
        if not self._started or self._stopping.is_set():
            raise JobCancelled(f"the service is stopping; {_AGAIN.get(kind, 'try again')} shortly")
        return self._queue(actor, kind, params, 0, admit, exclusive)

    def _queue(self, actor: Actor, kind: str, params: dict[str, Any], size: int, admit: Admission | None = None,
               exclusive: str | None = None, upload: Path | None = None) -> JobOut:
        now = utcnow()
        # who asked travels with the job (ids and names, never a token): a worker elsewhere audits as them
        params = {**params, "actor": {"kind": actor.kind, "name": actor.name,
                                      "token_id": str(actor.token_id) if actor.token_id else None}}
        integration = params.get("integration_id")
        try:
            with transaction(self._sessions) as session:
                if admit is not None:
                    admit(session)
                job = Job(organization_id=actor.organization_id, kind=kind, status=QUEUED, params=params,
                          progress={"phase": "queued", "bytes_read": 0, "bytes_total": size, "findings": 0},
                          runner=self._runner, actor=actor.label[:200], created_at=now, updated_at=now,
                          integration_id=uuid.UUID(integration) if isinstance(integration, str) else None,
                          attempts=0, exclusive_key=exclusive, result=None, error=None, started_at=None,
                          finished_at=None)
                session.add(job)
                session.flush()
                if upload is not None:
                    uploads.store(session, job.id, upload)
        except IntegrityError:
            if exclusive is None:
                raise
            with self._sessions() as session:  # another process admitted one meanwhile: the 409 names it
                if admit is not None:
                    admit(session)
            raise Conflict("a job holding the same key is already queued or running") from None
        # the job's log lines carry the id of the request that queued it, and the job's own id
        try:
            self._dispatcher.dispatch(job.id, kind, correlation_id.get())
        except Exception as exc:  # the row is the queue's truth: the scheduler's sweep sends it again
            log.warning("job %s is queued but could not be sent to its workers yet (%s); the scheduler sends it "
                        "again", job.id, type(exc).__name__)
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
        """Cancel a queued or running job of the organization: a queued one ends at once, a running one at its next
        progress report after its process hears of it (at once here, within a heartbeat elsewhere; an import or
        sync writes nothing then); 409 once it has finished."""
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.organization_id != organization_id:
            raise NotFound("job not found")
        if job.status not in (QUEUED, RUNNING):
            raise Conflict(f"the job has already {job.status}; nothing to cancel")
        message = f"cancelled by {by}"[:300]
        now = utcnow()
        if job.status == QUEUED:
            job.status, job.error, job.finished_at, job.updated_at = FAILED, {"code": "job_cancelled",
                                                                              "message": message}, now, now
            uploads.discard(session, job_id)
            self._metrics.job_finished(job.kind, JobOutcome.CANCELLED)
        else:
            job.cancel_requested = message
            with self._lock:
                self._cancelled[job_id] = message
        session.commit()
        return self.to_out(job)

    # --- running ----------------------------------------------------------------------------------

    def execute(self, job_id: uuid.UUID, origin: str | None = None) -> Outcome:
        """Run one delivery of a job: claim it, run it, finish it (the one entry point of every engine)."""
        tokens = correlation_id.set(origin), job_context.set(str(job_id))
        try:
            if self._stopping.is_set():
                return Requeue()
            claim = lease.claim(self._sessions, job_id, self._runner, self._lease, write_lease=self._write_lease)
            if isinstance(claim, lease.Busy):
                return Again(claim.retry_after)
            if claim is None:
                return None
            if claim.taken_over:
                log.warning("job %s: taking over from %s, whose attempt died (attempt %d)", job_id,
                            claim.taken_over, claim.attempts)
            return self._run_claimed(job_id, claim)
        finally:
            job_context.reset(tokens[1])
            correlation_id.reset(tokens[0])

    def _run_claimed(self, job_id: uuid.UUID, claim: lease.Claimed) -> Outcome:
        kind, params, organization_id = claim.kind, claim.params, claim.organization_id
        actor = _actor_of(params, claim.actor, organization_id)
        self._live[job_id] = {"phase": "starting", "bytes_read": 0, "bytes_total": params.get("size", 0),
                              "findings": 0}
        integration_id = uuid.UUID(params["integration_id"])
        started = time.monotonic()
        try:
            if kind == KIND_IMPORT:
                result = self._import(job_id, organization_id, integration_id, params, actor)
            else:
                result = self._handlers[kind](JobCall(job_id, organization_id, params, actor, self._progress(job_id)))
        except BaseException as exc:  # every failure ends the job; the process itself goes on
            outcome = self._failed(job_id, kind, actor, integration_id, params, exc, started)
            if not isinstance(exc, Exception):
                raise
            return outcome
        else:
            if self._on_success is not None:  # before the job reads succeeded: its follow-up is part of it
                try:
                    self._on_success(kind, result)
                except Exception:  # follow-up work (reopening tickets) never changes the job's outcome
                    log.exception("after job %s succeeded, its follow-up failed", job_id)
            self._record(kind, actor, integration_id, AuditOutcome.SUCCESS,
                         {"job_id": str(job_id), "format": result.get("format"), "parsed": result.get("parsed"),
                          "created": result.get("created")}, params.get("purpose"))
            if self._finish(job_id, SUCCEEDED, result=result):
                self._ended(kind, job_id, JobOutcome.SUCCEEDED, started)
            return None
        finally:
            self._live.pop(job_id, None)
            with self._lock:
                self._cancelled.pop(job_id, None)
                self._lost.discard(job_id)

    def _failed(self, job_id: uuid.UUID, kind: str, actor: Actor, integration_id: uuid.UUID, params: dict[str, Any],
                exc: BaseException, started: float) -> Outcome:
        """End a job that raised: given back (this process stops), left (its lease was taken), or failed."""
        if isinstance(exc, JobCancelled) and job_id in self._lost:
            log.warning("job %s: another process took over its lease; this attempt stopped", job_id)
            return None
        if isinstance(exc, JobCancelled) and self._stopping.is_set() and job_id not in self._cancelled:
            if lease.release(self._sessions, job_id, self._runner):
                log.info("job %s goes back to the queue: the service is stopping", job_id)
            return Requeue()
        if not isinstance(exc, PmapError):
            log.exception("job %s failed unexpectedly", job_id)
        # audited before the job reads finished: whoever sees the outcome finds its audit event too
        self._record(kind, actor, integration_id, AuditOutcome.FAILURE,
                     {"job_id": str(job_id), "error": error_body(exc)["code"]}, params.get("purpose"))
        if self._finish(job_id, FAILED, error=error_body(exc)):
            self._ended(kind, job_id, JobOutcome.CANCELLED if isinstance(exc, JobCancelled) else JobOutcome.FAILED,
                        started)
        return None

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
                                # a job queued by an earlier release has no resolve: the default
                                resolve="scope" if params.get("resolve") == "scope" else "covered",
                                actor=actor.label, wait_for_stream=STREAM_WAIT_SECONDS)
        # a large report's parsing process starts while the upload is copied out of the database
        early = overlap.wanted(self._engine.dialect.name, Path("upload"), int(params.get("size") or 0))
        with overlap.prestarted(early), uploads.materialized(self._sessions, job_id) as path:
            return run_import(self._engine, target, path, options, progress=self._progress(job_id)).as_dict()

    def _ended(self, kind: str, job_id: uuid.UUID, outcome: JobOutcome, started: float) -> None:
        seconds = time.monotonic() - started
        self._metrics.job_finished(kind, outcome, seconds)
        log.info("%s job %s %s in %.2f s", kind, job_id, outcome.value, seconds)

    def _progress(self, job_id: uuid.UUID) -> Any:
        def report(progress: dict[str, Any]) -> None:
            if job_id in self._lost:
                raise JobCancelled("another process took this job over")
            asked = self._cancelled.get(job_id)
            if asked is not None:
                raise JobCancelled(f"{asked} while it ran; nothing of it was kept")
            if self._stopping.is_set():
                raise JobCancelled("the service stopped while the job ran; it goes back to the queue")
            self._live[job_id] = progress

        return report

    def _beat_loop(self) -> None:
        """Renew the leases of the jobs running here, write their progress, hear cancel requests."""
        interval = min(HEARTBEAT_SECONDS, self._lease / 3)
        while not self._stopping.wait(interval):
            if self._unaudited:  # before the ends: whoever sees an outcome finds its audit event too
                self._write_unaudited()
            if self._unwritten:
                self._write_unwritten()
            for job_id in list(self._live):
                try:
                    beat = lease.heartbeat(self._sessions, job_id, self._runner, self._lease,
                                           self._live.get(job_id), write=self._write_lease)
                except Exception:  # a missed beat is retried; the lease outlasts a few of them
                    log.warning("job %s: heartbeat failed", job_id, exc_info=True)
                    continue
                with self._lock:
                    if not beat.held and job_id in self._live:
                        self._lost.add(job_id)
                    elif beat.cancel_requested and job_id not in self._cancelled:
                        self._cancelled[job_id] = beat.cancel_requested

    def _finish(self, job_id: uuid.UUID, status: str, *, result: dict[str, Any] | None = None,
                error: dict[str, Any] | None = None) -> bool:
        """Write the job's outcome, if its lease is still this process's (True then); drop its upload. When the
        database does not answer, the heartbeat writes it once it does (False now)."""
        try:
            return self._write_end(job_id, status, result, error)
        except Exception:
            # The database went away (restarted, failed over) just as the job ended, often the very fault that
            # ended it. Unwritten, the row would read "running" for good: its lease lapses, but a process never
            # takes its own pid's job for dead (pmap.jobs.lease.holder_dead), so neither its sweep nor a
            # redelivery here would ever end it (tests/faults: PostgreSQL restarted during an import or a sync).
            log.warning("job %s: its end (%s) could not be written; retried at each heartbeat", job_id, status,
                        exc_info=True)
            with self._lock:
                self._unwritten[job_id] = (status, result, error)
            return False

    def _write_unwritten(self) -> None:
        """Write the ends :meth:`_finish` could not write, now that the database may answer again."""
        with self._lock:
            pending = dict(self._unwritten)
        for job_id, (status, result, error) in pending.items():
            try:
                self._write_end(job_id, status, result, error)
            except Exception:  # still no database: the next beat tries again
                log.debug("job %s: its end is still not written", job_id, exc_info=True)
                continue
            with self._lock:
                self._unwritten.pop(job_id, None)
            log.info("job %s: its end (%s) is written now that the database answers", job_id, status)

    def _write_end(self, job_id: uuid.UUID, status: str, result: dict[str, Any] | None,
                   error: dict[str, Any] | None) -> bool:
        now = utcnow()
        with transaction(self._sessions) as session:
            job = session.get(Job, job_id)
            if job is None or job.runner != self._runner or job.status != RUNNING:
                return False
            job.status, job.result, job.error, job.finished_at, job.updated_at = status, result, error, now, now
            job.lease_expires_at = None
            done = dict(self._live.get(job_id) or job.progress or {})
            done["phase"] = "done" if status == SUCCEEDED else "failed"
            if result is not None:
                done.update(bytes_read=done.get("bytes_total", 0), findings=result.get("parsed", 0))
            job.progress = done
            uploads.discard(session, job_id)
        return True

    def _record(self, kind: str, actor: Actor, integration_id: uuid.UUID, outcome: AuditOutcome,
                detail: dict[str, Any], purpose_of_params: Any = None) -> None:
        action, purpose = _AUDITED.get(kind, (AuditAction.FINDINGS_IMPORT, kind))
        if isinstance(purpose_of_params, str) and purpose_of_params in _AUDITED_PURPOSE:
            action, purpose = _AUDITED_PURPOSE[purpose_of_params], purpose_of_params
        event = functools.partial(self._audit.record, actor=actor, action=action, integration_id=integration_id,
                                  purpose=purpose, outcome=outcome, detail=detail)
        try:
            event()
        except Exception:
            # the database went away as the job ended (often what ended it): kept, and written once it answers
            log.warning("job %s: its audit event could not be written; retried at each heartbeat",
                        detail.get("job_id"), exc_info=True)
            with self._lock:
                if len(self._unaudited) < MAX_UNAUDITED:
                    self._unaudited.append(event)
                else:
                    log.error("job %s: its audit event is lost: %d others already wait for the database",
                              detail.get("job_id"), MAX_UNAUDITED)

    def _write_unaudited(self) -> None:
        """Write, in order, the audit events :meth:`_record` could not write, now that the database may answer."""
        with self._lock:
            pending, self._unaudited = self._unaudited, []
        for i, event in enumerate(pending):
            try:
                event()
            except Exception:  # still no database: these and the rest wait for the next beat, in order
                log.debug("jobs' audit events are still not written", exc_info=True)
                with self._lock:
                    self._unaudited[:0] = pending[i:]
                return
        log.info("%d job audit event(s) written now that the database answers", len(pending))


def _actor_of(params: dict[str, Any], label: str, organization_id: uuid.UUID) -> Actor:
    """Who asked for the job, from its params (a job queued before they carried it: from its label)."""
    given = params.get("actor")
    if isinstance(given, dict) and given.get("kind") and given.get("name"):
        token = given.get("token_id")
        return Actor(str(given["kind"]), str(given["name"]), organization_id,
                     uuid.UUID(token) if isinstance(token, str) else None)
    kind, _, name = label.partition(":")
    return Actor(kind or "system", name.split("#")[0] or "unknown", organization_id)


def job_threads(engine: Engine) -> int:
    """Threads that run jobs in an embedded process: one on SQLite (it has one write lock), else two."""
    return 1 if engine.dialect.name == "sqlite" else 2


def start_jobs(state: Any, handlers: Mapping[str, JobHandler] | None = None,
               pools: Mapping[str, int] | None = None,
               on_success: Callable[[str, dict[str, Any]], object] | None = None,
               dispatcher: Dispatcher | None = None) -> JobRunner:
    """Build and start the runner of a started app: with ``dispatcher`` (a broker's), jobs are only sent; else
    threads of this process run imports and the kinds of ``handlers`` (the kinds of ``pools`` on pools of their
    own). ``on_success(kind, result)`` follows each job that succeeds."""
    runner = JobRunner(state.engine, state.sessions, state.audit,
                       dispatcher=dispatcher or ThreadDispatcher(job_threads(state.engine), pools),
                       spool=(state.settings.data_dir / "imports").resolve(), metrics=state.metrics,
                       handlers=handlers, lease_seconds=state.settings.job_lease_seconds, on_success=on_success)
    runner.start()
    return runner
