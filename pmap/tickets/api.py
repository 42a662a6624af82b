"""Ticket endpoints: open a ticket for a finding on a work-tracker integration, once per finding and
tracker (linking the two, so the tracker's later "done" delivery resolves the finding), list a finding's
tickets, and list the ticket status changes an integration's deliveries reported.
The tracker's credentials are resolved through the one decrypt path for the ``ticket_creation`` purpose.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from pmap.audit.service import SessionAudit
from pmap.auth.deps import OUTBOUND, OUTBOUND_RESPONSES, Operator, Viewer
from pmap.auth.principal import Principal
from pmap.connectors.base import ConnectorType, CreatesTickets, TicketRef, TicketRequest
from pmap.connectors.calls import OPERATION_BUDGET_SECONDS
from pmap.connectors.runner import operation_context
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.db import utcnow
from pmap.core.deps import DbSession, StateDep
from pmap.core.errors import FieldProblem, OperationNotSupported, UpstreamError, ValidationFailed
from pmap.core.seams import Purpose
from pmap.core.state import AppState
from pmap.findings.models import Finding
from pmap.integrations.models import Integration
from pmap.integrations.service import vendor_type
from pmap.tickets import service
from pmap.tickets.models import TicketLink
from pmap.tickets.schemas import LinkedTicketOut, TicketCreate, TicketEventPage, TicketOut

router = APIRouter(tags=["tickets"])  # mounted under /api/v1

#: a tracker's answers that mean "not with these values"
_REFUSED_INPUT = frozenset({400, 404, 422})


@router.post("/findings/{finding_id}/tickets", response_model=TicketOut, status_code=status.HTTP_201_CREATED,
             dependencies=[OUTBOUND], responses={**OUTBOUND_RESPONSES, 200: {
                 "model": TicketOut, "description": "The finding already has an open ticket on this tracker"}})
def open_ticket(finding_id: uuid.UUID, body: TicketCreate, session: DbSession, state: StateDep,
                principal: Operator, response: Response) -> TicketOut:
    """Open a ticket for a finding on a work tracker, once: asking again answers the open ticket (200)."""
    finding = principal.get_owned(session, Finding, finding_id, what="finding")
    row = principal.get_owned(session, Integration, body.integration_id, what="integration")
    ct = vendor_type(row.vendor)
    tracker = ct.implementation
    if not isinstance(tracker, CreatesTickets):
        raise OperationNotSupported(f"{ct.display_name} integrations cannot open tickets", fields=[FieldProblem(
            "integration_id", "is not a work tracker: choose an integration that opens tickets")])
    request = service.ticket_request(finding, body)
    ctx_budget = max(state.settings.connection_test_timeout, OPERATION_BUDGET_SECONDS)
    # the row is taken (and committed) before the tracker is called, so a racing request finds it and
    # waits for its key instead of opening a second vendor ticket; no pooled connection is held meanwhile
    claim = service.claim_link(session, organization_id=principal.organization_id, integration_id=row.id,
                               finding_id=finding.id, wait=ctx_budget)
    if not claim.taken:
        response.status_code = status.HTTP_200_OK
        return _out(finding.id, service.get_link(session, claim.link_id))
    try:
        ref = _create(state, principal, row, ct, tracker, request, finding.id, body.project)
    except BaseException:
        service.release_claim(session, claim.link_id)
        raise
    link = service.record_ticket(session, claim.link_id, ref, now=utcnow())
    SessionAudit(session).record(actor=principal.actor, action=AuditAction.TICKET_CREATE, integration_id=row.id,
                                 purpose=None, outcome=AuditOutcome.SUCCESS,
                                 detail={"finding_id": str(finding.id), "ticket_key": ref.key})
    session.commit()
    return _out(finding.id, link)


def _out(finding_id: uuid.UUID, link: TicketLink) -> TicketOut:
    return TicketOut(finding_id=finding_id, integration_id=link.integration_id, key=link.ticket_key or "",
                     url=link.url, status=link.status, done=link.done, opened_at=link.created_at)


def _create(state: AppState, principal: Principal, row: Integration, ct: ConnectorType, tracker: CreatesTickets,
            request: TicketRequest, finding_id: uuid.UUID, project: str | None) -> TicketRef:
    """The tracker's new ticket, with the credentials resolved for ``ticket_creation``."""
    with state.resolver.resolve(row, purpose=Purpose.TICKET_CREATION, actor=principal.actor) as creds:
        ctx = operation_context(state.settings, ct, row.connection, dict(creds.values),
                                purpose=Purpose.TICKET_CREATION.value)
        try:
            return tracker.create_ticket(ctx, request)
        except UpstreamError as exc:
            # a refused or failed ticket is audited too, in its own transaction (nothing else is written)
            state.audit.record(actor=principal.actor, action=AuditAction.TICKET_CREATE, integration_id=row.id,
                               purpose=None, outcome=AuditOutcome.FAILURE,
                               detail={"finding_id": str(finding_id), "step": exc.step, "reason": exc.message})
            if exc.step == "http" and exc.upstream_status in _REFUSED_INPUT:
                # the tracker refused what was asked (an unknown project, a label it does not take):
                # the caller's input, not a gateway failure; the message is already scrubbed
                raise ValidationFailed(f"the tracker refused the ticket: {exc.message}", fields=[FieldProblem(
                    "project" if project else "body", "refused by the tracker")]) from None
            raise


@router.get("/findings/{finding_id}/tickets", response_model=list[LinkedTicketOut])
def list_finding_tickets(finding_id: uuid.UUID, session: DbSession, principal: Viewer) -> list[LinkedTicketOut]:
    """The tickets opened for a finding, oldest first, as PMAP last learned them."""
    finding = principal.get_owned(session, Finding, finding_id, what="finding")
    return service.tickets_of_finding(session, finding.id)


@router.get("/integrations/{integration_id}/webhook/ticket-events", response_model=TicketEventPage)
def list_ticket_events(
    integration_id: uuid.UUID, session: DbSession, principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TicketEventPage:
    """Ticket status changes received from the vendor, newest first."""
    row = principal.get_owned(session, Integration, integration_id, what="integration")
    return service.list_ticket_events(session, row, limit=limit, cursor=cursor)
