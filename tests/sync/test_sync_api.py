"""Syncs through the API against the sandbox over loopback, on SQLite and PostgreSQL: Tenable VM's
vulnerability export streamed chunk by chunk into the import pipeline, incremental pulls, vendor-fixed
findings, rate limits, vendor failures (no secret anywhere), and the refusals (409, 422)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from pmap.audit.models import AuditEvent
from pmap.core.db import transaction, utcnow
from pmap.findings.jobs import KIND_SYNC
from pmap.findings.models import Finding, Job
from pmap.integrations.models import Integration
from pmap.jobs.lease import runner_id
from pmap_sandbox.scanners import SANDBOX_VENDORS
from pmap_sandbox.server import SandboxServer
from tests.conftest import Api, VirtualClock, canary, without_actor

from .conftest import integration, start_sync, sync, unique

TVM = "tenable_vm"
#: the Tenable VM sync asks for 500 assets per chunk and the sandbox seeds 4 findings per asset: this many
#: findings make two chunks
TWO_CHUNKS = 2_100


def tvm_credentials(marker: str = "ok") -> dict[str, str]:
    return {"access_key": unique(marker), "secret_key": unique("key")}


def statuses(api: Api, integration_id: str) -> dict[str, int]:
    """How many synced findings of the integration are in each status."""
    with api.state.sessions() as session:
        rows = session.execute(select(Finding.status, func.count()).where(
            Finding.integration_id == uuid.UUID(integration_id), Finding.scope == "sync").group_by(Finding.status))
        return {status: count for status, count in rows}


def details(api: Api, headers: dict[str, str], integration_id: str) -> dict[str, Any]:
    resp = api.client.get(f"/api/v1/integrations/{integration_id}", headers=headers)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


def test_a_first_sync_imports_every_seeded_finding_chunk_by_chunk(api: Api, sandbox: SandboxServer, seed: Any,
                                                                   virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(TVM, TWO_CHUNKS, fixed=[0, 1, 2])
    iid = integration(api, headers, sandbox, TVM, tvm_credentials())
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded", job
    assert job["kind"] == KIND_SYNC
    result = job["result"]
    assert result["parsed"] == TWO_CHUNKS and result["created"] == TWO_CHUNKS
    assert result["kept"] + result["filtered_out"] == TWO_CHUNKS
    assert result["created_resolved"] == 3 and result["resolved"] == 0 and result["unknown_severity"] == 0
    assert result["scope"] == "sync" and result["format"] == "tenable_csv" and result["full"] is True
    assert statuses(api, iid) == {"open": TWO_CHUNKS - 3, "resolved": 3}
    last = details(api, headers, iid)
    assert last["last_sync"]["status"] == "ok" and last["last_sync"]["full"] is False
    assert last["last_sync"]["summary"]["created"] == TWO_CHUNKS
    assert last["last_synced_at"] is not None
    assert virtual_clock.waits, "the export's status was polled with a backoff on the clock"


def test_an_incremental_sync_recreates_nothing_and_resolves_what_the_vendor_fixed(
        api: Api, sandbox: SandboxServer, seed: Any, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(TVM, 40, at=time.time() - 3600)  # seen an hour ago
    iid = integration(api, headers, sandbox, TVM, tvm_credentials())
    first = sync(api, headers, iid)
    assert first["result"]["created"] == 40

    again = sync(api, headers, iid)
    assert again["status"] == "succeeded", again
    assert again["result"]["created"] == 0 and again["result"]["parsed"] == 0, "nothing changed since the last sync"
    assert again["result"]["full"] is False, "an incremental pull is never complete: nothing absent is resolved"
    assert again["result"]["resolved"] == 0

    seed(TVM, 41, fixed=[3, 40])  # 3 fixed on the vendor; 40 is new and already fixed
    changed = sync(api, headers, iid)
    assert changed["status"] == "succeeded", changed
    result = changed["result"]
    assert result["parsed"] == 2, "only what changed since the last sync is pulled: 3 and 40"
    assert result["resolved"] == 1 and result["created"] == 1 and result["created_resolved"] == 1
    assert statuses(api, iid) == {"open": 39, "resolved": 2}

    full = sync(api, headers, iid, full=True)
    assert full["result"]["parsed"] == 41 and full["result"]["created"] == 0 and full["result"]["full"] is True
    assert details(api, headers, iid)["last_sync"]["full"] is True


def test_a_rate_limited_export_is_waited_out_with_the_vendors_retry_after(
        api: Api, sandbox: SandboxServer, seed: Any, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(TVM, 10)
    iid = integration(api, headers, sandbox, TVM, tvm_credentials("ratelimit"))
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded", job
    assert job["result"]["created"] == 10
    assert 1.0 in virtual_clock.waits, "the sandbox's Retry-After: 1 was waited"


def test_a_vendor_failure_fails_the_job_and_last_sync_and_leaves_no_secret_anywhere(
        api: Api, sandbox: SandboxServer, seed: Any, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(TVM, 5)
    secret = canary("S") + "echo"  # the sandbox echoes the received X-ApiKeys in its 401 message
    access = canary("A")
    iid = integration(api, headers, sandbox, TVM, {"access_key": access, "secret_key": secret})
    job = sync(api, headers, iid)
    assert job["status"] == "failed", job
    assert job["error"]["code"] in ("vendor_refused", "upstream_error") and job["error"]["step"] == "auth"
    last = details(api, headers, iid)["last_sync"]
    assert last["status"] == "failed" and last["step"] == "auth"
    assert last["error"]["code"] == job["error"]["code"]
    with api.state.sessions() as session:
        events = [e.detail for e in session.scalars(select(AuditEvent).where(
            AuditEvent.integration_id == uuid.UUID(iid)))]
        rows = [json.dumps({"params": j.params, "result": j.result, "error": j.error, "progress": j.progress})
                for j in session.scalars(select(Job).where(Job.kind == KIND_SYNC))]
    everything = json.dumps([job, last, details(api, headers, iid), events, rows])
    for value in (secret, access):
        assert value not in everything
    assert statuses(api, iid) == {}


def test_the_decrypt_of_a_sync_is_audited_with_purpose_sync(api: Api, sandbox: SandboxServer, seed: Any,
                                                             virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(TVM, 3)
    iid = integration(api, headers, sandbox, TVM, tvm_credentials())
    assert sync(api, headers, iid)["status"] == "succeeded"
    with api.state.sessions() as session:
        events = {(e.action, e.purpose, e.outcome) for e in session.scalars(select(AuditEvent).where(
            AuditEvent.integration_id == uuid.UUID(iid)))}
    assert ("credentials.decrypt", "sync", "success") in events
    assert ("findings.sync", "sync", "success") in events
    with api.state.sessions() as session:  # the job carries ids, never a secret
        params = [j.params for j in session.scalars(select(Job).where(Job.kind == KIND_SYNC))]
    assert [without_actor(p) for p in params] == [{"integration_id": iid, "full": False}]


def test_a_sync_while_one_runs_is_409_naming_the_running_job(api: Api, sandbox: SandboxServer) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, TVM, tvm_credentials())
    now = utcnow()
    with transaction(api.state.sessions) as session:  # a sync this process is running
        running = Job(organization_id=organization_of(api, iid), kind=KIND_SYNC, status="running",
                      params={"integration_id": iid, "full": False}, progress={}, runner=runner_id(), actor="test",
                      created_at=now, updated_at=now, started_at=now)
        session.add(running)
    resp = start_sync(api, headers, iid)
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "sync_running"
    assert str(running.id) in resp.json()["error"]["message"]


def organization_of(api: Api, integration_id: str) -> uuid.UUID:
    with api.state.sessions() as session:
        row = session.get(Integration, uuid.UUID(integration_id))
        assert row is not None
        return row.organization_id


def test_a_disabled_integration_is_409_integration_disabled(api: Api, sandbox: SandboxServer) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, TVM, tvm_credentials(), enabled=False)
    resp = start_sync(api, headers, iid, full=True)
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "integration_disabled"


@pytest.mark.parametrize("vendor", ["nowsecure"])
def test_a_vendor_type_without_a_findings_api_is_422(api: Api, sandbox: SandboxServer, vendor: str) -> None:
    headers = api.token(role="operator")
    creds = {k: unique("ok") for k in SANDBOX_VENDORS[vendor]["valid_credentials"]}
    iid = integration(api, headers, sandbox, vendor, creds)
    resp = start_sync(api, headers, iid)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "operation_not_supported"


def test_a_viewer_may_not_sync(api: Api, sandbox: SandboxServer) -> None:
    iid = integration(api, api.token(role="operator"), sandbox, TVM, tvm_credentials())
    assert start_sync(api, api.token(role="viewer"), iid).status_code == 403


def test_the_catalog_lists_sync_findings_only_where_implemented(api: Api) -> None:
    types = {t["vendor"]: t for t in api.client.get("/api/v1/connector-types", headers=api.token()).json()}
    syncing = sorted(v for v, t in types.items() if "sync_findings" in t["operations"])
    assert syncing == ["acunetix", "black_duck", "burp_dast", "checkmarx_one", "dependency_track",
                       "github_code_scanning", "invicti", "jfrog_xray", "mobsf", "nessus", "qualys_vmdr",
                       "rapid7_insightvm", "semgrep", "snyk", "sonarqube", "tenable_sc", "tenable_vm", "veracode",
                       "zap"]
