"""Snyk, GitHub code scanning, Qualys VMDR, Tenable SC, InsightVM, Nessus, Dependency-Track, Semgrep, Checkmarx One,
ZAP, Acunetix, Invicti, Burp Suite DAST, Veracode, Black Duck, MobSF and JFrog Xray sync end to end through the API:
every seeded finding lands, the vendor's fixed ones stored resolved (or, for a vendor without a fixed state, those a
later full pull no longer lists), and a second sync creates nothing."""

from __future__ import annotations

from typing import Any

import pytest

from pmap_sandbox.scanners import _common
from pmap_sandbox.server import SandboxServer
from tests.conftest import Api
from tests.connectors.scanners.cases import settings_for

from .conftest import sync

#: vendor -> the credential field the sandbox keys a seeded data set by
KEYED_BY = {"snyk": "token", "github_code_scanning": "token", "qualys_vmdr": "username", "tenable_sc": "access_key",
            "rapid7_insightvm": "username", "dependency_track": "api_key", "semgrep": "token",
            "checkmarx_one": "api_key", "acunetix": "api_key", "invicti": "api_token", "veracode": "api_id",
            "black_duck": "api_token"}
COUNT, FIXED_EVERY = 230, 5  # three pages of 100 for each vendor


@pytest.mark.parametrize("vendor", sorted(KEYED_BY))
def test_a_pulled_vendor_syncs_every_finding_and_a_second_sync_creates_nothing(
        api: Api, sandbox: SandboxServer, vendor: str) -> None:
    h = api.token(role="operator")
    connection, credentials = settings_for(vendor, sandbox.base_url)
    _common.seed(sandbox.app, vendor, credentials[KEYED_BY[vendor]], count=COUNT, fixed_every=FIXED_EVERY)
    r = api.client.post("/api/v1/integrations", headers=h, json={
        "name": vendor, "vendor": vendor, "connection": connection, "credentials": credentials})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]

    first = sync(api, h, iid, full=True)
    assert first["status"] == "succeeded", first
    result = first["result"]
    fixed = COUNT // FIXED_EVERY
    assert result["parsed"] == COUNT and result["created"] == COUNT
    assert result["created_resolved"] == fixed
    page = api.client.get("/api/v1/findings", headers=h, params={"integration_id": iid, "status": "resolved",
                                                                 "limit": 500}).json()
    assert len(page["items"]) == fixed

    again = sync(api, h, iid, full=True)
    assert again["status"] == "succeeded" and again["result"]["created"] == 0, again
    out = api.client.get(f"/api/v1/integrations/{iid}", headers=h).json()
    assert out["last_sync"]["status"] == "ok" and out["last_synced_at"] is not None


def test_a_nessus_sync_reads_each_configured_scan_and_a_second_sync_creates_nothing(
        api: Api, sandbox: SandboxServer) -> None:
    # Nessus exposes no fixed state and reads configured scans, so it is not in KEYED_BY
    h = api.token(role="operator")
    connection, credentials = settings_for("nessus", sandbox.base_url, scan_ids=[11, 12])
    _common.seed(sandbox.app, "nessus", credentials["access_key"], count=120, scans=[11, 12])
    r = api.client.post("/api/v1/integrations", headers=h, json={
        "name": "nessus", "vendor": "nessus", "connection": connection, "credentials": credentials})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]

    first = sync(api, h, iid, full=True)
    assert first["status"] == "succeeded", first
    assert first["result"]["parsed"] == 240 and first["result"]["created"] == 240
    again = sync(api, h, iid, full=True)
    assert again["status"] == "succeeded" and again["result"]["created"] == 0, again
    out = api.client.get(f"/api/v1/integrations/{iid}", headers=h).json()
    assert out["last_sync"]["status"] == "ok" and out["last_sync"]["complete"] is True


#: vendors without a fixed state (not in KEYED_BY): the seeded credential and the seed options of a pull of 150
WITHOUT_FIXED: dict[str, tuple[str, dict[str, Any]]] = {
    "zap": ("api_key", {}), "burp_dast": ("api_key", {}), "mobsf": ("api_key", {"per_app": 50}),
    "jfrog_xray": ("access_token", {})}


@pytest.mark.parametrize("vendor", sorted(WITHOUT_FIXED))
def test_a_vendor_without_a_fixed_state_resolves_what_a_newer_pull_lacks(
        api: Api, sandbox: SandboxServer, vendor: str) -> None:
    # ZAP lists the session's alerts, Burp a site's latest scan, MobSF each app's latest report, Xray a
    # vulnerabilities report: a complete full pull resolves the rest
    h = api.token(role="operator")
    key_field, options = WITHOUT_FIXED[vendor]
    connection, credentials = settings_for(vendor, sandbox.base_url)
    _common.seed(sandbox.app, vendor, credentials[key_field], count=150, **options)
    r = api.client.post("/api/v1/integrations", headers=h, json={
        "name": vendor, "vendor": vendor, "connection": connection, "credentials": credentials})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]

    first = sync(api, h, iid, full=True)
    assert first["status"] == "succeeded", first
    assert first["result"]["parsed"] == 150 and first["result"]["created"] == 150
    _common.seed(sandbox.app, vendor, credentials[key_field], count=140, **options)  # ten no longer reported
    again = sync(api, h, iid, full=True)
    assert again["status"] == "succeeded" and again["result"]["created"] == 0, again
    resolved = api.client.get("/api/v1/findings", headers=h, params={"integration_id": iid, "status": "resolved",
                                                                     "limit": 500}).json()
    assert len(resolved["items"]) == 10
    out = api.client.get(f"/api/v1/integrations/{iid}", headers=h).json()
    assert out["last_sync"]["status"] == "ok" and out["last_sync"]["complete"] is True


def test_a_mobsf_sync_reports_the_secure_checks_it_left_out(api: Api, sandbox: SandboxServer) -> None:
    # MobSF's sync reads each app's report with the mobsf_json format: the rows of checks that hold (one
    # "secure" rule per seeded report) are skipped, and the sync's summary says so as an upload's does
    h = api.token(role="operator")
    connection, credentials = settings_for("mobsf", sandbox.base_url)
    _common.seed(sandbox.app, "mobsf", credentials["api_key"], count=150, per_app=50)  # three apps
    r = api.client.post("/api/v1/integrations", headers=h, json={
        "name": "mobsf", "vendor": "mobsf", "connection": connection, "credentials": credentials})
    assert r.status_code == 201, r.text
    job = sync(api, h, r.json()["id"], full=True)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["parsed"] == result["created"] == 150
    assert result["skipped"] == {"secure check": 3}
    assert "entries left out by design (not imported as findings): 3 secure check" in result["warnings"]
