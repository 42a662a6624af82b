"""A scheduled rotation of the webhook secret: rotated with the grace window and re-registered on the vendor
where an admin registered it, never on a target moved since; only an admin sets the schedule."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from pmap.audit.models import AuditEvent
from pmap.core.db import transaction, utcnow
from pmap.integrations.models import Integration
from pmap.schedules.models import ScheduledRun
from pmap.schedules.service import KIND_WEBHOOK_ROTATION, run_due
from pmap.webhooks.rotation import scheduled_rotation
from pmap_sandbox.server import SandboxServer

from .conftest import Served, create_integration, unique

VENDOR = "jira_cloud"  # registers through its API (no test delivery), signs with the secret


def _hooks(served: Served, iid: str) -> str:
    return f"/api/v1/integrations/{iid}/webhook"


def _registered(served: Served, sandbox: SandboxServer) -> tuple[str, dict[str, str]]:
    """A Jira Cloud integration whose webhook an admin generated and registered; its id and admin headers."""
    admin = served.token()
    iid = create_integration(served.http, admin, VENDOR, base=sandbox.base_url, marker="admin")
    assert served.http.post(_hooks(served, iid) + "/generate", headers=admin).status_code == 201
    assert served.http.post(_hooks(served, iid) + "/register", headers=admin).status_code == 200
    r = served.http.patch(f"/api/v1/integrations/{iid}", headers=admin, json={"webhook_rotation_schedule": "0 * * * *"})
    assert r.status_code == 200 and r.json()["next_webhook_rotation_at"], r.text
    with transaction(served.state.sessions) as s:  # set two hours ago: the last full hour is due
        s.get_one(Integration, uuid.UUID(iid)).webhook_rotation_schedule_since = utcnow() - timedelta(hours=2)
    return iid, admin


def _rotate_due(served: Served) -> None:
    run_due(served.state.sessions, {KIND_WEBHOOK_ROTATION: scheduled_rotation(served.state, served.state.sessions)})


def _delivered(served: Served, sandbox: SandboxServer, iid: str, secret: str) -> int:
    sent = served.http.post(f"{sandbox.base_url}/_sandbox/deliver/{VENDOR}", json={
        "url": f"{served.base_url}/hooks/{iid}", "secret": secret, "event": "jira:issue_updated",
        "payload": {"webhookEvent": "jira:issue_updated", "n": unique("p")}})
    return int(sent.json()["status"])


def test_a_due_rotation_rotates_with_grace_and_re_registers_where_an_admin_registered(
        served: Served, sandbox: SandboxServer) -> None:
    iid, admin = _registered(served, sandbox)
    old = served.http.post(_hooks(served, iid) + "/reveal", headers=admin).json()["secret"]
    before = served.http.get(_hooks(served, iid), headers=admin).json()
    _rotate_due(served)
    new = served.http.post(_hooks(served, iid) + "/reveal", headers=admin).json()["secret"]
    after = served.http.get(_hooks(served, iid), headers=admin).json()
    assert new != old and after["registered"] and after["registered_at"] > before["registered_at"]
    assert _delivered(served, sandbox, iid, new) == 202
    assert _delivered(served, sandbox, iid, old) == 202  # the grace window: the old secret still verifies
    with served.state.sessions() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.integration_id == uuid.UUID(iid),
                                                    AuditEvent.actor == "system:scheduler")).all()
        [run] = s.scalars(select(ScheduledRun).where(ScheduledRun.integration_id == uuid.UUID(iid))).all()
    assert {e.action for e in events} >= {"webhook.secret.regenerate", "webhook.register"}
    assert all(old not in str(e.detail) and new not in str(e.detail) for e in events)
    assert run.kind == KIND_WEBHOOK_ROTATION and run.skipped is None
    _rotate_due(served)  # the same due time again: nothing more
    assert served.http.post(_hooks(served, iid) + "/reveal", headers=admin).json()["secret"] == new


def test_a_target_moved_since_the_admin_registered_is_rotated_but_not_sent_the_secret(
        served: Served, sandbox: SandboxServer) -> None:
    iid, admin = _registered(served, sandbox)
    operator = served.token(role="operator")
    r = served.http.patch(f"/api/v1/integrations/{iid}", headers=operator,
                          json={"connection": {"base_url": f"{sandbox.base_url}/jira_cloud/elsewhere"},
                                "credentials": {"api_token": unique("admin")}})
    assert r.status_code == 200, r.text
    old = served.http.post(_hooks(served, iid) + "/reveal", headers=admin).json()["secret"]
    _rotate_due(served)
    assert served.http.post(_hooks(served, iid) + "/reveal", headers=admin).json()["secret"] != old
    with served.state.sessions() as s:
        [run] = s.scalars(select(ScheduledRun).where(ScheduledRun.integration_id == uuid.UUID(iid))).all()
        registers = s.scalars(select(AuditEvent).where(AuditEvent.integration_id == uuid.UUID(iid),
                                                       AuditEvent.action == "webhook.register",
                                                       AuditEvent.actor == "system:scheduler")).all()
    assert run.skipped is not None and "not re-registered" in run.skipped and registers == []


def test_only_an_admin_sets_a_rotation_schedule(served: Served, sandbox: SandboxServer) -> None:
    operator = served.token(role="operator")
    iid = create_integration(served.http, operator, VENDOR, base=sandbox.base_url)
    r = served.http.patch(f"/api/v1/integrations/{iid}", headers=operator,
                          json={"webhook_rotation_schedule": "0 3 * * *"})
    assert r.status_code == 403
    assert served.http.patch(f"/api/v1/integrations/{iid}", headers=served.token(),
                             json={"webhook_rotation_schedule": "0 3 * * *"}).status_code == 200
