"""Ticket endpoints: open a ticket for a finding on a work-tracker integration (linking the two, so the
tracker's later "done" delivery resolves the finding), and list the ticket status changes an integration's
deliveries reported. The tracker's credentials are resolved through the one decrypt path for the
``ticket_creation`` purpose.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from pmap.audit.service import SessionAudit
from pmap.auth.deps import OUTBOUND, OUTBOUND_RESPONSES, Operator, Viewer
from pmap.connectors.base import CreatesTickets, TicketRef
from pmap.connectors.runner import operation_context
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.deps import DbSession, StateDep
from pmap.core.errors import FieldProblem, OperationNotSupported, UpstreamError, ValidationFailed
from pmap.core.seams import Purpose
from pmap.findings.models import Finding
from pmap.integrations.models import Integration
from pmap.integrations.service import vendor_type
from pmap.tickets import service
from pmap.tickets.schemas import TicketCreate, TicketEventPage, TicketOut

router = APIRouter(tags=["tickets"])  # mounted under /api/v1

#: a tracker's answers that mean "not with these values"
_REFUSED_INPUT = frozenset({400, 404, 422})


@router.post("/findings/{finding_id}/tickets", response_model=TicketOut, status_code=status.HTTP_201_CREATED,
             dependencies=[OUTBOUND], responses=OUTBOUND_RESPONSES)
def open_ticket(finding_id: uuid.UUID, body: TicketCreate, session: DbSession, state: StateDep,
                principal: Operator) -> TicketOut:
    """Open a ticket for a finding on a work tracker; its later status changes (webhooks) update the finding."""
    finding = principal.get_owned(session, Finding, finding_id, what="finding")
    row = principal.get_owned(session, Integration, body.integration_id, what="integration")
    ct = vendor_type(row.vendor)
    tracker = ct.implementation
    if not isinstance(tracker, CreatesTickets):
        raise OperationNotSupported(f"{ct.display_name} integrations cannot open tickets", fields=[FieldProblem(
            "integration_id", "is not a work tracker: choose an integration that opens tickets")])
    request = service.ticket_request(finding, body)
    session.commit()  # hold no pooled connection while the tracker is called
    with state.resolver.resolve(row, purpose=Purpose.TICKET_CREATION, actor=principal.actor) as creds:
        ctx = operation_context(state.settings, ct, row.connection, dict(creds.values),
                                purpose=Purpose.TICKET_CREATION.value)
        try:
            ref: TicketRef = tracker.create_ticket(ctx, request)
        except UpstreamError as exc:
            # a refused or failed ticket is audited too, in its own transaction (nothing else is written)
            state.audit.record(actor=principal.actor, action=AuditAction.TICKET_CREATE, integration_id=row.id,
                               purpose=None, outcome=AuditOutcome.FAILURE,
                               detail={"finding_id": str(finding.id), "step": exc.step, "reason": exc.message})
            if exc.step == "http" and exc.upstream_status in _REFUSED_INPUT:
                # the tracker refused what was asked (an unknown project, a label it does not take):
                # the caller's input, not a gateway failure; the message is already scrubbed
                raise ValidationFailed(f"the tracker refused the ticket: {exc.message}", fields=[FieldProblem(
                    "project" if body.project else "body", "refused by the tracker")]) from None
            raise
    service.link_ticket(session, organization_id=principal.organization_id, integration_id=row.id,
                        ticket_key=ref.key, finding_id=finding.id)
    SessionAudit(session).record(actor=principal.actor, action=AuditAction.TICKET_CREATE, integration_id=row.id,
                                 purpose=None, outcome=AuditOutcome.SUCCESS,
                                 detail={"finding_id": str(finding.id), "ticket_key": ref.key})
    session.commit()
    return TicketOut(finding_id=finding.id, integration_id=row.id, key=ref.key, url=ref.url, status=ref.status,
                     done=ref.done)


@router.get("/integrations/{integration_id}/webhook/ticket-events", response_model=TicketEventPage)
def list_ticket_events(
    integration_id: uuid.UUID, session: DbSession, principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TicketEventPage:
    """Ticket status changes received from the vendor, newest first."""
    row = principal.get_owned(session, Integration, integration_id, what="integration")
    return service.list_ticket_events(session, row, limit=limit, cursor=cursor)
