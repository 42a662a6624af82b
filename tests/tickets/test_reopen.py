"""A finding an import reopens gets its ticket back: a new ticket on the tracker naming the closed one
(the contract has no comment or reopen operation), once, over real HTTP to the work-tracker sandbox."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select, update

from pmap.audit.models import AuditEvent
from pmap.connectors.base import TicketRef
from pmap.core.db import transaction, utcnow
from pmap.core.settings import Settings
from pmap.findings.models import Finding
from pmap.tickets.models import TicketLink
from pmap.tickets.processing import TicketChange, TrackerAnswer, apply_changes
from pmap.tickets.reconcile import reconcile_tickets
from pmap.tickets.reopen import reopen_tickets_for
from pmap_sandbox.server import SandboxServer, build_app
from tests.conftest import Api
from tests.connectors.work.sandbox_ops import close_ticket, stored_ticket
from tests.findings.pipeline.helpers import create_integration as create_scanner
from tests.tickets.support import finding_status, link, open_finding, organization_of, work_tracker


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(build_app()) as server:
        yield server


def _import_reopens(api: Api, finding: uuid.UUID) -> None:
    """What an import that sees the resolved finding again does to it."""
    with transaction(api.state.sessions) as s:
        s.execute(update(Finding).where(Finding.id == finding).values(status="open", resolved_at=None))


@pytest.mark.parametrize("vendor", ["jira_cloud", "servicenow"])
def test_a_reopened_finding_gets_a_new_ticket_naming_the_closed_one_once(
        api: Api, sandbox: SandboxServer, settings: Settings, vendor: str) -> None:
    h = api.token(role="admin")
    iid, connection, credentials = work_tracker(api, h, vendor, sandbox.base_url)
    finding = open_finding(api, create_scanner(api, h))
    old = api.client.post(f"/api/v1/findings/{finding}/tickets", json={"integration_id": iid}, headers=h).json()["key"]
    close_ticket(vendor, connection["base_url"], credentials, TicketRef(key=old))
    reconcile_tickets(api.state, now=utcnow() + timedelta(seconds=settings.ticket_reconcile_after + 1))
    assert finding_status(api, finding) == "resolved"
    assert reopen_tickets_for(api.state, [finding]).opened == []  # still resolved: nothing to say

    _import_reopens(api, finding)
    summary = reopen_tickets_for(api.state, [finding, uuid.uuid4()])
    [opened] = summary.opened
    new = opened.removeprefix(f"{old} -> ")
    assert new != old and summary.failures == []
    assert old in orjson.dumps(stored_ticket(vendor, connection["base_url"], credentials, TicketRef(key=new))).decode()
    tickets = api.client.get(f"/api/v1/findings/{finding}/tickets", headers=h).json()
    assert [(t["key"], t["done"], t["closed_at"] is None) for t in tickets] == [(old, True, False), (new, False, True)]
    assert reopen_tickets_for(api.state, [finding]).opened == []  # it has an open ticket now
    with api.state.sessions() as s:
        details = [e.detail for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "ticket.create",
                                                                          AuditEvent.integration_id == uuid.UUID(iid)))]
    assert {"finding_id": str(finding), "ticket_key": new, "reopens": old} in details

    # the old ticket, edited while done, no longer resolves the finding: its link is closed
    with transaction(api.state.sessions) as s:
        apply_changes(s, [(TrackerAnswer(organization_of(api, iid), uuid.UUID(iid)),
                           [TicketChange((old,), "Done", True)])], now=utcnow())
    assert finding_status(api, finding) == "open"


def test_a_tracker_that_fails_frees_the_finding_and_says_why_without_secrets(api: Api) -> None:
    h = api.token(role="admin")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    iid, _connection, credentials = work_tracker(api, h, "jira_cloud", f"http://127.0.0.1:{port}")
    finding = open_finding(api, create_scanner(api, h))
    link(api, iid, "SEC-9", finding)
    with transaction(api.state.sessions) as s:
        s.execute(update(TicketLink).values(closed_at=utcnow(), done=True))
    summary = reopen_tickets_for(api.state, [finding])
    [failure] = summary.failures
    assert summary.opened == [] and failure.startswith(f"{iid} SEC-9: ")
    assert not any(value in failure for value in credentials.values())
    with api.state.sessions() as s:  # the claim was given up: the next attempt may open the ticket
        assert [r.ticket_key for r in s.scalars(select(TicketLink))] == ["SEC-9"]
