"""A finding an import reopens gets its ticket back: :func:`reopen_tickets_for`.

When an import sees a resolved finding again, the ticket that was closed for it no longer tells the truth.
The connector contract has no "comment" or "reopen" operation for work trackers (only ``create_ticket``
and ``sync_status``), so the tracker gets a new ticket that names the closed one, opened through the same
claim as ``POST /findings/{id}/tickets`` (one open ticket per finding and tracker, so calling this twice,
or beside a request, opens nothing twice). The closed link stays closed: a later delivery of the old
ticket resolves nothing (:mod:`pmap.tickets.processing`), and reconcile follows the new one.

After an import or a sync that reopened findings (its summary counts ``reopened``), the app calls
:func:`reopen_after_import` with that summary, once the import has committed and outside any request: the
job runner's success hook for background imports and syncs, a background task for an import answered at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from pmap.audit.service import SessionAudit
from pmap.connectors.base import CreatesTickets
from pmap.connectors.calls import failure_message, vendor_context
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.db import utcnow
from pmap.core.errors import Conflict, PmapError, UpstreamError
from pmap.core.redaction import scrub
from pmap.core.seams import Actor, Purpose
from pmap.core.state import AppState
from pmap.findings.models import Finding, FindingStatus
from pmap.integrations.models import Integration
from pmap.integrations.service import vendor_type
from pmap.tickets import service
from pmap.tickets.models import TicketLink
from pmap.tickets.reconcile import system_actor
from pmap.tickets.schemas import TicketCreate

log = logging.getLogger("pmap.tickets.reopen")

class _Failed(Exception):
    """A tracker that could not open the ticket; the message is scrubbed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ReopenSummary:
    """What :func:`reopen_tickets_for` did."""

    opened: list[str] = field(default_factory=list)  # "<old key> -> <new key>"
    failures: list[str] = field(default_factory=list)  # "<integration id> <old key>: <scrubbed reason>"


def _closed_tickets(state: AppState, finding_ids: Iterable[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """``(finding, tracker, closed key)``: open findings whose newest ticket on a tracker is closed."""
    ids = list(dict.fromkeys(finding_ids))
    with state.sessions() as session:
        rows = session.execute(
            select(TicketLink.finding_id, TicketLink.integration_id, TicketLink.ticket_key, TicketLink.closed_at)
            .join(Finding, Finding.id == TicketLink.finding_id)
            .where(TicketLink.finding_id.in_(ids), Finding.status == FindingStatus.OPEN.value)
            .order_by(TicketLink.created_at, TicketLink.id)).all()
    newest = {(r.finding_id, r.integration_id): r for r in rows}  # ordered: the last one wins
    return [(f, i, str(r.ticket_key)) for (f, i), r in newest.items()
            if f is not None and r.closed_at is not None and r.ticket_key is not None]


def reopen_after_import(state: AppState, summary: Mapping[str, Any]) -> ReopenSummary | None:
    """New tickets for the findings an import or sync reopened whose ticket had been closed (None: it
    reopened nothing). Failures are logged, scrubbed, and never undo the import."""
    if not summary.get("reopened") or not summary.get("import_id"):
        return None
    import_id = uuid.UUID(str(summary["import_id"]))
    with state.sessions() as session:
        # the import stamped every finding it saw with its id; those open now and with a closed ticket
        ids = list(session.scalars(
            select(Finding.id).distinct().join(TicketLink, TicketLink.finding_id == Finding.id)
            .where(Finding.last_import_id == import_id, Finding.status == FindingStatus.OPEN.value,
                   TicketLink.closed_at.is_not(None))))
    if not ids:
        return None
    done = reopen_tickets_for(state, ids)
    for failure in done.failures:
        log.warning("a reopened finding's ticket could not be opened again: %s", failure)
    return done


def reopen_tickets_for(state: AppState, finding_ids: Iterable[uuid.UUID], *,
                       actor_for: Callable[[uuid.UUID], Actor] = system_actor,
                       now: datetime | None = None) -> ReopenSummary:
    """Open a new ticket, naming the closed one, for each reopened finding whose tracker ticket was closed."""
    summary = ReopenSummary()
    for finding_id, integration_id, old_key in _closed_tickets(state, finding_ids):
        try:
            new_key = _reopen(state, finding_id, integration_id, old_key, actor_for, now or utcnow())
        except (_Failed, PmapError) as exc:
            summary.failures.append(f"{integration_id} {old_key}: {exc.message}")
            continue
        if new_key is not None:
            summary.opened.append(f"{old_key} -> {new_key}")
    return summary


def _reopen(state: AppState, finding_id: uuid.UUID, integration_id: uuid.UUID, old_key: str,
            actor_for: Callable[[uuid.UUID], Actor], now: datetime) -> str | None:
    """The new ticket's key; None when the finding has an open ticket on the tracker already."""
    with state.sessions() as session:
        finding = session.get_one(Finding, finding_id)
        row = session.get_one(Integration, integration_id)
        ct = vendor_type(row.vendor)
        tracker = ct.implementation
        if not isinstance(tracker, CreatesTickets):
            raise _Failed(f"{ct.display_name} integrations cannot open tickets")
        request = service.ticket_request(finding, TicketCreate(integration_id=integration_id))
        text = f"Seen again after {old_key} was closed.\n\n{request.description}"
        request = request.model_copy(update={"description": text[:service.DESCRIPTION_CHARS]})
        try:
            claim = service.claim_link(session, organization_id=row.organization_id, integration_id=row.id,
                                       finding_id=finding.id, wait=0)
        except Conflict:
            return None  # a request is opening one right now
        if not claim.taken:
            return None
        actor = actor_for(row.organization_id)
        try:
            with state.resolver.resolve(row, purpose=Purpose.TICKET_CREATION, actor=actor) as creds:
                secrets = tuple(v for v in creds.values.values() if v)
                ctx = vendor_context(state.settings, ct, row.connection, dict(creds.values),
                                     purpose=Purpose.TICKET_CREATION.value)
                try:
                    ref = tracker.create_ticket(ctx, request)
                except UpstreamError as exc:
                    raise _Failed(failure_message(exc, secrets)) from None
                except PmapError as exc:
                    raise _Failed(scrub(exc.message, secrets)) from None
        except BaseException:
            service.release_claim(session, claim.link_id)
            raise
        service.record_ticket(session, claim.link_id, ref, now=now)
        SessionAudit(session).record(actor=actor, action=AuditAction.TICKET_CREATE, integration_id=row.id,
                                     purpose=None, outcome=AuditOutcome.SUCCESS,
                                     detail={"finding_id": str(finding.id), "ticket_key": ref.key,
                                             "reopens": old_key})
        session.commit()
        return ref.key
