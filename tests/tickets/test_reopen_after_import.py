"""An import that reopens a finding whose ticket was closed opens a new ticket, by itself: after the answer
of an import answered at once, after the job of a background import."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from pmap.app import create_app
from pmap.connectors.base import TicketRef
from pmap.core.db import utcnow
from pmap.core.settings import Settings
from pmap.tickets.reconcile import reconcile_tickets
from pmap_sandbox.server import SandboxServer, build_app
from tests.conftest import Api
from tests.connectors.work.sandbox_ops import close_ticket
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, upload, wait_job
from tests.tickets.support import work_tracker


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(build_app()) as server:
        yield server


@pytest.fixture(params=["answer", "job"])
def importing(request: pytest.FixtureRequest, settings: Settings) -> Iterator[tuple[Api, str]]:
    """An app whose imports are answered at once, or run as background jobs (a threshold below the file)."""
    threshold = 1 << 20 if request.param == "answer" else 0
    with TestClient(create_app(settings.model_copy(update={"import_background_bytes": threshold})),
                    raise_server_exceptions=False) as client:
        yield Api(client), request.param


def _import(api: Api, h: dict[str, str], scanner: str, how: str) -> dict:
    r = upload(api, scanner, nessus_report([{"plugin": 101, "name": "OpenSSL", "cve": "CVE-2022-3602"}]), h)
    if how == "job":
        assert r.status_code == 202, r.text
        job = wait_job(api, r.json()["job"]["id"], h)
        assert job["status"] == "succeeded", job
        return dict(job["result"])
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_reopened_finding_with_a_closed_ticket_gets_a_new_one_by_itself(
        importing: tuple[Api, str], sandbox: SandboxServer) -> None:
    api, how = importing
    h = api.token(role="admin")
    scanner = create_integration(api, h)
    tracker, connection, credentials = work_tracker(api, h, "jira_cloud", sandbox.base_url)
    assert _import(api, h, scanner, how)["created"] == 1
    [finding] = findings(api, h, integration_id=scanner)
    old = api.client.post(f"/api/v1/findings/{finding['id']}/tickets", headers=h,
                          json={"integration_id": tracker}).json()["key"]
    close_ticket("jira_cloud", connection["base_url"], credentials, TicketRef(key=old))
    # the tracker's "done", learned without a webhook
    reconcile_tickets(api.state, now=utcnow() + timedelta(seconds=api.state.settings.ticket_reconcile_after + 1))
    assert api.client.get(f"/api/v1/findings/{finding['id']}", headers=h).json()["status"] == "resolved"

    summary = _import(api, h, scanner, how)  # the scanner sees it again
    assert summary["reopened"] == 1
    tickets = api.client.get(f"/api/v1/findings/{finding['id']}/tickets", headers=h).json()
    assert [(t["key"] == old, t["closed_at"] is None) for t in tickets] == [(True, False), (False, True)]
    assert all(t["integration_id"] == tracker for t in tickets)
