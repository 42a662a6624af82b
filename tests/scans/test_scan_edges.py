"""Scan launch edges: PMAP_SCAN_TIMEOUT ends a launch whose scan runs on, a scan the vendor reports failed fails
the launch, a lost job shows its launch failed, and Security Center's download archive is read within bounds."""

from __future__ import annotations

import io
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pmap.app import create_app
from pmap.connectors.base import OperationContext, ScanRef, ScanState
from pmap.connectors.catalog import connector_types
from pmap.connectors.runner import operation_context
from pmap.connectors.vendors import qualys, tenable_sc
from pmap.core.db import transaction, utcnow
from pmap.core.errors import ScanLaunchUnavailable, UpstreamError, ValidationFailed
from pmap.core.outbound import OutboundResponse
from pmap.core.seams import Actor
from pmap.core.settings import Settings
from pmap.findings.jobs import KIND_SCAN, JobCall
from pmap.findings.models import Job
from pmap.integrations.models import Integration
from pmap.scans import service
from pmap.scans.models import ScanLaunch
from pmap_sandbox.server import SandboxServer
from tests.conftest import Api, VirtualClock

from .conftest import integration, launch, launches, unique, wait_job
from .test_scans_api import credentials


@pytest.fixture()
def short_api(settings: Settings) -> Iterator[Api]:
    """An app whose launches give up after 45 s of (virtual) time, polling every 30 s at first."""
    from fastapi.testclient import TestClient

    tuned = settings.model_copy(update={"scan_timeout": 45.0, "scan_poll_seconds": 30.0})
    with TestClient(create_app(tuned), raise_server_exceptions=False) as client:
        yield Api(client)


def test_a_scan_still_running_at_pmap_scan_timeout_fails_the_launch_at_step_poll(
        short_api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock) -> None:
    headers = short_api.token(role="operator")
    iid = integration(short_api, headers, sandbox, "nessus", credentials("nessus"))
    job = launch(short_api, headers, iid, "5")
    assert job["status"] == "failed", job
    assert job["error"]["step"] == "poll" and job["error"]["vendor_step"] == "timeout"
    assert "PMAP_SCAN_TIMEOUT" in job["error"]["message"]
    [listed] = launches(short_api, headers, iid)
    assert listed["state"] == "failed" and listed["vendor_status"] == "Nessus status: running"


def test_a_launch_whose_job_was_lost_is_listed_failed(api: Api, sandbox: SandboxServer) -> None:
    headers = api.token(role="operator")
    iid = integration(api, headers, sandbox, "nessus", credentials("nessus"))
    with api.state.sessions() as session:
        row = session.get(Integration, uuid.UUID(iid))
        assert row is not None
        org = row.organization_id
    now, launch_id = utcnow(), uuid.uuid4()
    error = {"code": "job_orphaned", "message": "the PMAP process that ran this job stopped"}
    with transaction(api.state.sessions) as session:
        job = Job(organization_id=org, kind=KIND_SCAN, status="failed", error=error,
                  params={"integration_id": iid, "launch_id": str(launch_id)}, progress={}, runner="gone:1",
                  actor="test", created_at=now, updated_at=now)
        session.add(job)
        session.flush()
        session.add(ScanLaunch(id=launch_id, organization_id=org, integration_id=uuid.UUID(iid), vendor_scan_id="5",
                               state="running", job_id=job.id, actor="test", created_at=now, updated_at=now))
    [listed] = launches(api, headers, iid)
    assert listed["state"] == "failed" and listed["error"]["code"] == "job_orphaned"


def _zip(**members: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _sc_context() -> OperationContext:
    settings = Settings(env="development", database_url="sqlite://", platform_key=None)
    return operation_context(settings, connector_types()["tenable_sc"], {"base_url": "http://127.0.0.1:9/rest"},
                             {"access_key": unique(), "secret_key": unique()}, purpose="scan_launch")


def test_security_centers_download_is_one_nessus_file_within_the_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _sc_context()
    assert tenable_sc._nessus_of(ctx, _zip(**{"1.nessus": b"<NessusClientData_v2/>"}), "1") == b"<NessusClientData_v2/>"
    with pytest.raises(UpstreamError, match="not one .nessus file"):
        tenable_sc._nessus_of(ctx, _zip(**{"a.nessus": b"x", "b.nessus": b"y"}), "1")
    monkeypatch.setattr(tenable_sc, "DOWNLOAD_MAX_BYTES", 1000)
    bomb = _zip(**{"1.nessus": b"A" * 100_000})  # compresses to a few hundred bytes
    with pytest.raises(UpstreamError, match="size limit"):
        tenable_sc._nessus_of(ctx, bomb, "1")


def test_a_scan_waiting_on_its_vendor_holds_no_worker_of_imports_and_syncs(
        api: Api, sandbox: SandboxServer, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    started, release = threading.Event(), threading.Event()

    def waiting(call: Any) -> dict[str, Any]:  # a scan that runs for hours, as far as the runner knows
        started.set()
        release.wait(90)
        return {"parsed": 0}

    api.app.state.jobs._handlers[KIND_SCAN] = waiting
    scanning = integration(api, headers, sandbox, "nessus", credentials("nessus"))
    resp = api.client.post(f"/api/v1/integrations/{scanning}/scans", headers=headers, json={"scan_id": "5"})
    assert resp.status_code == 202, resp.text
    assert started.wait(10)
    try:
        syncing = integration(api, headers, sandbox, "tenable_vm", credentials("tenable_vm"))
        sync = api.client.post(f"/api/v1/integrations/{syncing}/sync", headers=headers)
        assert sync.status_code == 202, sync.text
        deadline = time.monotonic() + 20  # well before the scan ends: the sync never waited for its worker
        while (done := api.client.get(f"/api/v1/jobs/{sync.json()['job']['id']}", headers=headers).json())[
                "status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done["status"] == "succeeded", done  # on SQLite too, whose pool has one worker
    finally:
        release.set()
    assert wait_job(api, headers, resp.json()["job"]["id"])["status"] == "succeeded"


class _Statuses:
    """A vendor whose scan reports the given statuses, one a poll."""

    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        return ScanState(scan_id=scan.scan_id, status=self.statuses.pop(0), detail=None)


def _call() -> JobCall:
    return JobCall(uuid.uuid4(), uuid.uuid4(), {}, Actor(kind="system", name="test", organization_id=uuid.uuid4()),
                   lambda progress: None)


def test_the_status_is_polled_with_a_backoff_capped_at_ten_intervals(virtual_clock: VirtualClock) -> None:
    settings = Settings(env="development", database_url="sqlite://", platform_key=None, scan_poll_seconds=10,
                        scan_timeout=10_000)
    seen: list[str] = []
    vendor = _Statuses(*["queued"] * 2, *["running"] * 5, "completed")
    service._wait(settings, _sc_context(), vendor, ScanRef(scan_id="5", run_id="r"),
                  lambda **kw: seen.append(kw["vendor_status"]), _call())
    assert virtual_clock.waits == [10, 20, 40, 80, 100, 100, 100]
    assert seen[-1] == "completed" and len(seen) == 8


@pytest.mark.parametrize("ending", ["failed", "canceled"])
def test_a_scan_the_vendor_reports_failed_or_canceled_fails_the_launch(virtual_clock: VirtualClock,
                                                                       ending: str) -> None:
    settings = Settings(env="development", database_url="sqlite://", platform_key=None)
    with pytest.raises(UpstreamError, match=f"reports the scan {ending}") as err:
        service._wait(settings, _sc_context(), _Statuses("running", ending), ScanRef(scan_id="5", run_id="r"),
                      lambda **kw: None, _call())
    assert err.value.step == "scan"


def test_an_acunetix_scan_results_vulnerabilities_are_read_as_the_xml_export_with_their_hosts_and_states() -> None:
    from pmap.connectors.vendors import dast
    from pmap.findings.formats.vm_dast import acunetix as acunetix_format

    def vuln(name: str, url: str, severity: int, status: str, detail: str | None = None) -> dict[str, Any]:
        return {"vt_name": name, "affects_url": url, "severity": severity, "status": status, "affects_detail": detail,
                "vt_id": "00000000-0000-4000-9000-000000000001"}

    content = dast._acunetix_xml([
        vuln("SQL injection", "https://shop.example.test:8443/item?id=1", 4, "open", "id"),
        vuln("Cross-site <Scripting> & co", "http://blog.example.test/search", 3, "false_positive", "q"),
        vuln("Fixed since", "http://blog.example.test/old", 2, "fixed"),
        vuln("Weak TLS", "https://shop.example.test:8443/", 1, "ignored", "<empty>"),
    ])
    findings = list(acunetix_format.FORMAT.parse(io.BytesIO(content)))
    assert [(f.title, f.host, f.port, f.url, f.parameter, f.vendor_severity, f.status) for f in findings] == [
        ("SQL injection", "shop.example.test", 8443, "https://shop.example.test:8443/item?id=1", "id", "critical",
         None),
        ("Weak TLS", "shop.example.test", 8443, "https://shop.example.test:8443/", None, "low", None),
        ("Cross-site <Scripting> & co", "blog.example.test", 80, "http://blog.example.test/search", "q", "high",
         "false_positive"),
    ], "grouped by origin; the fixed one left out so the full import resolves it"


def test_a_burp_scans_issues_are_read_as_the_xml_export_as_the_sync_reads_them() -> None:
    from pmap.connectors.vendors import dast
    from pmap.findings.formats.vm_dast import burp as burp_format
    from pmap_sandbox.scanners import burp as burp_sandbox

    issues = [*burp_sandbox.LAUNCHED_ISSUES, {**burp_sandbox.seeded_issue(3), "severity": "false_positive"}]
    findings = list(burp_format.FORMAT.parse(io.BytesIO(dast._burp_xml(issues))))
    synced = [burp_format.api_issue(issue) for issue in issues]
    keep = ("title", "host", "port", "url", "rule_id", "cwe_ids", "description", "remediation",
            "references", "status")
    assert [{k: getattr(f, k) for k in keep} for f in findings] == [{k: getattr(f, k) for k in keep} for f in synced]
    assert [f.vendor_severity for f in findings] == ["High", "Information", "False positive"]
    assert findings[-1].status == "false_positive"
    assert [f.fingerprint("burp_xml") for f in findings] == [f.fingerprint("burp_xml") for f in synced]


def test_a_burp_launchs_run_reference_names_its_schedule_item(virtual_clock: VirtualClock) -> None:
    from pmap.connectors.vendors import dast
    from pmap.core.errors import ValidationFailed

    assert dast._burp_item("schedule_item:21042") == "21042"
    with pytest.raises(ValidationFailed):
        dast._burp_item("2; drop")


def _qualys_context() -> OperationContext:
    settings = Settings(env="development", database_url="sqlite://", platform_key=None)
    return operation_context(settings, connector_types()["qualys_vmdr"], {"base_url": "http://127.0.0.1:9"},
                             {"username": unique(), "password": unique()}, purpose="scan_launch")


def _qualys_answer(status: int, body: str) -> OutboundResponse:
    return OutboundResponse(status=status, headers=httpx.Headers({"content-type": "application/xml"}),
                            content=body.encode(), url="http://127.0.0.1:9/api/2.0/fo/scan/", elapsed_ms=1.0)


def _simple_return(code: int, text: str) -> str:
    return f"<SIMPLE_RETURN><RESPONSE><CODE>{code}</CODE><TEXT>{text}</TEXT></RESPONSE></SIMPLE_RETURN>"


def test_a_qualys_scan_id_is_an_option_profile_and_its_targets() -> None:
    assert qualys.launch_spec("1234:10.0.0.1,10.0.0.5-10.0.0.20").launch_form() == {
        "option_id": "1234", "ip": "10.0.0.1,10.0.0.5-10.0.0.20"}
    assert qualys.launch_spec(" 1234:ag=55,56 ").detection_filter() == {"ag_ids": "55,56"}
    assert qualys.launch_spec("7:10.1.0.0/16").detection_filter() == {"ips": "10.1.0.0/16"}
    assert qualys.launch_spec("7:2001:db8::1").launch_form()["ip"] == "2001:db8::1"
    for bad in ("1234", "1234:", "x:10.0.0.1", "1234:ag=", "1234:ag=a", "1234:10.0.0.1&ip=1", "1234:host.example"):
        with pytest.raises(ValidationFailed):
            qualys.launch_spec(bad)


@pytest.mark.parametrize(("status", "code", "unavailable"), [
    (400, 1901, True), (400, 2003, True), (403, 2011, True), (409, 1960, True), (409, 1965, True),
    (400, 1905, False), (400, 1903, False), (503, 999, False), (401, 2000, False),
])
def test_a_qualys_launch_refusal_is_unavailable_only_for_the_account_or_subscription(
        status: int, code: int, unavailable: bool) -> None:
    refused = qualys._launch_refused(_qualys_context(), _qualys_answer(status, _simple_return(code, "refused")))
    assert (refused is not None) is unavailable
    if refused is not None:
        assert refused.code == ScanLaunchUnavailable.code and f"CODE {code}" in refused.message


@pytest.mark.parametrize(("state", "processed", "expected"), [
    ("Submitted", "0", "queued"), ("Queued", "0", "queued"), ("Loading", "0", "queued"), ("Running", "0", "running"),
    ("Paused", "0", "running"), ("Finished", "0", "running"), ("Finished", "1", "completed"), ("Error", "0", "failed"),
    ("Canceled", "0", "canceled"),
])
def test_qualys_scan_states_map_to_pmaps_and_a_finished_scan_completes_once_processed(
        monkeypatch: pytest.MonkeyPatch, state: str, processed: str, expected: str) -> None:
    ref = "scan/1701237133.81259"
    body = (f"<SCAN_LIST_OUTPUT><RESPONSE><SCAN_LIST><SCAN><REF>{ref}</REF><PROCESSED>{processed}</PROCESSED>"
            f"<STATUS><STATE>{state}</STATE></STATUS></SCAN></SCAN_LIST></RESPONSE></SCAN_LIST_OUTPUT>")
    monkeypatch.setattr(qualys, "_call", lambda *a, **kw: _qualys_answer(200, body))
    got = qualys.QualysConnector().scan_status(_qualys_context(), ScanRef(scan_id="1234:ag=77", run_id=ref))
    assert got.status == expected and state in (got.detail or "")


def test_a_qualys_scan_the_list_does_not_show_fails_at_step_response(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qualys, "_call", lambda *a, **kw: _qualys_answer(
        200, "<SCAN_LIST_OUTPUT><RESPONSE></RESPONSE></SCAN_LIST_OUTPUT>"))
    with pytest.raises(UpstreamError) as err:
        qualys.QualysConnector().scan_status(_qualys_context(), ScanRef(scan_id="1234:ag=77",
                                                                        run_id="scan/1.2"))
    assert err.value.step == "response"
