"""Findings, imports, jobs and rules endpoints under /api/v1."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from pmap.auth.deps import Operator, Viewer
from pmap.auth.principal import Principal
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.deps import DbSession, StateDep
from pmap.core.errors import FieldProblem, IntegrationDisabled, OperationNotSupported, PmapError, ValidationFailed
from pmap.core.pagination import newest_first, split_page
from pmap.core.state import AppState
from pmap.findings import service
from pmap.findings.formats.registry import report_formats
from pmap.findings.importer import (
    HEAD_BYTES,
    RESOLVE_MODES,
    SCOPE_MAX,
    ImportOptions,
    ImportTarget,
    resolve_format,
    run_import,
    target_for,
)
from pmap.findings.jobs import JobRunner
from pmap.findings.models import Job
from pmap.findings.rules_api import router as rules_router
from pmap.findings.schemas import (
    FindingCounts,
    FindingPage,
    FindingWithOccurrences,
    ImportOut,
    ImportPage,
    ImportSummaryOut,
    JobAccepted,
    JobOut,
    JobPage,
)
from pmap.findings.severity import SEVERITIES
from pmap.findings.upload import Upload, receive_upload, spool_dir
from pmap.integrations.models import Integration
from pmap.tickets.reopen import reopen_after_import
from pmap.tickets.schemas import LinkedTicketOut
from pmap.tickets.service import tickets_of_finding

router = APIRouter(tags=["findings"])
router.include_router(rules_router)

_STATUSES = ("open", "resolved", "suppressed", "filtered")
_FORM_FIELDS = {"format", "scope", "full", "resolve"}
_MULTIPART_DOC: dict[str, Any] = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The report file."},
        "format": {"type": "string", "description": "Format key; detected from the file when omitted."},
        "scope": {"type": "string", "default": "default",
                  "description": "A stream of reports within the integration (with the format): a newer full report "
                                 "of the same integration, format and scope resolves the findings it no longer "
                                 "contains (on the resources it covered, see `resolve`); reports of another scope "
                                 "never resolve each other's findings."},
        "full": {"type": "boolean", "default": True,
                 "description": "false for a partial report: nothing is resolved."},
        "resolve": {"type": "string", "enum": list(RESOLVE_MODES), "default": "covered",
                    "description": "What a full report resolves of the scope's findings it lacks. `covered`: only "
                                   "those on a resource the report covered (a host or ip it scanned, a URL origin "
                                   "scheme://host:port, a repository, a named asset), so two scans of different "
                                   "hosts never resolve each other's findings, and an empty report (or one whose "
                                   "entries were all left out by design) resolves nothing, with a warning. `scope`: "
                                   "every finding of the scope it lacks, even when it is empty."},
    }}}}}}


def get_jobs(request: Request) -> JobRunner:
    """The app's background job runner."""
    return request.app.state.jobs


JobsDep = Annotated[JobRunner, Depends(get_jobs)]


# --- imports ------------------------------------------------------------------------------------

def _owned_integration(state: AppState, principal: Principal, integration_id: uuid.UUID) -> Integration:
    with state.sessions() as session:
        return principal.get_owned(session, Integration, integration_id, what="integration")


def _options(upload: Upload, actor: str) -> ImportOptions:
    unknown = sorted(set(upload.fields) - _FORM_FIELDS)
    if unknown:
        raise ValidationFailed("the request is invalid",
                               fields=[FieldProblem(n, "is not a known field") for n in unknown])
    scope = upload.fields.get("scope", "").strip() or "default"
    if len(scope) > SCOPE_MAX or not scope.isprintable():
        raise ValidationFailed("the request is invalid",
                               fields=[FieldProblem("scope", f"must be 1-{SCOPE_MAX} printable characters")])
    full_text = upload.fields.get("full", "true").strip().lower()
    if full_text not in ("true", "false", "1", "0", "yes", "no"):
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("full", "must be true or false")])
    resolve = upload.fields.get("resolve", "").strip().lower() or "covered"
    if resolve not in RESOLVE_MODES:
        raise ValidationFailed("the request is invalid",
                               fields=[FieldProblem("resolve", f"must be one of {', '.join(RESOLVE_MODES)}")])
    return ImportOptions(format=upload.fields.get("format", "").strip() or None, scope=scope,
                         full=full_text in ("true", "1", "yes"), filename=upload.filename, actor=actor,
                         resolve="scope" if resolve == "scope" else "covered")


def _format_of(upload: Upload, options: ImportOptions, target: ImportTarget) -> str:
    with open(upload.path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    return resolve_format(head, upload.filename, options.format, target).key


def _audit(state: AppState, principal: Principal, integration_id: uuid.UUID, outcome: AuditOutcome,
           detail: dict[str, Any]) -> None:
    state.audit.record(actor=principal.actor, action=AuditAction.FINDINGS_IMPORT, integration_id=integration_id,
                       purpose="import", outcome=outcome, detail=detail)


@router.post(
    "/integrations/{integration_id}/imports", response_model=ImportSummaryOut,
    responses={202: {"model": JobAccepted, "description": "A large file: imported by a background job."}},
    openapi_extra=_MULTIPART_DOC,
)
async def import_report(integration_id: uuid.UUID, request: Request, state: StateDep, principal: Operator,
                        jobs: JobsDep, background: BackgroundTasks) -> Any:
    """Import a report file (multipart ``file``, optional ``format``, ``scope``, ``full``, ``resolve``).

    The answer is the import summary; a file larger than ``PMAP_IMPORT_BACKGROUND_BYTES`` is
    imported in the background instead: 202 with ``{"job": {...}}`` (follow ``GET /api/v1/jobs/{id}``).
    The format must be one the integration's vendor type lists (422 naming them otherwise).
    """
    integration = await run_in_threadpool(_owned_integration, state, principal, integration_id)
    if not integration.enabled:
        raise IntegrationDisabled("the integration is disabled (enabled: false): enable it to import reports")
    target = target_for(integration)
    if not target.accepted_formats:
        raise OperationNotSupported(f"vendor type {integration.vendor!r} imports no report files",
                                    fields=[FieldProblem("format",
                                                         "this integration's vendor type lists no report format")])
    upload = await receive_upload(request, spool_dir(state.settings.data_dir))
    handed_over = False
    try:
        options = _options(upload, principal.actor.label)
        options = dataclasses.replace(options, format=await run_in_threadpool(_format_of, upload, options, target))
        if upload.size > state.settings.import_background_bytes:
            job = await run_in_threadpool(jobs.submit_import, principal.actor, integration.id, upload.path, options,
                                          upload.size)
            handed_over = True
            return JSONResponse(JobAccepted(job=job).model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
        try:
            summary = await run_in_threadpool(run_import, state.engine, target, upload.path, options)
        except PmapError as exc:
            await run_in_threadpool(_audit, state, principal, integration.id, AuditOutcome.FAILURE, {"error": exc.code})
            raise
        await run_in_threadpool(_audit, state, principal, integration.id, AuditOutcome.SUCCESS,
                                {"import_id": summary.import_id, "format": summary.format, "parsed": summary.parsed,
                                 "created": summary.created})
        if summary.reopened:  # closed tickets of reopened findings are opened again, after the answer
            background.add_task(reopen_after_import, state, summary.as_dict())
        return ImportSummaryOut(**summary.as_dict())
    finally:
        if not handed_over:
            upload.discard()


@router.get("/integrations/{integration_id}/imports", response_model=ImportPage)
def list_imports(
    integration_id: uuid.UUID, session: DbSession, principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ImportPage:
    """The completed imports of one integration, newest first."""
    principal.get_owned(session, Integration, integration_id, what="integration")
    return service.list_imports(session, principal, integration_id, limit=limit, cursor=cursor)


@router.get("/imports/{import_id}", response_model=ImportOut)
def get_import(import_id: uuid.UUID, session: DbSession, principal: Viewer) -> ImportOut:
    """One completed import and its summary."""
    return service.get_import(session, principal, import_id)


# --- jobs ---------------------------------------------------------------------------------------

@router.get("/jobs", response_model=JobPage, tags=["jobs"])
def list_jobs(
    session: DbSession, principal: Viewer, jobs: JobsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    integration_id: Annotated[uuid.UUID | None, Query(description="Only this integration's jobs.")] = None,
    kind: Annotated[str | None, Query(max_length=32, description="Only jobs of this kind (import, sync, scan, ...).")]
    = None,
) -> JobPage:
    """The organization's background jobs, newest first; ``integration_id`` and ``kind`` narrow them."""
    stmt = principal.scoped(Job)
    if integration_id is not None:
        stmt = stmt.where(Job.integration_id == integration_id)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    rows, nxt = split_page(session.scalars(newest_first(stmt, Job, cursor, limit)).all(), limit)
    return JobPage(items=[jobs.to_out(r) for r in rows], next_cursor=nxt)


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def get_job(job_id: uuid.UUID, session: DbSession, principal: Viewer, jobs: JobsDep) -> JobOut:
    """A job's status and progress; once done, the import summary as ``result`` or the ``error``."""
    return jobs.get(session, principal.organization_id, job_id)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
def cancel_job(job_id: uuid.UUID, session: DbSession, principal: Operator, jobs: JobsDep) -> JobOut:
    """Cancel a queued or running job: a queued one ends at once; a running import or sync stops at its next
    progress report, keeping nothing of what it did (409 once the job has finished)."""
    return jobs.cancel(session, principal.organization_id, job_id, f"{principal.role.value} {principal.name}")


# --- findings -----------------------------------------------------------------------------------

def _choices(values: list[str] | None, allowed: tuple[str, ...], name: str) -> list[str]:
    out = [v.strip().lower() for raw in values or [] for v in raw.split(",") if v.strip()]
    bad = sorted(set(out) - set(allowed))
    if bad:
        raise ValidationFailed("the request is invalid",
                               fields=[FieldProblem(name, f"unknown value(s) {', '.join(bad)}; "
                                                          f"one of {', '.join(allowed)}")])
    return out


def _one_choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    """A filter that takes one value: blank (whitespace, commas) is no filter, several values are a 422."""
    chosen = _choices([value] if value else None, allowed, name)
    if len(chosen) > 1:
        raise ValidationFailed("the request is invalid", fields=[FieldProblem(name, "takes one value")])
    return chosen[0] if chosen else None


def finding_filters(
    integration_id: uuid.UUID | None = None,
    severity: Annotated[list[str] | None, Query(description="Repeat or comma-separate: high,critical")] = None,
    finding_status: Annotated[list[str] | None,
                              Query(alias="status", description="open, resolved, suppressed, filtered")] = None,
    vuln_id: Annotated[str | None,
                       Query(max_length=200, description="CVE, CWE-n, GHSA/advisory or vendor rule id")] = None,
    host: Annotated[str | None, Query(max_length=255)] = None,
    ip: Annotated[str | None, Query(max_length=64)] = None,
    port: Annotated[int | None, Query(ge=0, le=65535)] = None,
    url: Annotated[str | None, Query(max_length=2048)] = None,
    repository: Annotated[str | None, Query(max_length=500)] = None,
    file_path: Annotated[str | None, Query(max_length=1024)] = None,
    package_name: Annotated[str | None, Query(max_length=500)] = None,
    resource: Annotated[str | None, Query(
        max_length=2048,
        description="Equals host, ip, url, repository, file path, package or asset (the covered resource)")] = None,
    scope: Annotated[str | None, Query(max_length=200)] = None,
    format: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    title: Annotated[str | None, Query(min_length=1, max_length=500,
                                       description="Contained in the title, case-insensitively "
                                                   "(% and _ are literal)")] = None,
) -> service.FindingFilters:
    """The findings filters of a query string (shared by the listing and the counts)."""
    return service.FindingFilters(
        integration_id=integration_id, severity=_choices(severity, SEVERITIES, "severity"),
        status=_choices(finding_status, _STATUSES, "status"), vuln_id=vuln_id, host=host, ip=ip, port=port, url=url,
        repository=repository, file_path=file_path, package_name=package_name, resource=resource, scope=scope,
        format=_one_choice(format, tuple(sorted(report_formats())), "format"), tag=tag, title=title,
    )


FiltersDep = Annotated[service.FindingFilters, Depends(finding_filters)]


@router.get("/findings", response_model=FindingPage)
def list_findings(
    session: DbSession, principal: Viewer, filters: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> FindingPage:
    """The organization's findings, newest first, filtered."""
    return service.list_findings(session, principal, filters, limit=limit, cursor=cursor)


# declared before /findings/{finding_id}, which would otherwise take "counts" for an id
@router.get("/findings/counts", response_model=FindingCounts)
def count_findings(session: DbSession, principal: Viewer, filters: FiltersDep) -> FindingCounts:
    """How many of the organization's findings match the filters: in all, by severity and by integration."""
    return service.count_findings(session, principal, filters)


class FindingDetailOut(FindingWithOccurrences):
    """One finding and the tickets opened for it. Composed here, in the API layer: findings and tickets
    share a rung and neither imports the other."""

    tickets: list[LinkedTicketOut] = Field(description="Tickets opened for the finding on work trackers.")


@router.get("/findings/{finding_id}", response_model=FindingDetailOut)
def get_finding(finding_id: uuid.UUID, session: DbSession, principal: Viewer) -> FindingDetailOut:
    """One finding, with its tickets."""
    finding = service.get_finding(session, principal, finding_id)
    return FindingDetailOut(**finding.model_dump(), tickets=tickets_of_finding(session, finding.id))
