"""Reconcile: a ticket closed on the tracker without a webhook is asked of the tracker over real HTTP (the
work-tracker sandbox), and its finding resolved through the webhooks' status processing; a tracker that
does not answer fails only its own tickets, recorded scrubbed."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from pmap.app import queue_reconciles
from pmap.audit.models import AuditEvent
from pmap.cli.main import app as pmapctl
from pmap.connectors.base import TicketRef
from pmap.core.db import transaction, utcnow
from pmap.core.settings import Settings, get_settings
from pmap.tickets.models import TicketLink
from pmap.tickets.reconcile import reconcile_tickets
from pmap_sandbox.server import SandboxServer, build_app
from tests.conftest import Api
from tests.connectors.work.sandbox_ops import close_ticket
from tests.findings.pipeline.helpers import create_integration as create_scanner
from tests.findings.pipeline.helpers import wait_job
from tests.tickets.support import finding_status, link, open_finding, ticket_events, work_tracker

TRACKERS = ["jira_cloud", "servicenow"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(build_app()) as server:
        yield server


def _later(settings: Settings) -> datetime:
    """A moment when every ticket opened now is due for a reconcile."""
    return utcnow() + timedelta(seconds=settings.ticket_reconcile_after + 1)


def _ticket(api: Api, h: dict[str, str], sandbox: SandboxServer, vendor: str,
            ) -> tuple[str, uuid.UUID, TicketRef, dict[str, str]]:
    """A tracker of ``vendor``, an open finding and the ticket opened for it, closed on the tracker's side
    (no webhook); the tracker's id, the finding, the ticket and the tracker's credentials."""
    iid, connection, credentials = work_tracker(api, h, vendor, sandbox.base_url)
    finding = open_finding(api, create_scanner(api, h))
    r = api.client.post(f"/api/v1/findings/{finding}/tickets", json={"integration_id": iid}, headers=h)
    assert r.status_code == 201, r.text
    ref = TicketRef(key=r.json()["key"])
    close_ticket(vendor, connection["base_url"], credentials, ref)
    return iid, finding, ref, credentials


@pytest.mark.parametrize("vendor", TRACKERS)
def test_a_ticket_closed_without_a_webhook_is_reconciled_and_its_finding_resolved(
        api: Api, sandbox: SandboxServer, settings: Settings, vendor: str) -> None:
    h = api.token(role="admin")
    iid, finding, ref, _creds = _ticket(api, h, sandbox, vendor)
    assert reconcile_tickets(api.state).checked == 0  # news of it is fresh: nothing is asked yet

    summary = reconcile_tickets(api.state, now=_later(settings))
    assert (summary.checked, summary.changed, summary.closed, summary.findings_resolved, summary.failed) == (
        1, 1, 1, 1, 0), summary
    assert finding_status(api, finding) == "resolved"
    [ticket] = api.client.get(f"/api/v1/findings/{finding}/tickets", headers=h).json()
    assert ticket["key"] == ref.key and ticket["done"] is True and ticket["closed_at"]
    [event] = ticket_events(api, h, iid)  # recorded as a delivery's change would be, without a delivery
    assert (event["ticket_key"], event["done"], event["finding_updated"], event["delivery"]) == (
        ref.key, True, True, None)
    with api.state.sessions() as s:
        purposes = list(s.scalars(select(AuditEvent.purpose).where(AuditEvent.integration_id == uuid.UUID(iid))))
    assert purposes.count("ticket_reconcile") == 1
    assert reconcile_tickets(api.state, now=_later(settings) + timedelta(days=1)).checked == 0  # closed: done with


def test_an_open_ticket_is_asked_again_only_after_the_setting(api: Api, sandbox: SandboxServer,
                                                              settings: Settings) -> None:
    h = api.token(role="admin")
    iid, _connection, _credentials = work_tracker(api, h, "jira_cloud", sandbox.base_url)
    finding = open_finding(api, create_scanner(api, h))
    assert api.client.post(f"/api/v1/findings/{finding}/tickets", json={"integration_id": iid},
                           headers=h).status_code == 201
    later = _later(settings)
    summary = reconcile_tickets(api.state, now=later)
    assert (summary.checked, summary.changed, summary.failed) == (1, 0, 0)
    assert reconcile_tickets(api.state, now=later + timedelta(seconds=1)).checked == 0  # it was just seen
    assert finding_status(api, finding) == "open" and ticket_events(api, h, iid) == []
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"enabled": False}, headers=h)
    assert r.status_code == 200, r.text
    assert reconcile_tickets(api.state, now=later + timedelta(days=1)).checked == 0  # a disabled tracker is not called


def _closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def test_an_unreachable_tracker_leaves_the_others_reconciled(api: Api, sandbox: SandboxServer,
                                                              settings: Settings) -> None:
    h = api.token(role="admin")
    tickets = [_ticket(api, h, sandbox, vendor) for vendor in TRACKERS]
    gone, _connection, secrets = work_tracker(api, h, "jira_cloud", f"http://127.0.0.1:{_closed_port()}")
    stranded = open_finding(api, create_scanner(api, h))
    link(api, gone, "SEC-404", stranded)

    summary = reconcile_tickets(api.state, now=_later(settings))
    assert (summary.checked, summary.closed, summary.findings_resolved, summary.failed) == (2, 2, 2, 1), summary
    assert [finding_status(api, finding) for _, finding, _, _ in tickets] == ["resolved", "resolved"]
    assert finding_status(api, stranded) == "open"
    [failure] = summary.failures
    assert failure.startswith(f"{gone} SEC-404: ") and "connection" in failure
    with api.state.sessions() as s:
        row = s.scalars(select(TicketLink).where(TicketLink.integration_id == uuid.UUID(gone))).one()
    assert row.reconcile_error and row.closed_at is None
    [shown] = api.client.get(f"/api/v1/findings/{stranded}/tickets", headers=h).json()
    assert shown["reconcile_error"] == row.reconcile_error
    assert not any(value in f"{failure} {row.reconcile_error}" for value in secrets.values())
    # still due: the next run asks again
    assert reconcile_tickets(api.state, now=_later(settings)).failed == 1


def test_pmapctl_tickets_reconcile_prints_a_summary(api: Api, sandbox: SandboxServer, settings: Settings,
                                                    platform_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    h = api.token(role="admin")
    _iid, finding, _ref, _creds = _ticket(api, h, sandbox, "servicenow")
    with transaction(api.state.sessions) as s:  # an hour and more without news
        s.execute(update(TicketLink).values(status_seen_at=utcnow() - timedelta(
            seconds=settings.ticket_reconcile_after + 1)))
    for name, value in {"PMAP_DATABASE_URL": str(settings.database_url), "PMAP_PLATFORM_KEY": platform_key,
                        "PMAP_DATA_DIR": str(settings.data_dir)}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(pmapctl, ["tickets", "reconcile"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "checked 1 ticket(s): 1 changed, 1 closed, 1 finding(s) resolved, 0 failed" in result.output
    assert finding_status(api, finding) == "resolved"
    with api.state.sessions() as s:
        actors = set(s.scalars(select(AuditEvent.actor).where(AuditEvent.purpose == "ticket_reconcile")))
    assert len(actors) == 1 and actors.pop().startswith("cli:pmapctl:")


def test_the_scheduled_reconcile_is_a_ticket_reconcile_job_per_tracker(make_api: Callable[..., Api],
                                                                       sandbox: SandboxServer) -> None:
    api = make_api(ticket_reconcile_after=1)
    h = api.token(role="admin")
    iid, finding, ref, _creds = _ticket(api, h, sandbox, "jira_cloud")
    assert queue_reconciles(api.state, api.app.state.jobs) == 0  # news of it is fresh: nothing is due yet
    time.sleep(1.2)
    assert queue_reconciles(api.state, api.app.state.jobs) == 1
    [job] = [j for j in api.client.get("/api/v1/jobs", headers=h).json()["items"] if j["kind"] == "ticket_reconcile"]
    assert job["integration_id"] == iid
    done = wait_job(api, job["id"], h)
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    assert {k: done["result"][k] for k in ("checked", "closed", "findings_resolved", "failed")} == {
        "checked": 1, "closed": 1, "findings_resolved": 1, "failed": 0}
    assert finding_status(api, finding) == "resolved"
    assert queue_reconciles(api.state, api.app.state.jobs) == 0  # its ticket is closed: nothing left to ask
    with api.state.sessions() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.integration_id == uuid.UUID(iid),
                                                                  AuditEvent.purpose == "ticket_reconcile")))
    assert sorted(actions) == ["credentials.decrypt", "ticket.reconcile"]
