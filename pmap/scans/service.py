"""Scan launches: launch a vendor's configured scan, follow it, and import its results, as a job.

``POST /integrations/{id}/scans`` records a ``scan_launches`` row and queues a ``scan`` job (its params
are the integration's and the launch's ids, never a secret). The job resolves the credentials through
the one decrypt path for purpose ``scan_launch``, asks the vendor type to launch the scan, polls its
status with a backoff on :mod:`pmap.core.clock` (``PMAP_SCAN_POLL_SECONDS`` at first, up to ten times
that, within ``PMAP_SCAN_TIMEOUT``), fetches the finished scan's report and imports it with the
pipeline of a file import. Each vendor scan is its own stream (scope ``scan:<vendor scan id>``), so a
scan's results resolve only that scan's earlier findings. The row follows each step; a failure is
recorded on it scrubbed, with its step.
"""

from __future__ import annotations

import functools
import io
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pmap.auth.principal import Principal
from pmap.connectors.base import (
    FetchesFindings,
    LaunchesScans,
    Operation,
    OperationContext,
    ReportsScanStatus,
    ScanRef,
)
from pmap.connectors.calls import vendor_failure
from pmap.connectors.runner import operation_context
from pmap.core import clock
from pmap.core.db import transaction, utcnow
from pmap.core.errors import (
    Conflict,
    IntegrationDisabled,
    NotFound,
    OperationNotSupported,
    PmapError,
    ScanLaunchUnavailable,
    UpstreamError,
)
from pmap.core.redaction import scrub
from pmap.core.seams import Purpose
from pmap.core.settings import Settings
from pmap.core.state import AppState
from pmap.findings.formats.registry import report_formats
from pmap.findings.importer import STREAM_WAIT_SECONDS, FindingSource, ImportOptions, run_feed, target_for
from pmap.findings.jobs import FAILED, KIND_SCAN, QUEUED, RUNNING, JobCall, JobHandler, JobRunner, error_body
from pmap.findings.models import Job
from pmap.findings.schemas import JobOut
from pmap.integrations.models import Integration
from pmap.integrations.service import vendor_type
from pmap.scans.models import ScanLaunch

log = logging.getLogger("pmap.scans")

#: the operations a launch needs end to end: a vendor type offering only some of them cannot launch
NEEDED = (Operation.LAUNCH_SCAN, Operation.SCAN_STATUS, Operation.FETCH_FINDINGS)
LAUNCHING, POLLING, IMPORTING, COMPLETED = "launching", "running", "importing", "completed"
ENDED = (COMPLETED, FAILED)
BACKOFF_FACTOR = 10  # the poll interval grows (doubling) to at most this many times PMAP_SCAN_POLL_SECONDS
LIST_LIMIT = 200
#: scan jobs run on a pool of their own (they wait on their vendor for hours): this many launches are followed at
#: once, and more wait queued, while imports and syncs keep their workers
SCAN_WORKERS = 4


class ScanRunning(Conflict):
    """A launch of the same vendor scan on the integration is queued or running; ``job_id`` names its job."""

    code = "scan_running"


def scan_scope(vendor_scan_id: str) -> str:
    """The findings stream of one vendor scan's results."""
    return f"scan:{vendor_scan_id}"[:200]


def request_launch(session: Session, jobs: JobRunner, principal: Principal, row: Integration,
                   scan_id: str) -> tuple[ScanLaunch, JobOut]:
    """Record and queue a launch of ``scan_id``: 422 for a vendor type that cannot launch, 409 for a disabled
    integration or a launch of the same scan still queued or running."""
    ct = vendor_type(row.vendor)
    if not all(op in ct.operations for op in NEEDED):
        raise OperationNotSupported(f"the {ct.display_name} connector cannot launch scans through its API; launch "
                                    "them in the vendor's console and import or sync the results")
    if not row.enabled:
        raise IntegrationDisabled("the integration is disabled (enabled: false); enable it to launch scans")
    organization_id, integration_id = row.organization_id, row.id
    session.commit()  # the runner writes the job in its own transaction
    launch_id = uuid.uuid4()

    def admit(s: Session) -> None:
        running = running_launch(s, organization_id, integration_id, scan_id)
        if running is not None:
            raise ScanRunning(f"a launch of scan {scan_id!r} on this integration is already {running.status} "
                              f"(job {running.id}); wait for it to finish", details={"job_id": str(running.id)})
        now = utcnow()
        s.add(ScanLaunch(id=launch_id, organization_id=organization_id, integration_id=integration_id,
                         vendor_scan_id=scan_id, state=QUEUED, actor=principal.actor.label[:200],
                         created_at=now, updated_at=now))

    # params carry ids only: the job resolves the credentials itself, for purpose scan_launch
    job = jobs.submit(principal.actor, KIND_SCAN, {"integration_id": str(integration_id),
                                                   "launch_id": str(launch_id)}, admit=admit)
    session.execute(update(ScanLaunch).where(ScanLaunch.id == launch_id, ScanLaunch.job_id.is_(None))
                    .values(job_id=job.id))
    session.commit()
    launch = session.get(ScanLaunch, launch_id)
    assert launch is not None  # noqa: S101 - written by admit above, in a committed transaction
    return launch, job


def running_launch(session: Session, organization_id: uuid.UUID, integration_id: uuid.UUID,
                   scan_id: str) -> Job | None:
    """The queued or running job launching ``scan_id`` on an integration, if any."""
    jobs = {str(j.params.get("launch_id")): j for j in session.scalars(select(Job).where(
        Job.organization_id == organization_id, Job.kind == KIND_SCAN, Job.status.in_((QUEUED, RUNNING))))
        if (j.params or {}).get("integration_id") == str(integration_id)}
    if not jobs:
        return None
    ids = [uuid.UUID(k) for k in jobs]
    hit = session.scalars(select(ScanLaunch.id).where(ScanLaunch.id.in_(ids), ScanLaunch.vendor_scan_id == scan_id))
    return next((jobs[str(i)] for i in hit), None)


def list_launches(session: Session, row: Integration) -> list[tuple[ScanLaunch, Job | None]]:
    """The integration's launches, newest first, each with its job (a job lost with its process ended it)."""
    launches = list(session.scalars(select(ScanLaunch).where(ScanLaunch.integration_id == row.id)
                                    .order_by(ScanLaunch.created_at.desc()).limit(LIST_LIMIT)))
    job_ids = [x.job_id for x in launches if x.job_id is not None]
    jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))} if job_ids else {}
    return [(x, jobs.get(x.job_id) if x.job_id is not None else None) for x in launches]


def scan_handler(state: AppState) -> JobHandler:
    """The job runner's handler of ``scan`` jobs, for a started app."""
    return functools.partial(run_scan, state)


@dataclass(slots=True)
class _Progress:
    """Where a launch is, so a failure names its step (a vendor's own step wins)."""

    step: str = "start"
    secrets: tuple[str, ...] = ()


def run_scan(state: AppState, call: JobCall) -> dict[str, Any]:
    """Run one scan job; returns the import summary. A failure is recorded on the launch row and raised."""
    launch_id = uuid.UUID(call.params["launch_id"])
    where = _Progress()
    try:
        summary = _launch_and_import(state, call, launch_id, where)
    except BaseException as exc:
        step = where.step  # the launch's own step: credentials, launch, poll, fetch or import
        if isinstance(exc, PmapError):
            exc.details["step"] = step  # the job's error names the failing step too
            if isinstance(exc, UpstreamError):
                exc.details.setdefault("vendor_step", exc.step)  # where the vendor call itself failed
            exc.message = scrub(exc.message, where.secrets)
        error = error_body(exc)
        error["message"] = scrub(str(error.get("message", "")), where.secrets)
        _set(state, launch_id, state=FAILED, error={**error, "step": step}, finished_at=utcnow())
        raise
    _set(state, launch_id, state=COMPLETED, summary=summary, finished_at=utcnow())
    return summary


def _launch_and_import(state: AppState, call: JobCall, launch_id: uuid.UUID, where: _Progress) -> dict[str, Any]:
    with state.sessions() as session:
        launch = session.get(ScanLaunch, launch_id)
        if launch is None or launch.organization_id != call.organization_id:
            raise NotFound("the scan launch was deleted before its job ran")
        row = session.get(Integration, launch.integration_id)
        if row is None or row.organization_id != call.organization_id:
            raise NotFound("the integration was deleted before the scan launch ran")
        if not row.enabled:
            raise IntegrationDisabled("the integration was disabled before the scan launch ran")
        ct = vendor_type(row.vendor)
        impl = ct.implementation
        if not (isinstance(impl, LaunchesScans) and isinstance(impl, ReportsScanStatus)
                and isinstance(impl, FetchesFindings)) or not all(op in ct.operations for op in NEEDED):
            raise OperationNotSupported(f"the {ct.display_name} connector cannot launch scans through its API")
        target, scan_id, connection = target_for(row), launch.vendor_scan_id, dict(row.connection)
        launched = launch.vendor_run_ref  # an earlier attempt of this job launched it already: resume polling
        session.expunge(row)  # the scan may run for hours: hold no pooled connection meanwhile
    _set(state, launch_id, state=LAUNCHING, job_id=call.job_id)
    where.step = "credentials"
    with state.resolver.resolve(row, purpose=Purpose.SCAN_LAUNCH, actor=call.actor) as creds:
        ctx = operation_context(state.settings, ct, connection, creds.values, purpose=Purpose.SCAN_LAUNCH.value,
                                budget=state.settings.scan_timeout)
        where.secrets = ctx.secrets
        try:
            where.step = "launch"
            if launched is None:
                ref = impl.launch_scan(ctx, scan_id)
                _set(state, launch_id, state=POLLING, vendor_run_ref=(ref.run_id or ref.scan_id)[:500])
            else:  # a worker died after the launch: the vendor's scan runs on; never launch it twice
                ref = ScanRef(scan_id=scan_id, run_id=None if launched == scan_id else launched)
                _set(state, launch_id, state=POLLING)
            where.step = "poll"
            _wait(state.settings, ctx, impl, ref, lambda **kw: _set(state, launch_id, **kw), call)
            where.step = "fetch"
            artifact = impl.fetch_findings(ctx, ref)
            fmt = report_formats().get(artifact.format or "")
            if fmt is None:  # a vendor type naming a format this build lacks: a bug, said plainly
                raise PmapError(f"the {ct.display_name} scan report names an unknown format {artifact.format!r}")
            where.step = "import"
            _set(state, launch_id, state=IMPORTING)
            # the scope is the vendor's scan (its configured targets): each launch's report is that scan's whole
            # result, so it resolves on the whole scope, explicitly, even when the run found nothing
            options = ImportOptions(format=fmt.key, scope=scan_scope(scan_id), full=True, filename=artifact.name,
                                    resolve="scope", actor=call.actor.label, wait_for_stream=STREAM_WAIT_SECONDS)
            skipped: Counter[str] = Counter()  # entries the format leaves out by design, into the summary
            source = FindingSource(fmt, fmt.parse(io.BytesIO(artifact.content), skipped), size=len(artifact.content),
                                   skipped=skipped)
            summary = run_feed(state.engine, target, source, options, progress=call.progress)
        except ScanLaunchUnavailable as exc:
            raise ScanLaunchUnavailable(scrub(f"the vendor cannot launch scan {scan_id!r}: {exc.message}", ctx.secrets),
                                        step=exc.step, upstream_status=exc.upstream_status) from None
        except UpstreamError as exc:
            # scrubbed while the values are known: the job and the launch row outlive the redactor's registration
            raise vendor_failure(exc, f"the launch of scan {scan_id!r}", ctx.secrets) from None
    return summary.as_dict()


def _wait(settings: Settings, ctx: OperationContext, impl: ReportsScanStatus, ref: ScanRef, record: Any,
          call: JobCall) -> None:
    """Poll the scan's status until it completes, backing off from PMAP_SCAN_POLL_SECONDS, within
    PMAP_SCAN_TIMEOUT; a scan the vendor reports failed or canceled fails the launch."""
    interval = settings.scan_poll_seconds
    wait, polls = interval, 0
    deadline = clock.monotonic() + settings.scan_timeout
    while True:
        status = impl.scan_status(ctx, ref)
        polls += 1
        record(vendor_status=(status.detail or status.status)[:200])
        call.progress({"phase": "polling", "polls": polls, "scan_status": status.status, "findings": 0,
                       "bytes_read": 0, "bytes_total": 0})
        if status.status == COMPLETED:
            return
        if status.status in ("failed", "canceled"):
            raise UpstreamError(f"the vendor reports the scan {status.status} ({status.detail or 'no detail'})",
                                step="scan")
        if clock.monotonic() + wait > deadline:
            raise UpstreamError(f"the scan did not complete within PMAP_SCAN_TIMEOUT ({settings.scan_timeout:g} s); "
                                "it may still be running on the vendor", step="timeout")
        clock.sleep(wait)
        wait = min(wait * 2, interval * BACKOFF_FACTOR)


def _set(app: AppState, launch_id: uuid.UUID, **values: Any) -> None:
    """Update the launch row (its state, reference, outcome); a failure to write is logged, not raised."""
    values.setdefault("updated_at", utcnow())
    try:
        with transaction(app.sessions) as session:
            session.execute(update(ScanLaunch).where(ScanLaunch.id == launch_id).values(**values))
    except Exception:  # the job's own row still tells the outcome
        log.exception("could not record the state of scan launch %s", launch_id)
