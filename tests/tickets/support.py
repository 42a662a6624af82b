"""Ticket deliveries for the ticket and webhook processing tests: a tracker integration with its webhook
secret, a finding linked to a ticket, and signed deliveries sent to the receiver."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from fastapi import FastAPI

from pmap.core.db import new_id, transaction, utcnow
from pmap.findings.models import Finding
from pmap.integrations.models import Integration
from pmap.tickets.service import link_ticket
from pmap.webhooks.receiver import runtime
from tests.conftest import Api
from tests.connectors.work.cases import settings_for
from tests.findings.pipeline.helpers import create_integration as create_scanner
from tests.webhooks.conftest import create_integration, signed

VENDOR = {"jira": "jira_cloud", "servicenow": "servicenow", "github": "github_issues",
          "gitlab_token": "gitlab_issues", "azure_devops_basic": "azure_boards"}

#: (scheme, event header, payload, ticket key, status recorded, done)
CASES: list[tuple[str, str | None, dict[str, Any], str, str, bool]] = [
    ("jira", None, {"webhookEvent": "jira:issue_updated", "issue": {"key": "SEC-7", "fields": {"status": {
        "name": "Done", "statusCategory": {"key": "done"}}}}}, "SEC-7", "Done", True),
    ("jira", None, {"webhookEvent": "jira:issue_updated", "issue": {"key": "SEC-8", "fields": {"status": {
        "name": "In Progress", "statusCategory": {"key": "indeterminate"}}}}}, "SEC-8", "In Progress", False),
    ("servicenow", None, {"table": "incident", "sys_id": "a1b2", "number": "INC0010042", "state": "6"},
     "INC0010042", "Resolved", True),  # the code's name, as the ServiceNow connector shows it
    ("github", "issues", {"action": "closed", "issue": {"number": 12, "state": "closed"},
                          "repository": {"full_name": "acme/webapp"}}, "acme/webapp#12", "closed", True),
    ("gitlab_token", "Issue Hook", {"object_kind": "issue", "object_attributes": {"iid": 3, "state": "closed"},
                                    "project": {"path_with_namespace": "acme/webapp"}},
     "acme/webapp#3", "closed", True),
    ("azure_devops_basic", None, {"id": str(uuid.uuid4()), "eventType": "workitem.updated", "resource": {
        "workItemId": 481, "fields": {"System.State": {"oldValue": "Active", "newValue": "Closed"}}}},
     "481", "Closed", True),
]



def tracker(api: Api, scheme: str) -> tuple[dict[str, str], str, str]:
    """An admin's headers, a tracker integration whose deliveries use ``scheme``, and its webhook secret."""
    h = api.token()
    iid = create_integration(api.client, h, VENDOR[scheme])
    api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h)
    return h, iid, api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"]


def organization_of(api: Api, iid: str) -> uuid.UUID:
    """The organization of an integration."""
    with api.state.sessions() as s:
        row = s.get(Integration, uuid.UUID(iid))
        assert row is not None
        return row.organization_id


def open_finding(api: Api, iid: str, status: str = "open") -> uuid.UUID:
    """A finding of integration ``iid`` with ``status``; its id."""
    now = utcnow()
    with transaction(api.state.sessions) as s:
        finding = Finding(id=new_id(), organization_id=organization_of(api, iid), integration_id=uuid.UUID(iid),
                          format="sarif", scope="default", fingerprint=uuid.uuid4().hex, title="SQL injection",
                          mapped_severity="high", severity="high", severity_source="vendor", status=status,
                          first_seen=now, last_seen=now)
        s.add(finding)
    return finding.id


def link(api: Api, iid: str, key: str, finding_id: uuid.UUID | None) -> None:
    """Link ticket ``key`` of integration ``iid`` to a finding, as opening the ticket does."""
    with transaction(api.state.sessions) as s:
        link_ticket(s, organization_id=organization_of(api, iid), integration_id=uuid.UUID(iid), ticket_key=key,
                    finding_id=finding_id)


def finding_status(api: Api, finding_id: uuid.UUID) -> str:
    """A finding's status now."""
    with api.state.sessions() as s:
        finding = s.get(Finding, finding_id)
        assert finding is not None
        return str(finding.status)


def send(api: Api, iid: str, scheme: str, secret: str, doc: dict[str, Any], event: str | None = None,
         delivery_id: str | None = None) -> int:
    """Deliver ``doc`` signed with ``secret``; the receiver's status code."""
    body = json.dumps(doc).encode()
    headers = signed(scheme, body, secret, event=event, delivery_id=delivery_id)
    return api.client.post(f"/hooks/{iid}", content=body, headers=headers).status_code


def process_now(api: Api, ids: list[uuid.UUID]) -> None:
    """Process these deliveries at once, as one batch of the app's processor."""
    runtime(cast(FastAPI, api.client.app).state).processor.process(ids)


def ticket_events(api: Api, h: dict[str, str], iid: str) -> list[dict[str, Any]]:
    """The integration's ticket events, newest first."""
    r = api.client.get(f"/api/v1/integrations/{iid}/webhook/ticket-events", headers=h)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def work_tracker(api: Api, h: dict[str, str], vendor: str, base_url: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A tracker integration of ``vendor`` on the sandbox at ``base_url`` (credentials that spell no sandbox
    scenario marker by chance); its id, connection and credentials."""
    connection, credentials = settings_for(vendor, base_url)
    r = api.client.post("/api/v1/integrations", json={
        "name": f"{vendor}-{uuid.uuid4().hex[:8]}", "vendor": vendor, "connection": connection,
        "credentials": credentials}, headers=h)
    assert r.status_code == 201, r.text
    return r.json()["id"], connection, credentials


def scanner_and_jira(api: Api, h: dict[str, str], base_url: str) -> tuple[str, str]:
    """A scanner integration the findings belong to (never called) and a Jira Cloud tracker; their ids."""
    return create_scanner(api, h), work_tracker(api, h, "jira_cloud", base_url)[0]
