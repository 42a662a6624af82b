"""REST endpoints of scan launches: POST and GET /api/v1/integrations/{id}/scans."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from pmap.auth.deps import Operator, Viewer
from pmap.core.deps import DbSession
from pmap.findings.api import JobsDep
from pmap.integrations.models import Integration
from pmap.scans import service
from pmap.scans.schemas import ScanLaunchAccepted, ScanLaunchList, ScanLaunchOut, ScanLaunchRequest

router = APIRouter(prefix="/integrations", tags=["scans"])


@router.post("/{integration_id}/scans", response_model=ScanLaunchAccepted, status_code=status.HTTP_202_ACCEPTED,
             responses={409: {"description": "a launch of the same vendor scan is running (scan_running, naming its "
                                             "job), or the integration is disabled (integration_disabled)"},
                        422: {"description": "the vendor type cannot launch scans (operation_not_supported)"}})
def launch_scan(integration_id: uuid.UUID, body: ScanLaunchRequest, session: DbSession, principal: Operator,
                jobs: JobsDep) -> ScanLaunchAccepted:
    """Launch a configured vendor scan as a job that follows it and imports its results (202)."""
    row = principal.get_owned(session, Integration, integration_id, what="integration")
    launch, job = service.request_launch(session, jobs, principal, row, body.scan_id)
    return ScanLaunchAccepted(launch=ScanLaunchOut.model_validate(launch), job=job)


@router.get("/{integration_id}/scans", response_model=ScanLaunchList)
def list_scans(integration_id: uuid.UUID, session: DbSession, principal: Viewer) -> ScanLaunchList:
    """The integration's scan launches, newest first, with their vendor reference and state."""
    row = principal.get_owned(session, Integration, integration_id, what="integration")
    items = []
    for launch, job in service.list_launches(session, row):
        out = ScanLaunchOut.model_validate(launch)
        if out.state not in service.ENDED and job is not None and job.status == "failed":
            out.state, out.error = "failed", dict(job.error or {})  # its job ended without it (a lost process)
        items.append(out)
    return ScanLaunchList(items=items)
