"""Ticket status changes from work-tracker deliveries: recorded as ticket events, resolving linked open
findings, vendor text cleaned before it is stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pmap.webhooks.processor import Processor
from tests.conftest import Api
from tests.webhooks.conftest import deliveries, settle

from .support import CASES, finding_status, link, open_finding, process_now, send, ticket_events, tracker


@pytest.mark.parametrize("scheme,event,doc,key,state,done", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_ticket_status_changes_are_recorded_and_resolve_linked_findings(
        api: Api, scheme: str, event: str | None, doc: dict[str, Any], key: str, state: str, done: bool) -> None:
    h, iid, secret = tracker(api, scheme)
    finding = open_finding(api, iid)
    link(api, iid, key, finding)
    assert send(api, iid, scheme, secret, doc, event) == 202
    settle(api)
    [item] = deliveries(api.client, h, iid)
    assert item["outcome"] == "processed" and item["processed_at"]
    events = ticket_events(api, h, iid)
    assert [(e["ticket_key"], e["status"], e["done"], e["finding_id"]) for e in events] == [
        (key, state, done, str(finding))]
    assert events[0]["finding_updated"] is done
    assert finding_status(api, finding) == ("resolved" if done else "open")


def test_unlinked_tickets_are_recorded_and_other_events_need_no_processing(api: Api) -> None:
    h, iid, secret = tracker(api, "github")
    assert send(api, iid, "github", secret, {"action": "closed", "issue": {"number": 99, "state": "closed"},
                                             "repository": {"full_name": "acme/webapp"}}, "issues") == 202
    assert send(api, iid, "github", secret, {"zen": "Keep it logically awesome."}, "ping") == 202
    settle(api)
    [event] = ticket_events(api, h, iid)
    assert event["ticket_key"] == "acme/webapp#99" and event["finding_id"] is None and event["done"] is True
    assert {i["event"]: i["outcome"] for i in deliveries(api.client, h, iid)} == {"issues": "processed",
                                                                                   "ping": "processed"}


def test_a_suppressed_finding_keeps_its_status(api: Api) -> None:
    _h, iid, secret = tracker(api, "jira")
    finding = open_finding(api, iid, status="suppressed")
    link(api, iid, "SEC-1", finding)
    send(api, iid, "jira", secret, CASES[0][2] | {"issue": {"key": "SEC-1", "fields": CASES[0][2]["issue"]["fields"]}})
    settle(api)
    assert finding_status(api, finding) == "suppressed"


def test_control_characters_in_a_payload_cannot_fail_its_batch(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    h, iid, secret = tracker(api, "azure_devops_basic")
    monkeypatch.setattr(Processor, "submit", lambda self, ident: None)  # keep both for one batch
    for item, event in ((77, "workitem.updated\u0000"), (78, "workitem.updated")):
        doc = {"id": str(uuid.uuid4()), "eventType": event, "resource": {
            "workItemId": item, "fields": {"System.State": {"oldValue": "Active", "newValue": "Closed\u0000"}}}}
        assert send(api, iid, "azure_devops_basic", secret, doc) == 202
    ids = [uuid.UUID(i["id"]) for i in deliveries(api.client, h, iid)]
    process_now(api, ids)
    rows = deliveries(api.client, h, iid)
    assert {r["outcome"] for r in rows} == {"processed"} and {r["event"] for r in rows} == {"workitem.updated"}
    events = ticket_events(api, h, iid)
    assert sorted((e["ticket_key"], e["status"]) for e in events) == [("77", "Closed"), ("78", "Closed")]
