"""Ticket links and events: the ticket text for a finding, linking a ticket to its finding, and the
ticket status changes recorded for an integration."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pmap.connectors.base import TicketRef, TicketRequest
from pmap.core import clock
from pmap.core.db import utcnow
from pmap.core.errors import Conflict
from pmap.core.pagination import newest_first, split_page
from pmap.findings.models import Finding
from pmap.integrations.models import Integration
from pmap.tickets.models import TicketEvent, TicketLink
from pmap.tickets.schemas import LinkedTicketOut, TicketCreate, TicketEventOut, TicketEventPage

DESCRIPTION_CHARS = 8000
#: a claim whose tracker call has not finished after this long is taken to be abandoned (its process
#: died between taking the row and recording the key): a new request may take it over
CLAIM_ABANDONED_SECONDS = 300.0
#: how often a request that found another's claim looks again for the key the tracker gave
_CLAIM_POLL_SECONDS = 0.05
#: refused inserts in a row that find no rival's claim before the refusal is taken for another cause
_CLAIM_CONFLICTS = 3


@dataclass(frozen=True, slots=True)
class Claim:
    """The open link of a finding on a tracker: ``taken`` when this request must call the tracker."""

    link_id: uuid.UUID
    taken: bool


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
    """Link an existing ticket of a work-tracker integration to a finding, so a later 'done' delivery
    resolves the finding. Re-linking a key replaces its finding."""
    existing = session.scalars(select(TicketLink).where(
        TicketLink.integration_id == integration_id, TicketLink.ticket_key == ticket_key)).first()
    if existing is not None:
        existing.finding_id = finding_id
    else:
        session.add(TicketLink(organization_id=organization_id, integration_id=integration_id,
                               ticket_key=ticket_key, finding_id=finding_id, status_seen_at=utcnow()))
    session.flush()


def _open_link(session: Session, finding_id: uuid.UUID, integration_id: uuid.UUID) -> TicketLink | None:
    return session.scalars(select(TicketLink).where(
        TicketLink.finding_id == finding_id, TicketLink.integration_id == integration_id,
        TicketLink.closed_at.is_(None)).execution_options(populate_existing=True)).first()


def claim_link(session: Session, *, organization_id: uuid.UUID, integration_id: uuid.UUID,
               finding_id: uuid.UUID, wait: float) -> Claim:
    """Take the one open link of a finding on a tracker before the tracker is called, or find it.

    Commits. The partial unique index decides a race: the loser finds the winner's row and waits up
    to ``wait`` seconds for the key the tracker gives it, so it answers the same ticket and never opens
    a second one. A claim abandoned for :data:`CLAIM_ABANDONED_SECONDS` is taken over (its tracker call
    may have opened a ticket nobody recorded: the one case a duplicate vendor ticket can arise)."""
    deadline = clock.monotonic() + wait
    conflicts = 0
    while True:
        existing = _open_link(session, finding_id, integration_id)
        session.commit()  # end the read: the next look must see the other request's commit
        if existing is None:
            session.add(row := TicketLink(organization_id=organization_id, integration_id=integration_id,
                                          finding_id=finding_id, ticket_key=None))
            try:
                session.commit()
                return Claim(row.id, taken=True)
            except IntegrityError:  # another request took it first: look at its row
                session.rollback()
                conflicts += 1
                if conflicts > _CLAIM_CONFLICTS:
                    raise  # not a rival's claim (none is found): an integration deleted meanwhile, say
                continue
        if existing.ticket_key is not None:
            return Claim(existing.id, taken=False)
        if _take_over(session, existing):
            return Claim(existing.id, taken=True)
        if clock.monotonic() >= deadline:
            raise Conflict("a ticket for this finding is being opened on this tracker; ask again shortly")
        clock.sleep(_CLAIM_POLL_SECONDS)


def _take_over(session: Session, link: TicketLink) -> bool:
    """Take an abandoned claim (compare-and-set on its time, so one request wins)."""
    now = utcnow()
    if link.created_at > now - timedelta(seconds=CLAIM_ABANDONED_SECONDS):
        return False
    taken = session.scalar(update(TicketLink).where(
        TicketLink.id == link.id, TicketLink.ticket_key.is_(None), TicketLink.created_at == link.created_at)
        .values(created_at=now).returning(TicketLink.id))
    session.commit()
    return taken is not None


def release_claim(session: Session, link_id: uuid.UUID) -> None:
    """Give a claim up when the tracker refused or failed: the next request may open the ticket. Commits."""
    session.rollback()
    session.execute(delete(TicketLink).where(TicketLink.id == link_id, TicketLink.ticket_key.is_(None)))
    session.commit()


def record_ticket(session: Session, link_id: uuid.UUID, ref: TicketRef, *, now: datetime) -> TicketLink:
    """Record the ticket the tracker opened on a claimed link (the caller commits)."""
    link = session.get_one(TicketLink, link_id, populate_existing=True)
    link.ticket_key, link.url, link.status, link.done = ref.key, ref.url, ref.status, ref.done
    link.status_seen_at = now
    if ref.done:
        link.closed_at = now
    session.flush()
    return link


def get_link(session: Session, link_id: uuid.UUID) -> TicketLink:
    """A link as stored now."""
    return session.get_one(TicketLink, link_id, populate_existing=True)


def linked_ticket(link: TicketLink, vendor: str) -> LinkedTicketOut:
    """A link as the API shows it."""
    return LinkedTicketOut(integration_id=link.integration_id, vendor=vendor, key=link.ticket_key, url=link.url,
                           status=link.status, done=link.done, opened_at=link.created_at, closed_at=link.closed_at,
                           reconcile_error=link.reconcile_error)


def tickets_of_finding(session: Session, finding_id: uuid.UUID) -> list[LinkedTicketOut]:
    """The tickets opened for a finding (the caller checked it is the caller's), oldest first; a ticket
    still being opened has no key yet."""
    rows = session.execute(select(TicketLink, Integration.vendor).join(
        Integration, Integration.id == TicketLink.integration_id).where(TicketLink.finding_id == finding_id)
        .order_by(TicketLink.created_at, TicketLink.id)).all()
    return [linked_ticket(link, vendor) for link, vendor in rows]


def list_ticket_events(session: Session, row: Integration, *, limit: int, cursor: str | None) -> TicketEventPage:
    """Ticket status changes learned from this integration's deliveries, newest first."""
    stmt = select(TicketEvent).where(TicketEvent.integration_id == row.id)
    rows, nxt = split_page(session.scalars(newest_first(stmt, TicketEvent, cursor, limit)).all(), limit)
    return TicketEventPage(items=[
        TicketEventOut(id=e.id, ticket_key=e.ticket_key, status=e.status, done=e.done, finding_id=e.finding_id,
                       finding_updated=e.finding_updated, delivery=e.delivery_row_id, received_at=e.created_at)
        for e in rows
    ], next_cursor=nxt)
