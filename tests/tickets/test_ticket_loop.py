"""A finding becomes a ticket on a tracker; the tracker's signed "done" webhook resolves the finding."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from pmap.audit.models import AuditEvent
from pmap.core.db import new_id, transaction, utcnow
from pmap.findings.models import Finding
from pmap_sandbox.server import SandboxServer, build_app
from tests.conftest import Api, canary
from tests.tickets.support import organization_of
from tests.webhooks.conftest import settle, signed


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(build_app()) as server:
        yield server


def _finding(api: Api, iid: str) -> uuid.UUID:
    now = utcnow()
    org = organization_of(api, iid)
    with transaction(api.state.sessions) as s:
        finding = Finding(id=new_id(), organization_id=org, integration_id=uuid.UUID(iid), format="nessus",
                          scope="default", fingerprint=uuid.uuid4().hex, title="OpenSSL 3.0.x < 3.0.7 (CVE-2022-3602)",
                          cve_ids=["CVE-2022-3602"], host="10.0.0.5", port=443, mapped_severity="high",
                          severity="high", severity_source="vendor", status="open", first_seen=now, last_seen=now)
        s.add(finding)
    return finding.id


def _scanner_and_jira(api: Api, sandbox: SandboxServer, h: dict[str, str]) -> tuple[str, str, str]:
    """A Nessus and a Jira Cloud integration on the sandbox; their ids and the Jira token."""
    token = canary("jira")
    scanner = api.client.post("/api/v1/integrations", json={
        "name": "nessus", "vendor": "nessus", "connection": {"base_url": f"{sandbox.base_url}/nessus"},
        "credentials": {"access_key": "1" * 32, "secret_key": "2" * 32}}, headers=h).json()["id"]
    jira = api.client.post("/api/v1/integrations", json={
        "name": "jira", "vendor": "jira_cloud",
        "connection": {"base_url": f"{sandbox.base_url}/jira_cloud", "project_key": "SEC"},
        "credentials": {"email": "sec@acme.test", "api_token": token}}, headers=h).json()["id"]
    return scanner, jira, token


def test_ticket_for_a_finding_then_done_webhook_resolves_it(api: Api, sandbox: SandboxServer) -> None:
    h = api.token(role="admin")
    scanner, jira, token = _scanner_and_jira(api, sandbox, h)
    finding_id = _finding(api, scanner)

    r = api.client.post(f"/api/v1/findings/{finding_id}/tickets", json={"integration_id": jira}, headers=h)
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    assert key.startswith("SEC-") and r.json()["done"] is False and token not in r.text

    # the tracker reports the issue done, signed with the integration's webhook secret
    api.client.post(f"/api/v1/integrations/{jira}/webhook/generate", headers=h)
    secret = api.client.post(f"/api/v1/integrations/{jira}/webhook/reveal", headers=h).json()["secret"]
    body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"key": key, "fields": {"status": {
        "name": "Done", "statusCategory": {"key": "done"}}}}}).encode()
    r = api.client.post(f"/hooks/{jira}", content=body, headers=signed("jira", body, secret))
    assert r.status_code in (200, 202)
    settle(api)
    with api.state.sessions() as s:
        assert s.get_one(Finding, finding_id).status == "resolved"
        purposes = set(s.scalars(select(AuditEvent.purpose).where(AuditEvent.integration_id == uuid.UUID(jira))))
    assert "ticket_creation" in purposes


def test_only_trackers_open_tickets_and_other_orgs_see_404(api: Api, sandbox: SandboxServer) -> None:
    h, other = api.token("acme"), api.token("globex")
    scanner = api.client.post("/api/v1/integrations", json={
        "name": "nessus", "vendor": "nessus", "connection": {"base_url": f"{sandbox.base_url}/nessus"},
        "credentials": {"access_key": "1" * 32, "secret_key": "2" * 32}}, headers=h).json()["id"]
    finding_id = _finding(api, scanner)
    r = api.client.post(f"/api/v1/findings/{finding_id}/tickets", json={"integration_id": scanner}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "integration_id"
    assert r.json()["error"]["code"] == "operation_not_supported"
    r = api.client.post(f"/api/v1/findings/{finding_id}/tickets", json={"integration_id": scanner}, headers=other)
    assert r.status_code == 404
    viewer = api.token("acme", "viewer")
    r = api.client.post(f"/api/v1/findings/{finding_id}/tickets", json={"integration_id": scanner}, headers=viewer)
    assert r.status_code == 403


def test_a_ticket_the_tracker_refuses_for_the_callers_input_is_a_422(api: Api, sandbox: SandboxServer) -> None:
    h = api.token(role="admin")
    scanner, jira, token = _scanner_and_jira(api, sandbox, h)
    finding_id = _finding(api, scanner)
    r = api.client.post(f"/api/v1/findings/{finding_id}/tickets", json={"integration_id": jira, "project": "NOPE"},
                        headers=h)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["message"].startswith("the tracker refused the ticket") and error["fields"][0]["field"] == "project"
    assert token not in r.text
    # the refusal is audited like a success would be, and names no secret
    events = api.client.get("/api/v1/audit-events", params={"action": "ticket.create"}, headers=h).json()["items"]
    assert [(e["outcome"], e["integration_id"], e["detail"]["finding_id"]) for e in events] == [
        ("failure", jira, str(finding_id))]
    assert token not in str(events)
