"""Scan launches through the API against the sandbox over loopback, on SQLite and PostgreSQL: Nessus Manager,
Tenable VM, ZAP, Qualys VMDR (and the other launching vendors') scans launched, polled with backoff on the clock,
fetched and imported as their own stream; Nessus Professional's 412 and a Qualys account that may not launch
recorded as a 422; a vendor failure mid-poll (no secret anywhere); the audited scan_launch decrypt; the refusals
(409, 422)."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid

import pytest
from sqlalchemy import func, select

from pmap.audit.models import AuditEvent
from pmap.core.db import transaction, utcnow
from pmap.findings.jobs import KIND_SCAN
from pmap.findings.models import Finding, Job
from pmap.integrations.models import Integration
from pmap.jobs.lease import runner_id
from pmap.scans.models import ScanLaunch
from pmap_sandbox.server import SandboxServer
from tests.conftest import Api, VirtualClock, canary, without_actor

from .conftest import integration, launch, launches, start_launch, unique

#: vendor -> (credentials of an account that can launch, the scan to launch, findings its report holds)
LAUNCHABLE: dict[str, tuple[dict[str, str], str, int]] = {
    "nessus": ({"access_key": "manager", "secret_key": "key"}, "5", 2),
    "tenable_vm": ({"access_key": "ok", "secret_key": "key"}, "17", 3),
    "tenable_sc": ({"access_key": "ok", "secret_key": "key"}, "4", 2),
    "zap": ({"api_key": "ok"}, "https://shop.example.test/", 2),
    "invicti": ({"user_id": "ok", "api_token": "key"}, "5e4b8f0a-0000-4000-8000-00000000000a", 2),
    "rapid7_insightvm": ({"username": "ok", "password": "key"}, "3", 2),
    "acunetix": ({"api_key": "ok"}, "64496c9e-b340-4227-90d4-ac43e78d4a0d", 2),
    "burp_dast": ({"api_key": "ok"}, "2", 2),
    "qualys_vmdr": ({"username": "ok", "password": "key"}, "1234:10.0.0.11-10.0.0.12", 2),
}


def credentials(vendor: str, prefix: str = "", secret: str | None = None) -> dict[str, str]:
    """Unique credentials of a launching account of ``vendor``; ``prefix`` adds a sandbox marker to the first
    value, ``secret`` replaces the second (or the only) one."""
    values = {k: unique(v) for k, v in LAUNCHABLE[vendor][0].items()}
    first = next(iter(values))
    values[first] = prefix + values[first]
    if secret is not None:
        values[list(values)[-1] if len(values) > 1 else first] = secret if len(values) > 1 else prefix + secret
    return values


def scan_findings(api: Api, integration_id: str) -> dict[str, int]:
    """How many findings of the integration are in each scope."""
    with api.state.sessions() as session:
        rows = session.execute(select(Finding.scope, func.count()).where(
            Finding.integration_id == uuid.UUID(integration_id)).group_by(Finding.scope))
        return {scope: count for scope, count in rows}


@pytest.mark.parametrize("vendor", sorted(LAUNCHABLE))
def test_a_launch_runs_to_completion_and_imports_its_findings_as_the_scans_own_stream(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock, vendor: str) -> None:
    headers = api.token(role="operator")
    _, scan_id, count = LAUNCHABLE[vendor]
    iid = integration(api, headers, sandbox, vendor, credentials(vendor))
    job = launch(api, headers, iid, scan_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["kind"] == KIND_SCAN
    result = job["result"]
    assert result["parsed"] == count and result["created"] == count and result["scope"] == f"scan:{scan_id}"
    assert scan_findings(api, iid) == {f"scan:{scan_id}": count}
    assert job["progress"]["phase"] == "done"
    assert 30.0 in virtual_clock.waits and 60.0 in virtual_clock.waits, \
        "the status was polled every PMAP_SCAN_POLL_SECONDS at first, then backed off"
    [listed] = launches(api, headers, iid)
    assert listed["state"] == "completed" and listed["vendor_scan_id"] == scan_id
    assert listed["vendor_run_ref"] and listed["job_id"] == job["id"]
    assert listed["summary"]["created"] == count and listed["error"] is None and listed["finished_at"]
    assert listed["vendor_status"], "the vendor's own last word on the scan is kept"

    again = launch(api, headers, iid, scan_id)  # the same scan again: its own earlier findings are updated
    assert again["status"] == "succeeded", again
    assert again["result"]["created"] == 0 and again["result"]["updated"] == count
    assert [x["state"] for x in launches(api, headers, iid)] == ["completed", "completed"]


def test_nessus_professional_answers_412_so_the_launch_is_422_and_recorded_failed(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, "nessus", {"access_key": unique("pro"), "secret_key": unique("key")})
    job = launch(api, headers, iid, "5")
    assert job["status"] == "failed", job
    error = job["error"]
    assert error["code"] == "scan_launch_unavailable" and error["step"] == "launch"
    assert "no scan API" in error["message"] and "412" not in error["code"]
    [listed] = launches(api, headers, iid)
    assert listed["state"] == "failed" and listed["error"]["code"] == "scan_launch_unavailable"
    assert listed["error"]["step"] == "launch" and listed["vendor_run_ref"] is None
    assert scan_findings(api, iid) == {}



#: vendor -> (the sandbox marker of an account or license the vendor refuses a launch, words the refusal names)
REFUSED: dict[str, tuple[str, str]] = {
    "acunetix": ("nolicense-", "license does not allow"),
    "burp_dast": ("noperm-", "may not start scans"),
}


@pytest.mark.parametrize("vendor", sorted(REFUSED))
def test_a_launch_the_vendor_refuses_is_422_scan_launch_unavailable_naming_why(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock, vendor: str) -> None:
    headers = api.token(role="operator")
    marker, why = REFUSED[vendor]
    creds = credentials(vendor, prefix=marker)
    iid = integration(api, headers, sandbox, vendor, creds)
    job = launch(api, headers, iid, LAUNCHABLE[vendor][1])
    assert job["status"] == "failed", job
    error = job["error"]
    assert error["code"] == "scan_launch_unavailable" and error["step"] == "launch", error
    assert why in error["message"] and error["vendor_step"] == "permission"
    [listed] = launches(api, headers, iid)
    assert listed["state"] == "failed" and listed["error"]["code"] == "scan_launch_unavailable"
    assert listed["vendor_run_ref"] is None
    assert scan_findings(api, iid) == {}
    assert not any(value in json.dumps([job, listed]) for value in creds.values())


@pytest.mark.parametrize(("marker", "said"), [
    pytest.param("nolaunch", "CODE 1901", id="role-may-not-launch"),
    pytest.param("scanlimit", "CODE 1960", id="concurrency-409"),
])
def test_a_qualys_account_that_may_not_launch_is_422_scan_launch_unavailable_naming_why(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock, marker: str, said: str) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, "qualys_vmdr", credentials("qualys_vmdr", prefix=f"{marker}-"))
    job = launch(api, headers, iid, LAUNCHABLE["qualys_vmdr"][1])
    assert job["status"] == "failed", job
    error = job["error"]
    assert error["code"] == "scan_launch_unavailable" and error["step"] == "launch", error
    assert said in error["message"] and "Qualys" in error["message"]
    [listed] = launches(api, headers, iid)
    assert listed["state"] == "failed" and listed["error"]["code"] == "scan_launch_unavailable"
    assert listed["vendor_run_ref"] is None
    assert scan_findings(api, iid) == {}


def test_a_qualys_launch_on_an_asset_group_imports_its_hosts_and_lists_the_scan_reference(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, "qualys_vmdr", credentials("qualys_vmdr"))
    job = launch(api, headers, iid, "1234:ag=77")
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["created"] == 2 and job["result"]["scope"] == "scan:1234:ag=77"
    one = launch(api, headers, iid, "1234:10.0.0.12")  # one host of the group: its own stream
    assert one["status"] == "succeeded" and one["result"]["created"] == 1, one
    assert scan_findings(api, iid) == {"scan:1234:ag=77": 2, "scan:1234:10.0.0.12": 1}
    listed = launches(api, headers, iid)
    assert [x["vendor_scan_id"] for x in listed] == ["1234:10.0.0.12", "1234:ag=77"]
    assert all(re.fullmatch(r"scan/\d+\.\d+", x["vendor_run_ref"]) for x in listed), listed
    assert listed[0]["vendor_status"] == "Qualys state: Finished"

@pytest.mark.parametrize("vendor", sorted(LAUNCHABLE))
def test_a_vendor_failure_mid_poll_fails_the_job_with_its_step_and_leaves_no_secret_anywhere(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock, vendor: str) -> None:
    headers = api.token(role="operator")
    secret = canary("S")
    creds = credentials(vendor, prefix="pollfail-", secret=secret)  # the vendor echoes the keys in its refusal
    iid = integration(api, headers, sandbox, vendor, creds)
    job = launch(api, headers, iid, LAUNCHABLE[vendor][1])
    assert job["status"] == "failed", job
    assert job["error"]["step"] == "poll" and job["error"]["vendor_step"] == "auth"
    assert job["error"]["code"] == "vendor_refused"
    [listed] = launches(api, headers, iid)
    assert listed["state"] == "failed" and listed["error"]["step"] == "poll" and listed["vendor_run_ref"]
    with api.state.sessions() as session:
        events = [(e.action, e.purpose, e.detail) for e in session.scalars(select(AuditEvent).where(
            AuditEvent.integration_id == uuid.UUID(iid)))]
        rows = [json.dumps({"params": j.params, "result": j.result, "error": j.error, "progress": j.progress})
                for j in session.scalars(select(Job).where(Job.kind == KIND_SCAN))]
        stored = [json.dumps({"error": x.error, "status": x.vendor_status, "ref": x.vendor_run_ref})
                  for x in session.scalars(select(ScanLaunch))]
    everything = json.dumps([job, listed, events, rows, stored], default=str)
    assert secret in json.dumps(creds)
    for value in creds.values():
        assert value not in everything
    basic = base64.b64encode(":".join(creds.values()).encode()).decode()  # a Basic header the vendor echoed
    assert basic[:24] not in everything
    assert scan_findings(api, iid) == {}


def test_the_decrypt_of_a_launch_is_audited_with_purpose_scan_launch_and_the_job_carries_ids_only(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, "nessus", credentials("nessus"))
    assert launch(api, headers, iid, "5")["status"] == "succeeded"
    deadline = time.monotonic() + 10
    while True:  # the runner audits the job just after it marks it finished
        with api.state.sessions() as session:
            events = {(e.action, e.purpose, e.outcome) for e in session.scalars(select(AuditEvent).where(
                AuditEvent.integration_id == uuid.UUID(iid)))}
        if ("scan.launch", "scan_launch", "success") in events or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    with api.state.sessions() as session:
        params = [j.params for j in session.scalars(select(Job).where(Job.kind == KIND_SCAN))]
        [row] = session.scalars(select(ScanLaunch)).all()
    assert ("credentials.decrypt", "scan_launch", "success") in events
    assert ("scan.launch", "scan_launch", "success") in events
    assert [without_actor(p) for p in params] == [{"integration_id": iid, "launch_id": str(row.id)}]


def organization_of(api: Api, integration_id: str) -> uuid.UUID:
    with api.state.sessions() as session:
        row = session.get(Integration, uuid.UUID(integration_id))
        assert row is not None
        return row.organization_id


def test_a_launch_of_a_scan_already_running_is_409_naming_the_job(api: Api, sandbox: SandboxServer) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, "nessus", credentials("nessus"))
    org, now, launch_id = organization_of(api, iid), utcnow(), uuid.uuid4()
    with transaction(api.state.sessions) as session:  # a launch of scan 5 this process is running
        running = Job(organization_id=org, kind=KIND_SCAN, status="running",
                      params={"integration_id": iid, "launch_id": str(launch_id)}, progress={}, runner=runner_id(),
                      actor="test", created_at=now, updated_at=now, started_at=now)
        session.add(running)
        session.add(ScanLaunch(id=launch_id, organization_id=org, integration_id=uuid.UUID(iid), vendor_scan_id="5",
                               state="running", actor="test", created_at=now, updated_at=now))
    resp = start_launch(api, headers, iid, "5")
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "scan_running"
    assert str(running.id) in resp.json()["error"]["message"]
    assert [x["state"] for x in launches(api, headers, iid)] == ["running"], "the refused launch left no row"


def test_a_disabled_integration_is_409_integration_disabled(api: Api, sandbox: SandboxServer) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, "nessus", credentials("nessus"), enabled=False)
    resp = start_launch(api, headers, iid, "5")
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "integration_disabled"
    assert launches(api, headers, iid) == []


@pytest.mark.parametrize("vendor", ["snyk", "sonarqube"])
def test_a_vendor_type_that_cannot_launch_is_422_operation_not_supported(api: Api, sandbox: SandboxServer,
                                                                        vendor: str) -> None:
    from pmap_sandbox.scanners import SANDBOX_VENDORS

    headers = api.token(role="operator")
    creds = {k: unique("ok") for k in SANDBOX_VENDORS[vendor]["valid_credentials"]}
    iid = integration(api, headers, sandbox, vendor, creds)
    resp = start_launch(api, headers, iid, "1")
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "operation_not_supported"


def test_a_viewer_lists_launches_but_may_not_launch(api: Api, sandbox: SandboxServer) -> None:
    iid = integration(api, api.token(role="operator"), sandbox, "nessus", credentials("nessus"))
    viewer = api.token(role="viewer")
    assert start_launch(api, viewer, iid, "5").status_code == 403
    assert launches(api, viewer, iid) == []
    assert api.client.get(f"/api/v1/integrations/{iid}/scans", headers=api.token(org="other")).status_code == 404


def test_the_catalog_lists_launch_scan_only_where_a_launch_completes(api: Api) -> None:
    types = {t["vendor"]: t for t in api.client.get("/api/v1/connector-types", headers=api.token()).json()}
    launching = sorted(v for v, t in types.items() if "launch_scan" in t["operations"])
    assert launching == sorted(LAUNCHABLE)
    for vendor in launching:
        assert {"scan_status", "fetch_findings"} <= set(types[vendor]["operations"])




def test_each_vendor_scan_is_its_own_stream(api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, "zap", credentials("zap"))
    cart, shop = "https://shop.example.test/cart", "https://shop.example.test/"
    assert launch(api, headers, iid, cart)["result"]["created"] == 1
    whole = launch(api, headers, iid, shop)
    assert whole["status"] == "succeeded", whole["error"]
    assert whole["result"]["created"] == 2 and whole["result"]["resolved"] == 0, \
        "the cart alert seen again under the whole site is that scan's own finding; the cart scan's stays open"
    assert scan_findings(api, iid) == {f"scan:{cart}": 1, f"scan:{shop}": 2}
    assert [x["vendor_scan_id"] for x in launches(api, headers, iid)] == [shop, cart], "newest first"


@pytest.mark.parametrize(("vendor", "scan_id"), [
    pytest.param("nessus", "../server/properties", id="nessus-path"),
    pytest.param("tenable_vm", "17/../../session", id="tenable_vm-path"),
    pytest.param("zap", "file:///etc/passwd", id="zap-not-http"),
    pytest.param("invicti", "../account/license", id="invicti-path"),
    pytest.param("acunetix", "../me", id="acunetix-path"),
    pytest.param("burp_dast", "2 } } mutation", id="burp_dast-not-a-site"),
    pytest.param("qualys_vmdr", "1234", id="qualys-no-targets"),
    pytest.param("qualys_vmdr", "1234:10.0.0.1&option_id=1", id="qualys-form-injection"),
    pytest.param("qualys_vmdr", "profile:ag=77", id="qualys-option-not-a-number"),
])
def test_a_scan_id_that_is_not_the_vendors_kind_of_id_fails_the_launch_before_any_call(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock, vendor: str, scan_id: str) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, vendor, credentials(vendor))
    job = launch(api, headers, iid, scan_id)
    assert job["status"] == "failed" and job["error"]["code"] == "validation_failed"
    assert job["error"]["step"] == "launch"
    [listed] = launches(api, headers, iid)
    assert listed["state"] == "failed" and listed["vendor_run_ref"] is None


def test_a_launched_scans_report_import_counts_the_entries_its_format_skips(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # no launching vendor's format skips entries today: a ZAP launch fetches a Trivy report instead, whose passed
    # check the import summary must count as an upload's does
    from pmap.connectors.base import ReportArtifact
    from pmap.connectors.vendors import dast

    check = {"ID": "KSV001", "Title": "Privilege escalation", "Severity": "MEDIUM", "CauseMetadata": {"StartLine": 3}}
    report = {"SchemaVersion": 2, "ArtifactName": "deploy", "Results": [{"Target": "app.yaml", "Misconfigurations": [
        dict(check, Status="FAIL"), dict(check, ID="KSV002", Status="PASS")]}]}
    monkeypatch.setattr(dast.ZapConnector, "fetch_findings", lambda self, ctx, ref: ReportArtifact(
        name="trivy.json", format="trivy_json", content=json.dumps(report).encode()))
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, "zap", credentials("zap"))
    job = launch(api, headers, iid, LAUNCHABLE["zap"][1])
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["parsed"] == 1 and job["result"]["skipped"] == {"passed check": 1}
