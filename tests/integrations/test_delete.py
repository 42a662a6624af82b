"""Deleting an integration: admin-only, a dry run that counts what goes with it, and writes racing a delete."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from functools import partial

import httpx

from tests.conftest import Api

TENABLE = {"vendor": "tenable_vm", "connection": {}, "credentials": {"access_key": "a" * 20, "secret_key": "b" * 20}}
GITHUB = {"vendor": "github_issues", "connection": {}, "credentials": {"token": "ghp_" + "a" * 36}}
RACES = 60


def _race(first: Callable[[], httpx.Response], second: Callable[[], httpx.Response]) -> tuple[int, int]:
    """Start both calls at once; their status codes."""
    barrier, out = threading.Barrier(2), {}

    def run(key: str, call: Callable[[], httpx.Response]) -> None:
        barrier.wait()
        out[key] = call().status_code

    threads = [threading.Thread(target=run, args=("a", first)), threading.Thread(target=run, args=("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out["a"], out["b"]


def test_a_patch_racing_a_delete_is_never_a_500(api: Api) -> None:
    h = api.token()
    seen: Counter[tuple[str, int]] = Counter()
    for i in range(RACES):
        iid = api.client.post("/api/v1/integrations", json={"name": f"r{i}", **TENABLE}, headers=h).json()["id"]
        patched, deleted = _race(
            partial(api.client.patch, f"/api/v1/integrations/{iid}", json={"name": f"r{i}x", "enabled": False},
                    headers=h),
            partial(api.client.delete, f"/api/v1/integrations/{iid}", headers=h))
        seen[("patch", patched)] += 1
        seen[("delete", deleted)] += 1
    assert {code for (_, code) in seen} <= {200, 204, 404, 409}, seen
    assert seen[("delete", 204)] == RACES  # the delete always wins or goes after the patch


def test_other_writes_racing_a_delete_are_never_a_500(api: Api) -> None:
    """Every write to an integration row that may race a delete answers 404 or 409 once the row is
    gone: a second delete, a webhook secret generated, a connection test's stamp."""
    h = api.token()
    seen: Counter[tuple[str, int]] = Counter()
    writes = {
        "delete": lambda iid: api.client.delete(f"/api/v1/integrations/{iid}", headers=h),
        "generate": lambda iid: api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h),
        "regenerate": lambda iid: api.client.post(f"/api/v1/integrations/{iid}/webhook/regenerate",
                                                  json={"grace_seconds": 0}, headers=h),
    }
    for i in range(RACES):
        kind = list(writes)[i % len(writes)]
        iid = api.client.post("/api/v1/integrations", json={"name": f"w{i}", **GITHUB}, headers=h).json()["id"]
        other, deleted = _race(partial(writes[kind], iid),
                               partial(api.client.delete, f"/api/v1/integrations/{iid}", headers=h))
        seen[(kind, other)] += 1
        seen[("delete", deleted)] += 1
    assert {code for (_, code) in seen} <= {200, 201, 204, 404, 409}, seen
    # two deletes of one integration: one deletes (and is audited), the other finds nothing
    deletes = api.client.get("/api/v1/audit-events", params={"action": "integration.delete", "limit": 200},
                             headers=h).json()["items"]
    assert len(deletes) == RACES


def _seed_dependents(api: Api, iid: str, h: dict[str, str]) -> None:
    """Three findings and one import through the API; ticket links, a ticket event, deliveries, a scan launch,
    a scheduled run and a job written directly (their own paths need a vendor)."""
    import uuid

    from pmap.core.db import transaction, utcnow
    from pmap.findings.models import Job
    from pmap.integrations.models import Integration
    from pmap.scans.models import ScanLaunch
    from pmap.schedules.models import ScheduledRun
    from pmap.tickets.models import TicketEvent, TicketLink
    from pmap.webhooks.models import WebhookDelivery
    from tests.findings.pipeline.helpers import nessus_report, upload

    three = [{"plugin": n, "host": "10.0.0.1"} for n in (1, 2, 3)]
    assert upload(api, iid, nessus_report(three), h).status_code == 200
    with transaction(api.state.sessions) as s:
        row = s.get(Integration, uuid.UUID(iid))
        assert row is not None
        org, ref = row.organization_id, {"organization_id": row.organization_id, "integration_id": row.id}
        s.add_all([TicketLink(**ref, ticket_key="SEC-1"), TicketLink(**ref, ticket_key="SEC-2"),
                   TicketEvent(**ref, ticket_key="SEC-1", status="Done", done=True),
                   WebhookDelivery(**ref, outcome="processed", verification="signed"),
                   WebhookDelivery(**ref, outcome="rejected", verification="failed"),
                   ScanLaunch(**ref, vendor_scan_id="42", actor="token:x"),
                   ScheduledRun(**ref, kind="sync", due_at=utcnow()),
                   Job(organization_id=org, kind="import", status="succeeded", runner="h:1", actor="token:x",
                       params={"integration_id": iid, "path": "/nonexistent"}, progress={})])


def _dependents(api: Api, iid: str) -> dict[str, int]:
    import uuid

    from sqlalchemy import func, select

    from pmap.findings.models import Finding, ImportRecord, Job
    from pmap.scans.models import ScanLaunch
    from pmap.schedules.models import ScheduledRun
    from pmap.tickets.models import TicketEvent, TicketLink
    from pmap.webhooks.models import WebhookDelivery

    key = uuid.UUID(iid)
    with api.state.sessions() as s:
        counts = {name: s.scalar(select(func.count()).select_from(model).where(model.integration_id == key)) or 0
                  for name, model in (("findings", Finding), ("imports", ImportRecord), ("ticket_links", TicketLink),
                                      ("ticket_events", TicketEvent), ("webhook_deliveries", WebhookDelivery),
                                      ("scan_launches", ScanLaunch), ("scheduled_runs", ScheduledRun))}
        counts["jobs"] = sum(1 for p in s.scalars(select(Job.params)) if p.get("integration_id") == iid)
    return counts


SEEDED = {"findings": 3, "imports": 1, "ticket_links": 2, "ticket_events": 1, "webhook_deliveries": 2,
          "scan_launches": 1, "scheduled_runs": 1, "jobs": 1}
NOTHING = dict.fromkeys(SEEDED, 0)


def test_only_an_admin_deletes_an_integration_and_refusals_are_audited(api: Api) -> None:
    admin, operator, viewer = api.token(role="admin"), api.token(role="operator"), api.token(role="viewer")
    iid = api.client.post("/api/v1/integrations", json={"name": "tio", **TENABLE}, headers=operator).json()["id"]
    for who in (operator, viewer):
        for params in ({}, {"dry_run": "true"}):
            r = api.client.delete(f"/api/v1/integrations/{iid}", params=params, headers=who)
            assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=viewer).status_code == 200
    denied = api.client.get("/api/v1/audit-events", params={"action": "access.denied"}, headers=admin).json()["items"]
    assert len(denied) == 4 and {e["detail"]["needs"] for e in denied} == {"admin"}
    assert {e["detail"]["path"] for e in denied} == {f"/api/v1/integrations/{iid}"}


def test_a_dry_run_counts_what_would_go_and_removes_nothing(api: Api) -> None:
    h = api.token()
    iid = api.client.post("/api/v1/integrations", json={"name": "doomed", **TENABLE}, headers=h).json()["id"]
    other = api.client.post("/api/v1/integrations", json={"name": "kept", **TENABLE}, headers=h).json()["id"]
    _seed_dependents(api, iid, h)
    _seed_dependents(api, other, h)
    r = api.client.delete(f"/api/v1/integrations/{iid}", params={"dry_run": "true"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"dry_run": True, "would_delete": SEEDED}
    assert _dependents(api, iid) == SEEDED
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=h).status_code == 200
    events = api.client.get("/api/v1/audit-events", params={"action": "integration.delete"}, headers=h).json()
    assert events["items"] == []
    # another organization's admin learns nothing, not even that it exists
    theirs = api.token("globex", "admin")
    r = api.client.delete(f"/api/v1/integrations/{iid}", params={"dry_run": "true"}, headers=theirs)
    assert r.status_code == 404
    assert api.client.delete(f"/api/v1/integrations/{iid}", params={"dry_run": "maybe"}, headers=h).status_code == 422

    assert api.client.delete(f"/api/v1/integrations/{iid}", headers=h).status_code == 204
    assert _dependents(api, iid) == NOTHING and _dependents(api, other) == SEEDED
    events = api.client.get("/api/v1/audit-events", params={"action": "integration.delete"}, headers=h).json()["items"]
    assert [e["detail"] for e in events] == [{"vendor": "tenable_vm", "name": "doomed", "deleted": SEEDED}]
    assert api.client.delete(f"/api/v1/integrations/{iid}", params={"dry_run": "true"}, headers=h).status_code == 404


def test_an_import_racing_a_delete_is_never_a_500(api: Api) -> None:
    """Findings written for an integration deleted meanwhile fail their foreign key: a 409, nothing written."""
    from tests.findings.pipeline.helpers import nessus_report, upload

    h = api.token()
    report = nessus_report([{"plugin": n, "host": "10.0.0.1"} for n in range(20)])
    seen: Counter[tuple[str, int]] = Counter()
    for i in range(RACES // 2):
        iid = api.client.post("/api/v1/integrations", json={"name": f"i{i}", **TENABLE}, headers=h).json()["id"]
        imported, deleted = _race(partial(upload, api, iid, report, h),
                                  partial(api.client.delete, f"/api/v1/integrations/{iid}", headers=h))
        seen[("import", imported)] += 1
        seen[("delete", deleted)] += 1
    assert {code for (_, code) in seen} <= {200, 204, 404, 409}, seen
    assert _dependents(api, iid) == NOTHING


def test_an_integrity_failure_that_is_not_a_vanished_parent_stays_a_fault(api: Api, monkeypatch) -> None:
    from sqlalchemy.exc import IntegrityError

    from pmap.integrations import service

    def broken(*_a, **_kw):
        raise IntegrityError("INSERT ...", {}, Exception("NOT NULL constraint failed: integrations.name"))

    monkeypatch.setattr(service, "list_page", broken)
    r = api.client.get("/api/v1/integrations", headers=api.token())
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
