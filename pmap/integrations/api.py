"""REST endpoints for integrations under /api/v1/integrations."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pmap.auth.deps import OUTBOUND, OUTBOUND_RESPONSES, Admin, Operator, Viewer
from pmap.connectors.base import Category, ConnectionTestResult, PermissionReport
from pmap.core.deps import DbSession, StateDep
from pmap.integrations import deletion, permissions, service, testing
from pmap.integrations.models import Integration
from pmap.integrations.schemas import IntegrationCreate, IntegrationOut, IntegrationPage, IntegrationUpdate
from pmap.integrations.testing import SavedTestOverlay, UnsavedTest

router = APIRouter(prefix="/integrations", tags=["integrations"])


@router.post("", response_model=IntegrationOut, status_code=status.HTTP_201_CREATED)
def create_integration(body: IntegrationCreate, session: DbSession, state: StateDep,
                       principal: Operator) -> IntegrationOut:
    """Create an integration; its credentials are encrypted and never returned."""
    return service.to_out(service.create(session, state.keys, principal, body, settings=state.settings,
                                         audit=state.audit))


@router.post("/test", response_model=ConnectionTestResult,
             dependencies=[OUTBOUND], responses=OUTBOUND_RESPONSES)
def test_unsaved_connection(body: UnsavedTest, state: StateDep, _principal: Operator) -> ConnectionTestResult:
    """Test a connection before saving it: nothing is written, the answer holds no secret."""
    return testing.run_unsaved_test(state.settings, body)


@router.post("/{integration_id}/test", response_model=ConnectionTestResult,
             dependencies=[OUTBOUND], responses=OUTBOUND_RESPONSES)
def test_saved_connection(
    integration_id: uuid.UUID, session: DbSession, state: StateDep, principal: Operator,
    body: SavedTestOverlay | None = None,
) -> ConnectionTestResult:
    """Test a saved integration, optionally with unsaved edits laid over it (a new target needs
    the secrets again)."""
    row = principal.get_owned(session, Integration, integration_id, what="integration")
    return testing.run_saved_test(session, state.settings, state.resolver, principal, row, body or SavedTestOverlay())


@router.get("", response_model=IntegrationPage)
def list_integrations(
    session: DbSession,
    principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    name: Annotated[str | None, Query(min_length=1, max_length=200,
                                      description="Contained in the name, case-insensitively "
                                                  "(% and _ are literal)")] = None,
    vendor: Annotated[str | None, Query(max_length=64,
                                        description="A vendor type (GET /api/v1/connector-types)")] = None,
    category: Annotated[Category | None, Query()] = None,
    enabled: Annotated[bool | None, Query()] = None,
    sort: Annotated[service.IntegrationSort | None, Query(
        description="The order: a field, ascending, or with '-' descending; never tested or synced sorts as the "
                    "earliest time. Default: newest first. A cursor continues only the order that issued it.")] = None,
) -> IntegrationPage:
    """List the organization's integrations, newest first or in ``sort`` order (metadata only; decrypts nothing)."""
    filters = service.IntegrationFilters(name=name, vendor=vendor, category=category.value if category else None,
                                         enabled=enabled)
    return service.list_page(session, principal, limit=limit, cursor=cursor, filters=filters,
                             sort=sort.value if sort else None)


@router.get("/{integration_id}", response_model=IntegrationOut)
def get_integration(integration_id: uuid.UUID, session: DbSession, principal: Viewer) -> IntegrationOut:
    """One integration's metadata."""
    return service.to_out(principal.get_owned(session, Integration, integration_id, what="integration"))


@router.patch("/{integration_id}", response_model=IntegrationOut)
def update_integration(
    integration_id: uuid.UUID, body: IntegrationUpdate, session: DbSession, state: StateDep, principal: Operator
) -> IntegrationOut:
    """Update settings or credentials: an omitted secret stays, null clears it, a value replaces it."""
    row = principal.get_owned(session, Integration, integration_id, what="integration")
    updated = service.update(session, state.keys, state.resolver, principal, row, body,
                             settings=state.settings, audit=state.audit)
    return service.to_out(updated)


@router.post("/{integration_id}/permissions-check", response_model=PermissionReport,
             dependencies=[OUTBOUND], responses=OUTBOUND_RESPONSES)
def permissions_check(integration_id: uuid.UUID, session: DbSession, state: StateDep,
                      principal: Operator) -> PermissionReport:
    """What the stored credentials may do on the vendor: granted, missing, and excess rights."""
    row = principal.get_owned(session, Integration, integration_id, what="integration")
    return permissions.check_permissions(session, state, principal, row)


class DependentCounts(BaseModel):
    """Rows that belong to an integration, by kind (see ``pmap.integrations.deletion``)."""

    findings: int
    imports: int
    ticket_links: int
    ticket_events: int
    webhook_deliveries: int
    scan_launches: int
    scheduled_runs: int
    jobs: int


class DeletionPreview(BaseModel):
    """What a delete would remove with the integration: nothing is removed by a dry run."""

    dry_run: bool = True
    would_delete: DependentCounts


@router.delete("/{integration_id}", status_code=status.HTTP_204_NO_CONTENT, response_model=None,
               responses={200: {"model": DeletionPreview, "description": "dry_run=true: the counts, nothing removed"}})
def delete_integration(
    integration_id: uuid.UUID, session: DbSession, principal: Admin,
    dry_run: Annotated[bool, Query(description="Count what would be removed and remove nothing.")] = False,
) -> Response:
    """Delete an integration, its secrets, findings, imports, ticket links and events, webhook deliveries
    and jobs (admin). ``dry_run=true`` answers the counts and removes nothing."""
    row = principal.get_owned(session, Integration, integration_id, what="integration")
    if dry_run:
        preview = DeletionPreview(would_delete=DependentCounts(**deletion.count_dependents(session, row)))
        return JSONResponse(preview.model_dump(), status_code=status.HTTP_200_OK)
    service.delete(session, principal, row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
