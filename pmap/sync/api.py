"""REST endpoint of syncs: POST /api/v1/integrations/{id}/sync."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from pmap.auth.deps import Operator
from pmap.core.deps import DbSession
from pmap.findings.api import JobsDep
from pmap.findings.schemas import JobAccepted
from pmap.integrations.models import Integration
from pmap.sync import service
from pmap.sync.schemas import SyncRequest

router = APIRouter(prefix="/integrations", tags=["sync"])


@router.post("/{integration_id}/sync", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED,
             responses={409: {"description": "a sync of the integration is running (sync_running, naming its job), "
                                             "or the integration is disabled (integration_disabled)"},
                        422: {"description": "the vendor type has no findings API (operation_not_supported)"}})
def start_sync(integration_id: uuid.UUID, session: DbSession, principal: Operator, jobs: JobsDep,
               body: SyncRequest | None = None) -> JobAccepted:
    """Pull the integration's findings from its vendor as a job (202; follow GET /api/v1/jobs/{job.id})."""
    row = principal.get_owned(session, Integration, integration_id, what="integration")
    return JobAccepted(job=service.request_sync(session, jobs, principal, row, full=(body or SyncRequest()).full))
