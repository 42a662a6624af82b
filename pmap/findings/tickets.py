"""Opening a ticket for a finding on a work-tracker integration, and linking the two.

The link is what lets a later "done" webhook from the tracker resolve the finding
(:func:`pmap.webhooks.processing.link_ticket`). The tracker's credentials are resolved through the
one decrypt path for the ``ticket_creation`` purpose.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pmap.audit.service import SessionAudit
from pmap.auth.deps import OUTBOUND, OUTBOUND_RESPONSES, Operator
from pmap.connectors.base import Operation, TicketRef, TicketRequest
from pmap.connectors.runner import operation_context
from pmap.core.deps import DbSession, StateDep
from pmap.core.errors import FieldProblem, UpstreamError, ValidationFailed
from pmap.core.text import OneLine
from pmap.credentials.service import Purpose
from pmap.findings.models import Finding
from pmap.integrations.models import Integration
from pmap.integrations.service import vendor_type
from pmap.webhooks.processing import link_ticket

router = APIRouter(tags=["findings"])

DESCRIPTION_CHARS = 8000
#: a tracker's answers that mean "not with these values"
_REFUSED_INPUT = frozenset({400, 404, 422})


class TicketCreate(BaseModel):
    """Which tracker gets the ticket, and optional overrides."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    integration_id: uuid.UUID = Field(description="A ticketing or ITSM integration offering create_ticket")
    project: OneLine | None = Field(default=None, max_length=200,
                                    description="Project / repository, if not the integration's default")
    labels: list[Annotated[OneLine, StringConstraints(min_length=1, max_length=100)]] = Field(default_factory=list,
                                                                                              max_length=20)


class TicketOut(BaseModel):
    finding_id: uuid.UUID
    integration_id: uuid.UUID
    key: str
    url: str | None
    status: str | None
    done: bool


def ticket_request(finding: Finding, body: TicketCreate) -> TicketRequest:
    """The ticket text for a finding: what, where, how bad, how to fix."""
    where = finding.url or finding.host or finding.ip or finding.file_path or finding.package_name or "n/a"
    ids = ", ".join([*finding.cve_ids, *(f"CWE-{c}" for c in finding.cwe_ids), *finding.other_ids]) or "none"
    lines = [
        f"Severity: {finding.severity} (vendor: {finding.vendor_severity or 'n/a'})",
        f"Affected: {where}" + (f" port {finding.port}" if finding.port else "")
        + (f" line {finding.line}" if finding.line else ""),
        f"Identifiers: {ids}",
        "",
        (finding.description or "").strip(),
    ]
    if finding.remediation:
        lines += ["", "Remediation:", finding.remediation.strip()]
    lines += ["", f"PMAP finding {finding.id}"]
    return TicketRequest(
        title=f"[{finding.severity.upper()}] {finding.title}"[:250], description="\n".join(lines)[:DESCRIPTION_CHARS],
        severity=finding.severity, labels=["pmap", *body.labels], project=body.project,
    )


@router.post("/findings/{finding_id}/tickets", response_model=TicketOut, status_code=status.HTTP_201_CREATED,
             dependencies=[OUTBOUND], responses=OUTBOUND_RESPONSES)
def open_ticket(finding_id: uuid.UUID, body: TicketCreate, session: DbSession, state: StateDep,
                principal: Operator) -> TicketOut:
    """Open a ticket for a finding on a work tracker; its later status changes (webhooks) update the finding."""
    finding = principal.get_owned(session, Finding, finding_id, what="finding")
    row = principal.get_owned(session, Integration, body.integration_id, what="integration")
    ct = vendor_type(row.vendor)
    if Operation.CREATE_TICKET not in ct.operations:
        raise ValidationFailed(f"{ct.display_name} integrations cannot open tickets", fields=[FieldProblem(
            "integration_id", "is not a work tracker: choose an integration that opens tickets")])
    request = ticket_request(finding, body)
    session.commit()  # hold no pooled connection while the tracker is called
    with state.resolver.resolve(row, purpose=Purpose.TICKET_CREATION, actor=principal.actor) as creds:  # type: ignore[attr-defined]
        ctx = operation_context(state.settings, ct, row.connection, dict(creds.values),
                                purpose=Purpose.TICKET_CREATION.value)
        try:
            ref: TicketRef = ct.implementation.create_ticket(ctx, request)
        except UpstreamError as exc:
            # a refused or failed ticket is audited too, in its own transaction (nothing else is written)
            state.audit.record(actor=principal.actor, action="ticket.create", integration_id=row.id,  # type: ignore[attr-defined]
                               purpose=None, outcome="failure",
                               detail={"finding_id": str(finding.id), "step": exc.step, "reason": exc.message})
            if exc.step == "http" and exc.upstream_status in _REFUSED_INPUT:
                # the tracker refused what was asked (an unknown project, a label it does not take):
                # the caller's input, not a gateway failure; the message is already scrubbed
                raise ValidationFailed(f"the tracker refused the ticket: {exc.message}", fields=[FieldProblem(
                    "project" if body.project else "body", "refused by the tracker")]) from None
            raise
    link_ticket(session, organization_id=principal.organization_id, integration_id=row.id, ticket_key=ref.key,
                finding_id=finding.id)
    SessionAudit(session).record(actor=principal.actor, action="ticket.create", integration_id=row.id, purpose=None,
                                 outcome="success", detail={"finding_id": str(finding.id), "ticket_key": ref.key})
    session.commit()
    return TicketOut(finding_id=finding.id, integration_id=row.id, key=ref.key, url=ref.url, status=ref.status,
                     done=ref.done)
