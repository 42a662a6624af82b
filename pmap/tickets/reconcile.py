"""Reconcile: ask the trackers for the status of open tickets PMAP has heard nothing of for a while.

A tracker's "done" webhook may never arrive (not registered, lost, refused); without it a finding whose
ticket was closed would stay open forever. :func:`reconcile_tickets` takes the open tickets whose status
PMAP last learned more than ``PMAP_TICKET_RECONCILE_AFTER`` seconds ago, resolves each tracker's
credentials once through the one decrypt path (purpose ``ticket_reconcile``, audited), asks the tracker
(``sync_status``) and applies what changed through the status processing the webhooks use
(:func:`pmap.tickets.processing.apply_changes`): the change is a ticket event, a done ticket closes its
link and resolves its open finding. A ticket that fails is recorded on its link (``reconcile_error``,
scrubbed) and asked again next time; the others go on. ``pmapctl tickets reconcile`` runs it; a
scheduler calls it with the app's :class:`~pmap.core.state.AppState`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from pmap.connectors.base import SyncsTicketStatus, TicketRef
from pmap.connectors.calls import failure_message, vendor_context
from pmap.core.db import transaction, utcnow
from pmap.core.errors import PmapError, UpstreamError
from pmap.core.redaction import scrub
from pmap.core.seams import Actor, Purpose
from pmap.core.state import AppState
from pmap.integrations.models import Integration
from pmap.integrations.service import vendor_type
from pmap.tickets.models import TicketLink
from pmap.tickets.processing import Source, TicketChange, TrackerAnswer, apply_changes

log = logging.getLogger("pmap.tickets")

ERROR_CHARS = 500  # the width of ticket_links.reconcile_error
#: tickets asked per run at most (the oldest news first); the next run takes the rest
RUN_LIMIT = 1000


@dataclass
class ReconcileSummary:
    """What one reconcile run did."""

    checked: int = 0  # tickets the trackers answered for
    changed: int = 0  # of those, with a status other than the one PMAP knew
    closed: int = 0  # of those, done: their links closed
    findings_resolved: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # "<integration id> <ticket key>: <scrubbed reason>"


@dataclass(frozen=True, slots=True)
class _Due:
    id: uuid.UUID
    integration_id: uuid.UUID
    key: str
    status: str | None
    done: bool


def system_actor(organization_id: uuid.UUID) -> Actor:
    """The audit actor of a scheduled reconcile."""
    return Actor(kind="system", name="ticket-reconcile", organization_id=organization_id)


def _due_filter(now: datetime, after: float) -> list[Any]:
    seen = func.coalesce(TicketLink.status_seen_at, TicketLink.created_at)
    return [TicketLink.ticket_key.is_not(None), TicketLink.closed_at.is_(None), Integration.enabled.is_(True),
            seen < now - timedelta(seconds=after)]


def due_tickets(session: Session, *, now: datetime, after: float, limit: int = RUN_LIMIT,
                integration_id: uuid.UUID | None = None) -> list[_Due]:
    """Open tickets of enabled trackers (of one, given ``integration_id``) whose status PMAP last learned more than
    ``after`` seconds before ``now``, oldest first (a disabled integration is not called, as its webhooks are
    refused)."""
    seen = func.coalesce(TicketLink.status_seen_at, TicketLink.created_at)
    where = _due_filter(now, after)
    if integration_id is not None:
        where.append(TicketLink.integration_id == integration_id)
    rows = session.execute(
        select(TicketLink.id, TicketLink.integration_id, TicketLink.ticket_key, TicketLink.status, TicketLink.done)
        .join(Integration, Integration.id == TicketLink.integration_id)
        .where(*where).order_by(seen, TicketLink.id).limit(limit)).all()
    return [_Due(r.id, r.integration_id, str(r.ticket_key), r.status, bool(r.done)) for r in rows]


def trackers_due(session: Session, *, now: datetime, after: float) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The trackers with tickets due for a reconcile, as (integration id, organization id)."""
    rows = session.execute(
        select(Integration.id, Integration.organization_id).distinct()
        .join(TicketLink, TicketLink.integration_id == Integration.id).where(*_due_filter(now, after))).all()
    return [(r.id, r.organization_id) for r in rows]


def reconcile_tickets(state: AppState, *, actor_for: Callable[[uuid.UUID], Actor] = system_actor,
                      now: datetime | None = None, integration_id: uuid.UUID | None = None) -> ReconcileSummary:
    """Ask the trackers (or one, ``integration_id``: a ``ticket_reconcile`` job) for the open tickets no delivery
    has updated lately and apply their answers."""
    now = now or utcnow()
    with state.sessions() as session:
        due = due_tickets(session, now=now, after=state.settings.ticket_reconcile_after,
                          integration_id=integration_id)
        rows = {r.id: r for r in session.scalars(
            select(Integration).where(Integration.id.in_({d.integration_id for d in due})))}
    summary = ReconcileSummary()
    for integration_id in dict.fromkeys(d.integration_id for d in due):
        tickets = [d for d in due if d.integration_id == integration_id]
        answers, errors = _ask(state, rows[integration_id], tickets, actor_for)
        _record(state, rows[integration_id], tickets, answers, errors, now, summary)
    return summary


def _ask(state: AppState, row: Integration, tickets: Sequence[_Due], actor_for: Callable[[uuid.UUID], Actor],
         ) -> tuple[list[tuple[_Due, TicketRef]], dict[uuid.UUID, str]]:
    """The tracker's answer for each ticket, or the scrubbed reason it has none."""
    ct = vendor_type(row.vendor)
    tracker = ct.implementation
    if not isinstance(tracker, SyncsTicketStatus):
        return [], {t.id: f"{ct.display_name} integrations cannot report a ticket's status" for t in tickets}
    answers: list[tuple[_Due, TicketRef]] = []
    errors: dict[uuid.UUID, str] = {}
    try:
        with state.resolver.resolve(row, purpose=Purpose.TICKET_RECONCILE, actor=actor_for(row.organization_id)) \
                as creds:
            secrets = tuple(v for v in creds.values.values() if v)
            for ticket in tickets:
                try:
                    # one context (and deadline) per ticket: a slow answer spends only its own budget
                    ctx = vendor_context(state.settings, ct, row.connection, dict(creds.values),
                                         purpose=Purpose.TICKET_RECONCILE.value)
                    answers.append((ticket, tracker.sync_status(ctx, ticket.key)))
                except UpstreamError as exc:
                    errors[ticket.id] = failure_message(exc, secrets)
                except PmapError as exc:
                    errors[ticket.id] = scrub(exc.message, secrets)
                except Exception as exc:  # a connector's bug fails its ticket, never the run
                    log.exception("reconciling ticket %s of integration %s failed", ticket.key, row.id)
                    errors[ticket.id] = f"unexpected error ({type(exc).__name__})"
    except PmapError as exc:  # the credentials did not open: every ticket of this tracker waits
        errors.update({t.id: exc.message for t in tickets if t.id not in errors})
    return answers, errors


def _record(state: AppState, row: Integration, tickets: Sequence[_Due], answers: Sequence[tuple[_Due, TicketRef]],
            errors: dict[uuid.UUID, str], now: datetime, summary: ReconcileSummary) -> None:
    """Apply one tracker's answers in one transaction: changes as the webhooks' are, the rest as seen."""
    # a status PMAP never knew (the tracker's create answer names none) is learned, not a change
    changed = [(t, ref) for t, ref in answers
               if ref.done != t.done or (t.status is not None and ref.status != t.status)]
    changed_ids = {t.id for t, _ in changed}
    same = [{"link_id": t.id, "known": ref.status} for t, ref in answers if t.id not in changed_ids]
    links = cast(Table, TicketLink.__table__)
    with transaction(state.sessions) as session:
        if changed:
            source: Source = TrackerAnswer(row.organization_id, row.id)
            # the link's key names the ticket (a tracker may answer a moved issue under its new key)
            summary.findings_resolved += apply_changes(session, [
                (source, [TicketChange((t.key,), ref.status, ref.done) for t, ref in changed])], now=now)
        if same:
            session.execute(update(links).where(links.c.id == bindparam("link_id")).values(
                status=bindparam("known"), status_seen_at=now, reconcile_error=None), same)
        if errors:
            params: list[dict[str, Any]] = [{"link_id": i, "reason": m[:ERROR_CHARS]} for i, m in errors.items()]
            session.execute(update(links).where(links.c.id == bindparam("link_id"))
                            .values(reconcile_error=bindparam("reason")), params)
    summary.checked += len(answers)
    summary.changed += len(changed)
    summary.closed += sum(1 for _, ref in changed if ref.done)
    summary.failed += len(errors)
    keys = {t.id: t.key for t in tickets}
    summary.failures += [f"{row.id} {keys[i]}: {m}" for i, m in errors.items()]
