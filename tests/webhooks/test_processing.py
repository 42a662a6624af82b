"""Processing of stored deliveries: ticket status changes, linked findings, failures and redelivery."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pmap.core.db import new_id, transaction, utcnow
from pmap.findings.models import Finding
from pmap.webhooks import clock, processing
from pmap.webhooks.models import WebhookDelivery
from tests.conftest import Api

from .conftest import create_integration, deliveries, settle, signed, unique

VENDOR = {"jira": "jira_cloud", "servicenow": "servicenow", "github": "github_issues",
          "gitlab_token": "gitlab_issues", "azure_devops_basic": "azure_boards"}


def _setup(api: Api, scheme: str) -> tuple[dict[str, str], str, str]:
    h = api.token()
    iid = create_integration(api.client, h, VENDOR[scheme])
    api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h)
    return h, iid, api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"]


def _finding(api: Api, iid: str, status: str = "open") -> uuid.UUID:
    now = utcnow()
    with transaction(api.state.sessions) as s:
        org = s.get(__import__("pmap.integrations.models", fromlist=["Integration"]).Integration,
                    uuid.UUID(iid)).organization_id
        finding = Finding(id=new_id(), organization_id=org, integration_id=uuid.UUID(iid), format="sarif",
                          scope="default", fingerprint=uuid.uuid4().hex, title="SQL injection", mapped_severity="high",
                          severity="high", severity_source="vendor", status=status, first_seen=now, last_seen=now)
        s.add(finding)
    return finding.id


def _link(api: Api, iid: str, key: str, finding_id: uuid.UUID | None) -> None:
    with transaction(api.state.sessions) as s:
        org = s.get(__import__("pmap.integrations.models", fromlist=["Integration"]).Integration,
                    uuid.UUID(iid)).organization_id
        processing.link_ticket(s, organization_id=org, integration_id=uuid.UUID(iid), ticket_key=key,
                               finding_id=finding_id)


def _status(api: Api, finding_id: uuid.UUID) -> str:
    with api.state.sessions() as s:
        return str(s.get(Finding, finding_id).status)


def _send(api: Api, iid: str, scheme: str, secret: str, doc: dict[str, Any], event: str | None = None,
          delivery_id: str | None = None) -> int:
    body = json.dumps(doc).encode()
    headers = signed(scheme, body, secret, event=event, delivery_id=delivery_id)
    return api.client.post(f"/hooks/{iid}", content=body, headers=headers).status_code


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
                                    "project": {"path_with_namespace": "acme/webapp"}}, "acme/webapp#3", "closed", True),
    ("azure_devops_basic", None, {"id": str(uuid.uuid4()), "eventType": "workitem.updated", "resource": {
        "workItemId": 481, "fields": {"System.State": {"oldValue": "Active", "newValue": "Closed"}}}},
     "481", "Closed", True),
]


@pytest.mark.parametrize("scheme,event,doc,key,state,done", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_ticket_status_changes_are_recorded_and_resolve_linked_findings(
        api: Api, scheme: str, event: str | None, doc: dict[str, Any], key: str, state: str, done: bool) -> None:
    h, iid, secret = _setup(api, scheme)
    finding = _finding(api, iid)
    _link(api, iid, key, finding)
    assert _send(api, iid, scheme, secret, doc, event) == 202
    settle(api)
    [item] = deliveries(api.client, h, iid)
    assert item["outcome"] == "processed" and item["processed_at"]
    events = api.client.get(f"/api/v1/integrations/{iid}/webhook/ticket-events", headers=h).json()["items"]
    assert [(e["ticket_key"], e["status"], e["done"], e["finding_id"]) for e in events] == [
        (key, state, done, str(finding))]
    assert events[0]["finding_updated"] is done
    assert _status(api, finding) == ("resolved" if done else "open")


def test_unlinked_tickets_are_recorded_and_other_events_need_no_processing(api: Api) -> None:
    h, iid, secret = _setup(api, "github")
    assert _send(api, iid, "github", secret, {"action": "closed", "issue": {"number": 99, "state": "closed"},
                                             "repository": {"full_name": "acme/webapp"}}, "issues") == 202
    assert _send(api, iid, "github", secret, {"zen": "Keep it logically awesome."}, "ping") == 202
    settle(api)
    [event] = api.client.get(f"/api/v1/integrations/{iid}/webhook/ticket-events", headers=h).json()["items"]
    assert event["ticket_key"] == "acme/webapp#99" and event["finding_id"] is None and event["done"] is True
    assert {i["event"]: i["outcome"] for i in deliveries(api.client, h, iid)} == {"issues": "processed",
                                                                                   "ping": "processed"}


def test_a_suppressed_finding_keeps_its_status(api: Api) -> None:
    _h, iid, secret = _setup(api, "jira")
    finding = _finding(api, iid, status="suppressed")
    _link(api, iid, "SEC-1", finding)
    _send(api, iid, "jira", secret, CASES[0][2] | {"issue": {"key": "SEC-1", "fields": CASES[0][2]["issue"]["fields"]}})
    settle(api)
    assert _status(api, finding) == "suppressed"


def test_failed_processing_is_recorded_and_a_redelivery_is_processed(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    h, iid, secret = _setup(api, "github")
    finding = _finding(api, iid)
    _link(api, iid, "acme/webapp#5", finding)
    real, calls = processing.apply_changes, []

    def flaky(session: Any, items: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return real(session, items)

    monkeypatch.setattr(processing, "apply_changes", flaky)
    doc = {"action": "closed", "issue": {"number": 5, "state": "closed"}, "repository": {"full_name": "acme/webapp"}}
    did = unique("gh")
    assert _send(api, iid, "github", secret, doc, "issues", did) == 202
    settle(api)
    [failed] = deliveries(api.client, h, iid)
    assert failed["outcome"] == "failed" and "RuntimeError" in failed["reason"] and _status(api, finding) == "open"
    # GitHub's redelivery: the same bytes, the same delivery id
    assert _send(api, iid, "github", secret, doc, "issues", did) == 202
    settle(api)
    [done] = deliveries(api.client, h, iid)
    assert done["outcome"] == "processed" and done["attempts"] == 2 and done["id"] == failed["id"]
    assert _status(api, finding) == "resolved"
    # once processed, the same delivery is only acknowledged
    assert _send(api, iid, "github", secret, doc, "issues", did) == 200
    settle(api)
    assert len(api.client.get(f"/api/v1/integrations/{iid}/webhook/ticket-events", headers=h).json()["items"]) == 1


def test_an_unreadable_body_fails_processing_and_a_good_redelivery_recovers(api: Api) -> None:
    h, iid, secret = _setup(api, "jira")
    did = unique("jira")
    body = b"this is not json"
    r = api.client.post(f"/hooks/{iid}", content=body, headers=signed("jira", body, secret, delivery_id=did))
    assert r.status_code == 202
    # stored durably before the answer: a fresh session sees it at once
    with api.state.sessions() as s:
        assert s.scalar(select(WebhookDelivery.body).where(WebhookDelivery.delivery_id == did)) == body
    settle(api)
    assert deliveries(api.client, h, iid)[0]["reason"] == "body is not valid JSON"
    # other bytes under the same (unsigned) id header are another delivery: de-duplication keys on the
    # signed bytes, so the good one is processed and the unreadable one stays failed
    assert _send(api, iid, "jira", secret, CASES[0][2], delivery_id=did) == 202
    settle(api)
    good, bad = deliveries(api.client, h, iid)
    assert good["outcome"] == "processed" and good["reason"] is None and good["delivery_id"] == did
    assert bad["outcome"] == "failed"


def test_deliveries_left_accepted_by_a_dead_process_are_swept(api: Api, travel: Callable[[float], None]) -> None:
    h, iid, secret = _setup(api, "servicenow")
    doc = {"table": "incident", "number": "INC0000001", "state": "7"}
    with transaction(api.state.sessions) as s:
        org = s.get(__import__("pmap.integrations.models", fromlist=["Integration"]).Integration,
                    uuid.UUID(iid)).organization_id
        s.add(WebhookDelivery(organization_id=org, integration_id=uuid.UUID(iid), dedupe_key="left-behind",
                              delivery_id="left-behind", outcome="accepted", verification="signed",
                              secret_slot="current", content_type="application/json", body=json.dumps(doc).encode(),
                              size=10, created_at=clock.now() - timedelta(minutes=5)))
    assert _send(api, iid, "servicenow", secret, {"table": "incident", "number": "INC0000002", "state": "2"}) == 202
    settle(api)
    settle(api)  # the sweep's re-queued work
    assert {i["delivery_id"]: i["outcome"] for i in deliveries(api.client, h, iid)}["left-behind"] == "processed"
    keys = {e["ticket_key"] for e in api.client.get(f"/api/v1/integrations/{iid}/webhook/ticket-events",
                                                    headers=h).json()["items"]}
    assert keys == {"INC0000001", "INC0000002"}


def test_one_failing_delivery_does_not_undo_the_others_of_its_batch(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from pmap.webhooks.processor import Processor
    from pmap.webhooks.receiver import runtime

    h, iid, secret = _setup(api, "jira")
    monkeypatch.setattr(Processor, "submit", lambda self, ident: None)  # keep both for one batch
    for key in ("SEC-1", "SEC-2"):
        doc = {"webhookEvent": "jira:issue_updated", "issue": {"key": key, "fields": {"status": {"name": "Done"}}}}
        assert _send(api, iid, "jira", secret, doc) == 202
    real = processing.apply_changes

    def half_done(session: Any, items: Any) -> int:
        real(session, items)  # writes the ticket events, then fails if SEC-1 is among them
        if any(changes[0].keys[0] == "SEC-1" for _, changes in items):
            raise RuntimeError("boom")
        return 0

    monkeypatch.setattr(processing, "apply_changes", half_done)
    ids = [uuid.UUID(i["id"]) for i in deliveries(api.client, h, iid)]
    runtime(api.client.app.state).processor.process(ids)
    outcomes = {i["outcome"] for i in deliveries(api.client, h, iid)}
    assert outcomes == {"failed", "processed"}
    events = api.client.get(f"/api/v1/integrations/{iid}/webhook/ticket-events", headers=h).json()["items"]
    assert [e["ticket_key"] for e in events] == ["SEC-2"]  # SEC-1's write was rolled back to its savepoint


def test_control_characters_in_a_payload_cannot_fail_its_batch(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from pmap.webhooks.processor import Processor
    from pmap.webhooks.receiver import runtime

    h, iid, secret = _setup(api, "azure_devops_basic")
    monkeypatch.setattr(Processor, "submit", lambda self, ident: None)  # keep both for one batch
    for item, event in ((77, "workitem.updated\u0000"), (78, "workitem.updated")):
        doc = {"id": str(uuid.uuid4()), "eventType": event, "resource": {
            "workItemId": item, "fields": {"System.State": {"oldValue": "Active", "newValue": "Closed\u0000"}}}}
        assert _send(api, iid, "azure_devops_basic", secret, doc) == 202
    ids = [uuid.UUID(i["id"]) for i in deliveries(api.client, h, iid)]
    runtime(api.client.app.state).processor.process(ids)
    rows = deliveries(api.client, h, iid)
    assert {r["outcome"] for r in rows} == {"processed"} and {r["event"] for r in rows} == {"workitem.updated"}
    events = api.client.get(f"/api/v1/integrations/{iid}/webhook/ticket-events", headers=h).json()["items"]
    assert sorted((e["ticket_key"], e["status"]) for e in events) == [("77", "Closed"), ("78", "Closed")]
