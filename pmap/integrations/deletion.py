"""What deleting an integration takes with it: counted for a dry run, removed and counted for the audit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from pmap.core.errors import NotFound
from pmap.findings.models import Finding, ImportRecord, Job
from pmap.integrations.models import Integration
from pmap.scans.models import ScanLaunch
from pmap.schedules.models import ScheduledRun
from pmap.tickets.models import TicketEvent, TicketLink
from pmap.webhooks.models import WebhookDelivery

#: the rows that belong to an integration, by the name a dry run and the audit event give them; ticket
#: events go before the deliveries they point at, so no ``SET NULL`` is written for rows about to go
_CHILDREN: tuple[tuple[str, Any], ...] = (
    ("findings", Finding), ("imports", ImportRecord), ("ticket_links", TicketLink),
    ("ticket_events", TicketEvent), ("webhook_deliveries", WebhookDelivery), ("scan_launches", ScanLaunch),
    ("scheduled_runs", ScheduledRun),
)


def _jobs_of(row: Integration) -> ColumnElement[bool]:
    # a job names its integration in its parameters (jobs have no foreign key to integrations)
    return (Job.organization_id == row.organization_id) & (Job.params["integration_id"].as_string() == str(row.id))


def count_dependents(session: Session, row: Integration) -> dict[str, int]:
    """How many rows of each kind would go with ``row`` (COUNT queries; nothing is loaded or removed)."""
    counts = {name: session.scalar(select(func.count()).select_from(model).where(model.integration_id == row.id)) or 0
              for name, model in _CHILDREN}
    counts["jobs"] = session.scalar(select(func.count()).select_from(Job).where(_jobs_of(row))) or 0
    return counts


def delete_with_dependents(session: Session, row: Integration) -> dict[str, int]:
    """Delete ``row`` and every row that belongs to it, in the caller's transaction; the counts of what
    was removed. 404 when another request deleted it first (nothing is removed then)."""
    # lock the row first (PostgreSQL): a child inserted meanwhile waits for this transaction and then
    # fails its foreign key instead of vanishing uncounted; SQLite serializes writers anyway
    locked = session.execute(select(Integration.id).where(Integration.id == row.id).with_for_update()).first()
    if locked is None:
        raise NotFound("integration not found")
    removed = {name: _delete(session, model, model.integration_id == row.id) for name, model in _CHILDREN}
    removed["jobs"] = _delete(session, Job, _jobs_of(row))
    # the row count says whether this request deleted it (SQLite takes no lock above): a second delete
    # racing this one must not succeed, nor be audited, twice
    if _delete(session, Integration, Integration.id == row.id) != 1:
        session.rollback()
        raise NotFound("integration not found")
    return removed


def _delete(session: Session, model: Any, where: ColumnElement[bool]) -> int:
    result = session.execute(delete(model).where(where), execution_options={"synchronize_session": False})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]

