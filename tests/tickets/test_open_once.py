"""Opening a ticket is idempotent: one open ticket per finding per tracker, enforced by the database,
answered 201 the first time and 200 after (the tracker not called again), races included; a finding shows
its tickets."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pmap.connectors.base import OperationContext, TicketRef, TicketRequest
from pmap.core.db import transaction, utcnow
from pmap.integrations.service import vendor_type
from pmap.tickets import service
from pmap.tickets.models import TicketLink
from pmap_sandbox.server import SandboxServer, build_app
from tests.conftest import Api
from tests.tickets.support import open_finding, organization_of, scanner_and_jira


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(build_app()) as server:
        yield server


class CountedTracker:
    """Jira Cloud's create_ticket, counted; ``hold`` keeps each call until it is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.hold = threading.Event()
        self.hold.set()
        impl: Any = vendor_type("jira_cloud").implementation
        real = type(impl).create_ticket

        def create_ticket(this: object, ctx: OperationContext, ticket: TicketRequest) -> TicketRef:
            self.calls += 1
            assert self.hold.wait(10)
            return real(this, ctx, ticket)

        monkeypatch.setattr(type(impl), "create_ticket", create_ticket)


def _links(api: Api, finding: uuid.UUID) -> list[TicketLink]:
    with api.state.sessions() as s:
        return list(s.scalars(select(TicketLink).where(TicketLink.finding_id == finding)))


def test_asking_again_answers_the_open_ticket_without_calling_the_tracker(
        api: Api, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = CountedTracker(monkeypatch)
    h = api.token(role="operator")
    scanner, jira = scanner_and_jira(api, api.token(role="admin"), sandbox.base_url)
    finding = open_finding(api, scanner)
    first = api.client.post(f"/api/v1/findings/{finding}/tickets", json={"integration_id": jira}, headers=h)
    again = api.client.post(f"/api/v1/findings/{finding}/tickets", json={"integration_id": jira}, headers=h)
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json() == first.json() and first.json()["key"].startswith("SEC-")
    assert tracker.calls == 1 and len(_links(api, finding)) == 1


def test_two_racing_requests_open_one_vendor_ticket(api: Api, sandbox: SandboxServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = CountedTracker(monkeypatch)
    tracker.hold.clear()
    looked = threading.Event()
    real_take_over = service._take_over

    def take_over(session: Any, link: TicketLink) -> bool:
        looked.set()  # the second request found the first's claim: the tracker may answer now
        return real_take_over(session, link)

    monkeypatch.setattr(service, "_take_over", take_over)

    def release() -> None:
        looked.wait(10)
        tracker.hold.set()

    threading.Thread(target=release, daemon=True).start()
    h = api.token(role="operator")
    scanner, jira = scanner_and_jira(api, api.token(role="admin"), sandbox.base_url)
    finding = open_finding(api, scanner)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: api.client.post(
            f"/api/v1/findings/{finding}/tickets", json={"integration_id": jira}, headers=h), range(2)))
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    assert answers[0].json()["key"] == answers[1].json()["key"]
    assert tracker.calls == 1 and looked.is_set()
    assert [link.ticket_key for link in _links(api, finding)] == [answers[0].json()["key"]]


def test_the_database_holds_one_open_link_per_finding_and_tracker(api: Api) -> None:
    # the integrations are only stored: nothing is sent to their address
    scanner, jira = scanner_and_jira(api, api.token(role="admin"), "http://127.0.0.1:9")
    finding = open_finding(api, scanner)
    org = organization_of(api, jira)
    base = {"organization_id": org, "integration_id": uuid.UUID(jira), "finding_id": finding}
    with transaction(api.state.sessions) as s:
        s.add(TicketLink(**base, ticket_key="SEC-1", closed_at=utcnow()))  # closed: another may open
        s.add(TicketLink(**base, ticket_key="SEC-2"))
    with pytest.raises(IntegrityError), transaction(api.state.sessions) as s:
        s.add(TicketLink(**base, ticket_key="SEC-3"))


def test_a_refused_ticket_frees_the_finding_for_the_next_request(api: Api, sandbox: SandboxServer) -> None:
    h = api.token(role="admin")
    scanner, jira = scanner_and_jira(api, h, sandbox.base_url)
    finding = open_finding(api, scanner)
    refused = api.client.post(f"/api/v1/findings/{finding}/tickets", json={"integration_id": jira,
                                                                            "project": "NOPE"}, headers=h)
    assert refused.status_code == 422 and _links(api, finding) == []
    r = api.client.post(f"/api/v1/findings/{finding}/tickets", json={"integration_id": jira}, headers=h)
    assert r.status_code == 201, r.text


def test_an_abandoned_claim_is_taken_over_and_a_fresh_one_is_waited_for(
        api: Api, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    h = api.token(role="admin")
    scanner, jira = scanner_and_jira(api, h, sandbox.base_url)
    finding = open_finding(api, scanner)
    org = organization_of(api, jira)
    with transaction(api.state.sessions) as s:  # a claim whose process died mid-call
        s.add(TicketLink(organization_id=org, integration_id=uuid.UUID(jira), finding_id=finding, ticket_key=None,
                         created_at=utcnow() - timedelta(seconds=service.CLAIM_ABANDONED_SECONDS + 1)))
    r = api.client.post(f"/api/v1/findings/{finding}/tickets", json={"integration_id": jira}, headers=h)
    assert r.status_code == 201, r.text
    assert [link.ticket_key for link in _links(api, finding)] == [r.json()["key"]]

    other = open_finding(api, scanner)
    with transaction(api.state.sessions) as s:  # a claim still being worked on: waited for, then a 409
        s.add(TicketLink(organization_id=org, integration_id=uuid.UUID(jira), finding_id=other, ticket_key=None))
    monkeypatch.setattr(service.clock, "sleep", lambda _s: None)
    monkeypatch.setattr(service.clock, "monotonic", iter(range(0, 10**6, 10)).__next__)
    r = api.client.post(f"/api/v1/findings/{other}/tickets", json={"integration_id": jira}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_a_finding_shows_its_tickets(api: Api, sandbox: SandboxServer) -> None:
    h = api.token(role="admin")
    scanner, jira = scanner_and_jira(api, h, sandbox.base_url)
    finding = open_finding(api, scanner)
    assert api.client.get(f"/api/v1/findings/{finding}", headers=h).json()["tickets"] == []
    opened = api.client.post(f"/api/v1/findings/{finding}/tickets", json={"integration_id": jira}, headers=h).json()
    shown = api.client.get(f"/api/v1/findings/{finding}", headers=api.token(role="viewer"))
    assert shown.status_code == 200
    [ticket] = shown.json()["tickets"]
    assert ticket == {"integration_id": jira, "vendor": "jira_cloud", "key": opened["key"], "url": opened["url"],
                      "status": opened["status"], "done": False, "opened_at": opened["opened_at"], "closed_at": None,
                      "reconcile_error": None}
    assert api.client.get(f"/api/v1/findings/{finding}/tickets", headers=h).json() == [ticket]
    other = api.token("globex")
    assert api.client.get(f"/api/v1/findings/{finding}/tickets", headers=other).status_code == 404
    assert api.client.get(f"/api/v1/findings/{finding}", headers=other).status_code == 404
