"""Ticket links and events: the ticket text for a finding, linking a ticket to its finding, and the
ticket status changes recorded for an integration."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from pmap.connectors.base import TicketRequest
from pmap.core.pagination import newest_first, split_page
from pmap.findings.models import Finding
from pmap.integrations.models import Integration
from pmap.tickets.models import TicketEvent, TicketLink
from pmap.tickets.schemas import TicketCreate, TicketEventOut, TicketEventPage

DESCRIPTION_CHARS = 8000


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


def link_ticket(session: Session, *, organization_id: uuid.UUID, integration_id: uuid.UUID, ticket_key: str,
                finding_id: uuid.UUID | None) -> None:
    """Link a ticket of a work-tracker integration to a finding (ticket creation calls this), so a
    later 'done' delivery resolves the finding. Re-linking a key replaces its finding."""
    existing = session.scalars(select(TicketLink).where(
        TicketLink.integration_id == integration_id, TicketLink.ticket_key == ticket_key)).first()
    if existing is not None:
        existing.finding_id = finding_id
    else:
        session.add(TicketLink(organization_id=organization_id, integration_id=integration_id,
                               ticket_key=ticket_key, finding_id=finding_id))
    session.flush()


def list_ticket_events(session: Session, row: Integration, *, limit: int, cursor: str | None) -> TicketEventPage:
    """Ticket status changes learned from this integration's deliveries, newest first."""
    stmt = select(TicketEvent).where(TicketEvent.integration_id == row.id)
    rows, nxt = split_page(session.scalars(newest_first(stmt, TicketEvent, cursor, limit)).all(), limit)
    return TicketEventPage(items=[
        TicketEventOut(id=e.id, ticket_key=e.ticket_key, status=e.status, done=e.done, finding_id=e.finding_id,
                       finding_updated=e.finding_updated, delivery=e.delivery_row_id, received_at=e.created_at)
        for e in rows
    ], next_cursor=nxt)
