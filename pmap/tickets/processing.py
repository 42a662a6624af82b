"""Ticket status changes from work trackers: read from accepted deliveries, recorded, applied to findings.

The webhooks domain verifies and stores deliveries, then hands them here (:mod:`pmap.webhooks.processor`);
this module runs only on deliveries that were verified and stored. Deliveries that cannot carry a ticket
change (by vendor, scheme and event header: GitHub events other than ``issues``, GitLab events other than
issue hooks, Bitbucket, Snyk, SonarQube) are stored directly as ``processed``. Each vendor's payload is
read for a ticket status change: Jira ``jira:issue_*`` events (done = status category ``done``),
ServiceNow records (state 6 resolved / 7 closed, or those names), GitHub ``issues`` events and GitLab
issue hooks (done = state ``closed``), Azure DevOps ``workitem.*`` events (done = Closed / Done, as the
connector's ``sync_status`` decides; Resolved is not done: the fix is not yet verified). Every change is
recorded in ``ticket_events``; when the ticket is linked to a finding (``ticket_links``) and it is done,
the finding's status becomes ``resolved`` if it was ``open`` and the link was still open (a suppressed or
filtered finding keeps its status; reopening a ticket reopens nothing; a done ticket closes its link, so a
later delivery of it resolves nothing again).

Ticket keys: Jira issue key (``SEC-12``), ServiceNow ``number`` (``sys_id`` also matched),
GitHub/GitLab ``owner/repo#number`` (the bare number also matched), Azure DevOps the work item id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol, cast
from urllib.parse import parse_qs

import orjson
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from pmap.connectors.vendors.azure_devops import DONE_STATES as AZURE_DONE_STATES
from pmap.connectors.vendors.servicenow import STATES as SERVICENOW_STATES
from pmap.core.db import new_id
from pmap.core.text import CONTROL_CHARS
from pmap.findings.models import Finding
from pmap.tickets.models import TicketEvent, TicketLink

RESOLVED = "resolved"
OPEN = "open"
_SERVICENOW_DONE = {"6", "7", "resolved", "closed"}
_AZURE_DONE = AZURE_DONE_STATES  # one rule with the connector's sync_status: Closed or Done


class ProcessingError(Exception):
    """A delivery could not be processed; the message is recorded (no secret can be in it)."""


@dataclass(frozen=True, slots=True)
class TicketChange:
    """One ticket's new status; ``keys`` are the ticket's names, the first being the recorded one."""

    keys: tuple[str, ...]
    status: str | None
    done: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    """What processing needs of a stored delivery."""

    id: uuid.UUID
    organization_id: uuid.UUID
    integration_id: uuid.UUID
    vendor: str
    scheme: str
    event: str | None
    content_type: str | None
    body: bytes


class Source(Protocol):
    """Who reported ticket changes: a stored delivery, or the tracker's answer to a reconcile."""

    @property
    def id(self) -> uuid.UUID | None: ...  # the delivery row, if any
    @property
    def organization_id(self) -> uuid.UUID: ...
    @property
    def integration_id(self) -> uuid.UUID: ...


@dataclass(frozen=True, slots=True)
class TrackerAnswer:
    """The tracker's own answer when PMAP asked it (reconcile): no delivery row."""

    organization_id: uuid.UUID
    integration_id: uuid.UUID
    id: uuid.UUID | None = None


def _json(d: Delivery) -> Any:
    body = d.body
    if d.content_type and "x-www-form-urlencoded" in d.content_type:
        # GitHub's form content type: payload=<json>
        try:
            body = parse_qs(body.decode("utf-8"), strict_parsing=True)["payload"][0].encode()
        except (UnicodeDecodeError, ValueError, KeyError, IndexError):
            raise ProcessingError("form body without a payload field") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProcessingError("body is not valid JSON") from None


def _get(doc: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _text(value: Any) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)[:255] or None
    return None


def _jira(doc: Any) -> tuple[str | None, list[TicketChange]]:
    event = _text(_get(doc, "webhookEvent"))
    key = _text(_get(doc, "issue", "key"))
    if not event or not event.startswith("jira:issue_") or not key:
        return event, []
    status = _get(doc, "issue", "fields", "status")
    done = _get(status, "statusCategory", "key") == "done"
    return event, [TicketChange((key,), _text(_get(status, "name")), done)]


def _servicenow(doc: Any) -> tuple[str | None, list[TicketChange]]:
    number, sys_id = _text(_get(doc, "number")), _text(_get(doc, "sys_id"))
    state = _text(_get(doc, "state")) or _text(_get(doc, "incident_state"))
    keys = tuple(k for k in (number, sys_id) if k)
    if not keys or state is None:
        return _text(_get(doc, "table")), []
    # the state arrives as its code ("6"): keep the name users see in ServiceNow, as the connector does
    status = SERVICENOW_STATES.get(state.strip(), state)
    return _text(_get(doc, "table")), [TicketChange(keys, status, state.strip().lower() in _SERVICENOW_DONE)]


def _github(event: str | None, doc: Any) -> tuple[str | None, list[TicketChange]]:
    if event != "issues":
        return event, []
    number, repo = _text(_get(doc, "issue", "number")), _text(_get(doc, "repository", "full_name"))
    if not number:
        return event, []
    state = _text(_get(doc, "issue", "state"))
    keys = tuple(k for k in (f"{repo}#{number}" if repo else None, number) if k)
    return event, [TicketChange(keys, state, state == "closed")]


def _gitlab(event: str | None, doc: Any) -> tuple[str | None, list[TicketChange]]:
    kind = _text(_get(doc, "object_kind"))
    if kind not in ("issue", "work_item"):
        return event or kind, []
    iid, project = _text(_get(doc, "object_attributes", "iid")), _text(_get(doc, "project", "path_with_namespace"))
    if not iid:
        return event or kind, []
    state = _text(_get(doc, "object_attributes", "state"))
    keys = tuple(k for k in (f"{project}#{iid}" if project else None, iid) if k)
    return event or kind, [TicketChange(keys, state, state == "closed")]


def _azure(doc: Any) -> tuple[str | None, list[TicketChange]]:
    event = _text(_get(doc, "eventType"))
    if not event or not event.startswith("workitem."):
        return event, []
    resource = _get(doc, "resource")
    item = _text(_get(resource, "workItemId")) or _text(_get(resource, "id"))
    state = _get(resource, "fields", "System.State")
    state = _get(state, "newValue") if isinstance(state, dict) else state
    state = _text(state) or _text(_get(resource, "revision", "fields", "System.State"))
    if not item or state is None:
        return event, []
    return event, [TicketChange((item,), state, state.strip().lower() in _AZURE_DONE)]


Reader = Callable[[Any], tuple[str | None, list[TicketChange]]]
_GITLAB_ISSUE_EVENTS = ("issue hook", "confidential issue hook", "work item hook", "")


def _reader(vendor: str, scheme: str, event: str | None) -> Reader | None:
    """The payload reader of deliveries that may carry a ticket change; None for all others."""
    if scheme == "jira":
        return _jira
    if scheme == "servicenow":
        return _servicenow
    if scheme == "github" and event == "issues":
        return partial(_github, event)
    if vendor.startswith("gitlab") and scheme in ("gitlab_token", "standard_webhooks") and (
            event or "").lower() in _GITLAB_ISSUE_EVENTS:
        return partial(_gitlab, event)
    if scheme == "azure_devops_basic":
        return _azure
    return None


def needs_processing(vendor: str, scheme: str, event: str | None) -> bool:
    """Whether a delivery may carry something PMAP acts on, judged from its vendor, scheme and event
    header alone (the receiver stores the others directly as processed)."""
    return _reader(vendor, scheme, event) is not None


def ticket_changes(d: Delivery) -> tuple[str | None, list[TicketChange]]:
    """The event name and the ticket status changes a delivery reports (none for other events)."""
    reader = _reader(d.vendor, d.scheme, d.event)
    event, changes = reader(_json(d)) if reader is not None else (d.event, [])
    # vendor text goes into text columns: control characters (PostgreSQL refuses NUL) are dropped,
    # so one odd payload cannot fail the batch of deliveries it is processed with
    tidy = [TicketChange(keys, _one_line(c.status), c.done) for c in changes
            if (keys := tuple(k for k in map(_one_line, c.keys) if k))]
    return _one_line(event), tidy


def _one_line(value: str | None) -> str | None:
    return (CONTROL_CHARS.sub("", value) or None) if value else None


Applied = tuple[Delivery, Sequence[TicketChange]]


def apply_changes(session: Session, items: Sequence[tuple[Source, Sequence[TicketChange]]], *,
                  now: datetime) -> int:
    """Record the changes of several deliveries (or reconcile answers) as ticket events, keep each linked
    ticket's last known status, and resolve the linked findings of done tickets, in a fixed number of
    statements (links read at once, links, findings updated at once, events inserted at once); returns the
    number of findings updated. Runs in the caller's transaction; ``now`` (the caller's clock) stamps the
    events, the links and the resolved findings.

    A change names its ticket by several keys (``owner/repo#12``, ``12``): the first key that is
    linked wins."""
    pairs = [(d, c) for d, changes in items for c in changes]
    if not pairs:
        return 0
    integrations = {d.integration_id for d, _ in pairs}
    keys = {k for _, c in pairs for k in c.keys}
    rows = {(r.integration_id, r.ticket_key): r for r in session.execute(
        select(TicketLink.id, TicketLink.integration_id, TicketLink.ticket_key, TicketLink.finding_id,
               TicketLink.closed_at)
        .where(TicketLink.integration_id.in_(integrations), TicketLink.ticket_key.in_(keys)))}
    links = {k: r.finding_id for k, r in rows.items()}
    resolved: list[tuple[Source, TicketChange, str, uuid.UUID | None]] = []
    for d, change in pairs:
        key = next((k for k in change.keys if (d.integration_id, k) in links), change.keys[0])
        resolved.append((d, change, key, links.get((d.integration_id, key))))
    _keep_link_status(session, [(rows[(d.integration_id, key)], c) for d, c, key, _ in resolved
                                if (d.integration_id, key) in rows], now)
    # only an open link's ticket resolves: once closed, a later delivery of the old ticket (an edit while it
    # is done) must not resolve its finding again after an import reopened it (it has a new ticket then)
    open_keys = {k for k, r in rows.items() if r.closed_at is None}
    updated = _resolve_findings(session, {(f, d.organization_id) for d, c, key, f in resolved
                                          if c.done and f and (d.integration_id, key) in open_keys}, now)
    session.execute(insert(cast(Table, TicketEvent.__table__)), [
        {"id": new_id(), "organization_id": d.organization_id, "integration_id": d.integration_id,
         "delivery_row_id": d.id, "ticket_key": key, "status": c.status, "done": c.done, "finding_id": f,
         "finding_updated": bool(c.done and f in updated), "created_at": now}
        for d, c, key, f in resolved
    ])
    return len(updated)


def _keep_link_status(session: Session, changes: Sequence[tuple[Any, TicketChange]], now: datetime) -> None:
    """Each linked ticket's last reported status (the last change of the batch wins); a done ticket's
    link closes, and stays closed: the tracker reopening it reopens nothing (as for its finding)."""
    latest = {row.id: (row, change) for row, change in changes}
    if not latest:
        return
    links = cast(Table, TicketLink.__table__)
    session.execute(update(links).where(links.c.id == bindparam("link_id")).values(
        status=bindparam("new_status"), done=bindparam("new_done"), closed_at=bindparam("new_closed_at"),
        status_seen_at=bindparam("seen_at"), reconcile_error=None), [
        {"link_id": link_id, "new_status": change.status, "new_done": change.done,
         "new_closed_at": row.closed_at or (now if change.done else None), "seen_at": now}
        for link_id, (row, change) in latest.items()])


def _resolve_findings(session: Session, targets: set[tuple[uuid.UUID, uuid.UUID]], now: datetime) -> set[uuid.UUID]:
    """Resolve the open findings among ``(finding_id, organization_id)``; the ids updated. A
    suppressed or filtered finding keeps the status a person or a rule gave it."""
    findings = cast(Table, Finding.__table__)
    if not targets:
        return set()
    values = {"status": RESOLVED, **{c: now for c in ("resolved_at", "updated_at") if c in findings.c}}
    updated: set[uuid.UUID] = set()
    for org in {o for _, o in targets}:
        ids = [f for f, o in targets if o == org]
        updated.update(session.scalars(
            update(findings).where(findings.c.id.in_(ids), findings.c.organization_id == org,
                                   findings.c.status == OPEN)
            .values(**values).returning(findings.c.id)))
    return updated

