"""Processing of stored deliveries: failures recorded, redeliveries processed again, deliveries left by a dead
process swept, one failing delivery leaving the rest of its batch (the ticket changes are the tickets domain's:
tests/tickets/test_status_changes.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pmap.core.db import transaction
from pmap.tickets import processing
from pmap.webhooks import clock, receiver
from pmap.webhooks.models import WebhookDelivery
from pmap.webhooks.processor import Processor
from tests.conftest import Api
from tests.tickets.support import (
    CASES,
    finding_status,
    link,
    open_finding,
    organization_of,
    process_now,
    send,
    ticket_events,
    tracker,
)

from .conftest import deliveries, settle, signed, unique


def test_failed_processing_is_recorded_and_a_redelivery_is_processed(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    h, iid, secret = tracker(api, "github")
    finding = open_finding(api, iid)
    link(api, iid, "acme/webapp#5", finding)
    real, calls = processing.apply_changes, []

    def flaky(session: Any, items: Any, **kw: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return real(session, items, **kw)

    monkeypatch.setattr(processing, "apply_changes", flaky)
    doc = {"action": "closed", "issue": {"number": 5, "state": "closed"}, "repository": {"full_name": "acme/webapp"}}
    did = unique("gh")
    assert send(api, iid, "github", secret, doc, "issues", did) == 202
    settle(api)
    [failed] = deliveries(api.client, h, iid)
    assert failed["outcome"] == "failed" and "RuntimeError" in failed["reason"]
    assert finding_status(api, finding) == "open"
    # GitHub's redelivery: the same bytes, the same delivery id
    assert send(api, iid, "github", secret, doc, "issues", did) == 202
    settle(api)
    [done] = deliveries(api.client, h, iid)
    assert done["outcome"] == "processed" and done["attempts"] == 2 and done["id"] == failed["id"]
    assert finding_status(api, finding) == "resolved"
    # once processed, the same delivery is only acknowledged
    assert send(api, iid, "github", secret, doc, "issues", did) == 200
    settle(api)
    assert len(ticket_events(api, h, iid)) == 1


def test_an_unreadable_body_fails_processing_and_a_good_redelivery_recovers(api: Api) -> None:
    h, iid, secret = tracker(api, "jira")
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
    assert send(api, iid, "jira", secret, CASES[0][2], delivery_id=did) == 202
    settle(api)
    good, bad = deliveries(api.client, h, iid)
    assert good["outcome"] == "processed" and good["reason"] is None and good["delivery_id"] == did
    assert bad["outcome"] == "failed"


def test_deliveries_left_accepted_by_a_dead_process_are_swept(api: Api, travel: Callable[[float], None]) -> None:
    h, iid, secret = tracker(api, "servicenow")
    doc = {"table": "incident", "number": "INC0000001", "state": "7"}
    with transaction(api.state.sessions) as s:
        s.add(WebhookDelivery(organization_id=organization_of(api, iid), integration_id=uuid.UUID(iid),
                              dedupe_key="left-behind", delivery_id="left-behind", outcome="accepted",
                              verification="signed", secret_slot="current", content_type="application/json",
                              body=json.dumps(doc).encode(), size=10, created_at=clock.now() - timedelta(minutes=5)))
    assert send(api, iid, "servicenow", secret, {"table": "incident", "number": "INC0000002", "state": "2"}) == 202
    settle(api)
    settle(api)  # the sweep's re-queued work
    assert {i["delivery_id"]: i["outcome"] for i in deliveries(api.client, h, iid)}["left-behind"] == "processed"
    keys = {e["ticket_key"] for e in ticket_events(api, h, iid)}
    assert keys == {"INC0000001", "INC0000002"}


def test_without_any_new_delivery_the_scheduler_has_left_deliveries_processed(api: Api) -> None:
    from pmap.app import compose_scheduler

    h, iid, secret = tracker(api, "servicenow")
    doc = {"table": "incident", "number": "INC0000003", "state": "7"}
    with transaction(api.state.sessions) as s:  # stored by a process that died before processing it
        s.add(WebhookDelivery(organization_id=organization_of(api, iid), integration_id=uuid.UUID(iid),
                              dedupe_key="orphan", delivery_id="orphan", outcome="accepted",
                              verification="signed", secret_slot="current", content_type="application/json",
                              body=json.dumps(doc).encode(), size=10, created_at=clock.now() - timedelta(minutes=2)))
    app_state = api.app.state
    scheduler = compose_scheduler(api.state, app_state.jobs,
                                  wake_webhooks=lambda: receiver.runtime(app_state).processor.wake())
    scheduler.start()  # its first pass runs the periodic tasks at once
    try:
        deadline = time.monotonic() + 20
        while deliveries(api.client, h, iid)[0]["outcome"] != "processed" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.shutdown()
    assert deliveries(api.client, h, iid)[0]["outcome"] == "processed"
    assert {e["ticket_key"] for e in ticket_events(api, h, iid)} == {"INC0000003"}


def test_one_failing_delivery_does_not_undo_the_others_of_its_batch(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    h, iid, secret = tracker(api, "jira")
    monkeypatch.setattr(Processor, "submit", lambda self, ident: None)  # keep both for one batch
    for key in ("SEC-1", "SEC-2"):
        doc = {"webhookEvent": "jira:issue_updated", "issue": {"key": key, "fields": {"status": {"name": "Done"}}}}
        assert send(api, iid, "jira", secret, doc) == 202
    real = processing.apply_changes

    def half_done(session: Any, items: Any, **kw: Any) -> int:
        real(session, items, **kw)  # writes the ticket events, then fails if SEC-1 is among them
        if any(changes[0].keys[0] == "SEC-1" for _, changes in items):
            raise RuntimeError("boom")
        return 0

    monkeypatch.setattr(processing, "apply_changes", half_done)
    ids = [uuid.UUID(i["id"]) for i in deliveries(api.client, h, iid)]
    process_now(api, ids)
    outcomes = {i["outcome"] for i in deliveries(api.client, h, iid)}
    assert outcomes == {"failed", "processed"}
    events = ticket_events(api, h, iid)
    assert [e["ticket_key"] for e in events] == ["SEC-2"]  # SEC-1's write was rolled back to its savepoint
