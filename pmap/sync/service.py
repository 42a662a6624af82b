"""Syncs: pull an integration's findings from its vendor's API into the import pipeline, as a job.

``POST /integrations/{id}/sync`` queues a ``sync`` job (ids in its params, never a secret); the job
resolves the credentials through the one decrypt path for purpose ``sync``, asks the vendor type's
``pull_findings`` for a streaming feed, and imports it with the severity pipeline and writers of a
file import (scope ``sync``; absent findings resolve only when the feed is complete). It then stamps
the integration: ``last_sync`` (status, times, the summary or the scrubbed error and its step) and,
after a success, ``sync_state`` (the start of that sync, which the next incremental pull asks from,
and the vendor's own state).
"""

from __future__ import annotations

import functools
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pmap.auth.principal import Principal
from pmap.connectors.base import ConnectorType, FetchesPipelineReports, FindingsPull, Operation, SyncsFindings
from pmap.connectors.branches import syncs_pipelines
from pmap.connectors.calls import vendor_failure
from pmap.connectors.runner import operation_context
from pmap.core.db import transaction, utcnow
from pmap.core.errors import Conflict, IntegrationDisabled, NotFound, OperationNotSupported, PmapError, UpstreamError
from pmap.core.redaction import scrub
from pmap.core.seams import Actor, Purpose
from pmap.core.state import AppState
from pmap.findings.formats.registry import report_formats
from pmap.findings.importer import STREAM_WAIT_SECONDS, FindingSource, ImportOptions, ImportTarget, run_feed, target_for
from pmap.findings.jobs import KIND_SYNC, QUEUED, RUNNING, JobCall, JobHandler, JobRunner, error_body
from pmap.findings.models import Job
from pmap.findings.schemas import JobOut
from pmap.integrations.models import Integration
from pmap.integrations.service import vendor_type
from pmap.schedules.service import SubmitSync
from pmap.sync import pipelines

log = logging.getLogger("pmap.sync")

#: the stream synced findings live in (integration + scope + fingerprint is a finding's identity)
SYNC_SCOPE = "sync"


class SyncRunning(Conflict):
    """A sync of the integration is queued or running; ``job_id`` names it."""

    code = "sync_running"


def request_sync(session: Session, jobs: JobRunner, principal: Principal, row: Integration, *, full: bool) -> JobOut:
    """Queue a sync of ``row`` for an API caller (see :func:`queue_sync`)."""
    return queue_sync(session, jobs, principal.actor, row, full=full)


def scheduled_sync(sessions: sessionmaker[Session], jobs: JobRunner) -> SubmitSync:
    """What the scheduler calls to start a due sync: an incremental sync whose actor is the scheduler."""

    def submit(integration_id: uuid.UUID, organization_id: uuid.UUID) -> uuid.UUID:
        with transaction(sessions) as session:
            row = session.get(Integration, integration_id)
            if row is None or row.organization_id != organization_id:
                raise NotFound("the integration was deleted before its scheduled sync")
            actor = Actor("system", "scheduler", organization_id)
            return queue_sync(session, jobs, actor, row, full=False).id

    return submit


def queue_sync(session: Session, jobs: JobRunner, actor: Actor, row: Integration, *, full: bool,
               run: str | None = None, branch: str | None = None) -> JobOut:
    """Queue a sync of ``row`` for ``actor`` (``run``: one pipeline run, as a webhook names it): 422 for a vendor
    type without a findings API or pipeline reports, 409 for a disabled integration or one whose sync is queued
    or running."""
    ct = vendor_type(row.vendor)
    pipeline = syncs_pipelines(ct)
    if Operation.SYNC_FINDINGS not in ct.operations and not pipeline:
        raise OperationNotSupported(f"the {ct.display_name} connector offers no findings sync; import its reports "
                                    "instead")
    if not row.enabled:
        raise IntegrationDisabled("the integration is disabled (enabled: false); enable it to sync")
    organization_id, integration_id = row.organization_id, row.id
    session.commit()  # the runner writes the job in its own transaction
    params: dict[str, Any] = {"integration_id": str(integration_id), "full": full}
    if pipeline:  # the job's audit event names the purpose its credentials are opened for
        params["purpose"] = Purpose.PIPELINE_SYNC.value
        params.update({k: v for k, v in (("run", run), ("branch", branch)) if v})

    def admit(s: Session) -> None:
        running = running_sync(s, organization_id, integration_id)
        if running is not None:
            raise SyncRunning(f"a sync of this integration is already {running.status} (job {running.id}); "
                              "wait for it to finish", details={"job_id": str(running.id)})

    # params carry ids only: the job resolves the credentials itself, for purpose sync (or pipeline_sync)
    return jobs.submit(actor, KIND_SYNC, params, admit=admit, exclusive=f"sync:{integration_id}")


def sync_of_run(state: AppState, jobs: JobRunner, organization_id: uuid.UUID, integration_id: uuid.UUID,
                vendor: str, run: str, branch: str | None) -> str:
    """Queue a sync of one finished pipeline run a verified webhook reported (actor: the webhook); what became
    of it, for the delivery's record (a sync already queued or running: skipped, naming it)."""
    actor = Actor(kind="webhook", name=vendor, organization_id=organization_id)
    with state.sessions() as session:
        row = session.get(Integration, integration_id)
        if row is None or row.organization_id != organization_id:
            return "sync not started: the integration no longer exists"
        try:
            job = queue_sync(session, jobs, actor, row, full=True, run=run, branch=branch)
        except SyncRunning as exc:
            return f"sync of run {run} skipped: {exc.message}"
        except PmapError as exc:
            return f"sync of run {run} not started: {exc.message}"
    return f"sync of run {run} queued (job {job.id})"


def running_sync(session: Session, organization_id: uuid.UUID, integration_id: uuid.UUID) -> Job | None:
    """The queued or running sync job of an integration, if any."""
    jobs = session.scalars(select(Job).where(Job.organization_id == organization_id, Job.kind == KIND_SYNC,
                                             Job.status.in_((QUEUED, RUNNING))))
    # an organization has few jobs in flight: reading their params is simpler than a JSON query per dialect
    return next((j for j in jobs if (j.params or {}).get("integration_id") == str(integration_id)), None)


def sync_handler(state: AppState) -> JobHandler:
    """The job runner's handler of ``sync`` jobs, for a started app."""
    return functools.partial(run_sync, state)


@dataclass(slots=True)
class _Progress:
    """Where a sync is, so a failure names its step (a vendor's own step wins)."""

    step: str = "start"
    secrets: tuple[str, ...] = ()
    vendor_state: dict[str, Any] = field(default_factory=dict)
    complete: bool = False


def run_sync(state: AppState, call: JobCall) -> dict[str, Any]:
    """Run one sync job; returns the import summary. A failure is stamped on the integration and raised."""
    integration_id = uuid.UUID(call.params["integration_id"])
    full = bool(call.params.get("full", False))
    started = utcnow()
    where = _Progress()
    try:
        summary = _pull_and_import(state, call, integration_id, full, where)
    except BaseException as exc:
        step = exc.step if isinstance(exc, UpstreamError) else where.step
        if isinstance(exc, PmapError):
            exc.details.setdefault("step", step)  # the job's error names the failing step too
        error = error_body(exc)
        error["message"] = scrub(str(error.get("message", "")), where.secrets)
        _stamp(state, integration_id, started, {"status": "failed", "full": full, "step": step, "error": error})
        raise
    _stamp(state, integration_id, started, {"status": "ok", "full": full, "complete": where.complete,
                                            "summary": summary}, next_state=where.vendor_state)
    return summary


def _pull_and_import(state: AppState, call: JobCall, integration_id: uuid.UUID, full: bool,
                     where: _Progress) -> dict[str, Any]:
    with state.sessions() as session:
        row = session.get(Integration, integration_id)
        if row is None or row.organization_id != call.organization_id:
            raise NotFound("the integration was deleted before the sync ran")
        if not row.enabled:
            raise IntegrationDisabled("the integration was disabled before the sync ran")
        ct = vendor_type(row.vendor)
        impl = ct.implementation
        target = target_for(row)
        if syncs_pipelines(ct) and isinstance(impl, FetchesPipelineReports):
            connection = dict(row.connection)
            session.expunge(row)
            return _pipeline_sync(state, call, row, ct, impl, target, connection, where)
        if not isinstance(impl, SyncsFindings) or Operation.SYNC_FINDINGS not in ct.operations:
            raise OperationNotSupported(f"the {ct.display_name} connector offers no findings sync")
        kept = {} if full else dict(row.sync_state or {})
        pull = FindingsPull(since=_when(kept.get("since")), state=dict(kept.get("vendor") or {}))
        connection = dict(row.connection)
        session.expunge(row)  # the pull may take an hour: hold no pooled connection meanwhile
    where.step = "credentials"
    with state.resolver.resolve(row, purpose=Purpose.SYNC, actor=call.actor) as creds:
        ctx = operation_context(state.settings, ct, connection, creds.values, purpose=Purpose.SYNC.value,
                                budget=state.settings.sync_timeout)
        where.secrets = ctx.secrets
        try:
            where.step = "pull"
            feed = impl.pull_findings(ctx, pull)
            fmt = report_formats().get(feed.format)
            if fmt is None:  # a vendor type naming a format this build lacks: a bug, said plainly
                raise PmapError(f"the {ct.display_name} sync names an unknown report format {feed.format!r}")
            where.step = "import"
            # a complete feed is the vendor's whole current state of the integration: whatever it lacks is gone,
            # on whichever host or project (the vendor knows its assets; a feed has no "scan" that covered a
            # part of them), and an empty complete feed means nothing is open any more. So it resolves on the
            # whole scope, explicitly, not only on the resources its findings name (resolve="covered" would
            # leave open, for ever, the findings of an asset whose last one the vendor closed or deleted). An
            # incremental feed (not complete) is partial: it resolves nothing but what the vendor states fixed.
            options = ImportOptions(format=fmt.key, scope=SYNC_SCOPE, full=feed.complete, resolve="scope",
                                    actor=call.actor.label, wait_for_stream=STREAM_WAIT_SECONDS)
            summary = run_feed(state.engine, target, FindingSource(fmt, feed.findings, skipped=feed.skipped), options,
                               progress=call.progress)
        except UpstreamError as exc:
            # scrubbed while the values are known: the job and last_sync outlive the redactor's registration
            raise vendor_failure(exc, "the sync", ctx.secrets) from None
    where.vendor_state, where.complete = dict(feed.state), feed.complete
    return summary.as_dict()


def _pipeline_sync(state: AppState, call: JobCall, row: Integration, ct: ConnectorType,
                   impl: FetchesPipelineReports, target: ImportTarget, connection: dict[str, Any],
                   where: _Progress) -> dict[str, Any]:
    """Import the report artifacts of the runs a pipeline sync reads (see :mod:`pmap.sync.pipelines`)."""
    where.step = "credentials"
    summary = pipelines.empty_summary()
    with state.resolver.resolve(row, purpose=Purpose.PIPELINE_SYNC, actor=call.actor) as creds, \
            tempfile.TemporaryDirectory(prefix="pmap-pipeline-sync-") as spool:
        ctx = operation_context(state.settings, ct, connection, creds.values, purpose=Purpose.PIPELINE_SYNC.value,
                                budget=state.settings.sync_timeout)
        # downloads stream into this private directory (removed whatever happens): memory stays bounded
        ctx.spool = Path(spool)
        where.secrets = ctx.secrets
        try:
            where.step = "fetch"
            for ref, label in pipelines.refs_of(impl, ctx, connection, call.params):
                where.step = "fetch"
                artifacts = impl.fetch_pipeline_reports(ctx, ref)
                summary["runs"].append({"ref": ref, "scope": label, "reports": len(artifacts)})
                where.step = "import"
                pipelines.import_artifacts(state, call, target, label, artifacts, ctx.spool, summary)
        except UpstreamError as exc:
            raise vendor_failure(exc, "the pipeline sync", ctx.secrets) from None
    where.complete = True
    return summary


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _stamp(state: AppState, integration_id: uuid.UUID, started: datetime, outcome: dict[str, Any],
           next_state: dict[str, Any] | None = None) -> None:
    """Write ``last_sync`` (and, after a success, ``last_synced_at`` and the next pull's state)."""
    finished = utcnow()
    values: dict[str, Any] = {
        "last_sync": {**outcome, "started_at": started.isoformat(), "finished_at": finished.isoformat()},
        "updated_at": Integration.updated_at,  # a sync is not an edit of the integration
    }
    if next_state is not None:
        values.update(last_synced_at=finished, sync_state={"since": started.isoformat(), "vendor": next_state})
    try:
        with transaction(state.sessions) as session:
            session.execute(update(Integration).where(Integration.id == integration_id).values(**values))
    except Exception:  # the job's own row still tells the outcome
        log.exception("could not record the sync of integration %s", integration_id)
