"""VM vendors: Nessus editions and export flow, Tenable VM export, Security Center, Qualys, InsightVM."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
from defusedxml import ElementTree

from pmap_sandbox.server import SandboxServer

from .conftest import cred, vendor_url


def _keys(access: str) -> dict[str, str]:
    return {"X-ApiKeys": f"accessKey={access}; secretKey=secret-1;"}


def _days_from_now(epoch: int) -> float:
    return (epoch - time.time()) / 86400


def test_nessus_professional_has_no_scan_api_and_launch_is_412(sandbox: SandboxServer, client: httpx.Client) -> None:
    base, keys = vendor_url(sandbox, "nessus"), _keys(cred())
    props = client.get(f"{base}/server/properties", headers=keys).json()
    assert props["nessus_type"] == "Nessus"
    assert props["license"]["type"] == "pro"
    assert props["license"]["features"]["scan_api"] is False
    launch = client.post(f"{base}/scans/5/launch", headers=keys)
    assert launch.status_code == 412
    assert launch.json() == {"error": "API is not available"}


def test_nessus_manager_can_launch(sandbox: SandboxServer, client: httpx.Client) -> None:
    base, keys = vendor_url(sandbox, "nessus"), _keys(cred("manager"))
    props = client.get(f"{base}/server/properties", headers=keys).json()
    assert props["nessus_type"] == "Nessus Manager"
    assert props["license"]["features"]["scan_api"] is True
    launch = client.post(f"{base}/scans/5/launch", headers=keys)
    assert launch.status_code == 200
    assert launch.json()["scan_uuid"]


def test_nessus_managed_scanner_reports_managed_and_owns_no_scans(sandbox: SandboxServer, client: httpx.Client) -> None:
    base, keys = vendor_url(sandbox, "nessus"), _keys(cred("managed"))
    props = client.get(f"{base}/server/properties", headers=keys).json()
    assert props["nessus_type"] == "Nessus Scanner"
    assert props["managed"] is True
    assert client.get(f"{base}/scans", headers=keys).json()["scans"] is None


def test_nessus_license_expiry_follows_markers(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "nessus")
    expired = client.get(f"{base}/server/properties", headers=_keys(cred("expired"))).json()
    expiring = client.get(f"{base}/server/properties", headers=_keys(cred("expiring"))).json()
    normal = client.get(f"{base}/server/properties", headers=_keys(cred())).json()
    assert _days_from_now(expired["license"]["expiration_date"]) < 0
    assert 9 < _days_from_now(expiring["license"]["expiration_date"]) <= 10
    assert _days_from_now(normal["license"]["expiration_date"]) > 300


def test_nessus_export_flow_by_file_and_by_token(sandbox: SandboxServer, client: httpx.Client) -> None:
    base, keys = vendor_url(sandbox, "nessus"), _keys(cred())
    scans = client.get(f"{base}/scans", headers=keys).json()["scans"]
    scan_id = scans[0]["id"]
    started = client.post(f"{base}/scans/{scan_id}/export", headers=keys, json={"format": "nessus"}).json()
    file_id, token = started["file"], started["token"]
    status_url = f"{base}/scans/{scan_id}/export/{file_id}/status"
    assert client.get(status_url, headers=keys).json() == {"status": "loading"}
    assert client.get(f"{base}/scans/{scan_id}/export/{file_id}/download", headers=keys).status_code == 409
    assert client.get(status_url, headers=keys).json() == {"status": "ready"}
    download = client.get(f"{base}/scans/{scan_id}/export/{file_id}/download", headers=keys)
    assert download.status_code == 200
    root = ElementTree.fromstring(download.content)
    assert root.tag == "NessusClientData_v2"
    assert [i.get("pluginID") for i in root.iter("ReportItem")] == ["148125", "19506"]
    by_token = client.get(f"{base}/tokens/{token}/download")  # the token alone authorizes
    assert by_token.content == download.content
    assert client.get(f"{base}/tokens/not-a-token/status").status_code == 404


def test_nessus_export_needs_auth_and_permission(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "nessus")
    assert client.post(f"{base}/scans/5/export", json={"format": "nessus"}).status_code == 401
    denied = client.post(f"{base}/scans/5/export", headers=_keys(cred("noperm")), json={"format": "csv"})
    assert denied.status_code == 403
    assert client.post(f"{base}/scans/99/export", headers=_keys(cred()), json={"format": "csv"}).status_code == 404


def test_tenable_vm_export_flow_filters_by_state(sandbox: SandboxServer, client: httpx.Client) -> None:
    base, keys = vendor_url(sandbox, "tenable_vm"), _keys(cred())
    export_id = client.post(
        f"{base}/vulns/export", headers=keys, json={"num_assets": 50, "filters": {"state": ["OPEN"]}}
    ).json()["export_uuid"]
    first = client.get(f"{base}/vulns/export/{export_id}/status", headers=keys).json()
    assert first["status"] == "PROCESSING" and first["chunks_available"] == []
    second = client.get(f"{base}/vulns/export/{export_id}/status", headers=keys).json()
    assert second["status"] == "FINISHED" and second["chunks_available"] == [1]
    chunk = client.get(f"{base}/vulns/export/{export_id}/chunks/1", headers=keys).json()
    assert [v["state"] for v in chunk] == ["OPEN"]
    assert chunk[0]["plugin"]["id"] == 148125
    assert client.get(f"{base}/vulns/export/{export_id}/chunks/2", headers=keys).status_code == 404
    assert client.get(f"{base}/vulns/export/nope/status", headers=keys).json()["statusCode"] == 404


def test_tenable_vm_roles_and_license(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "tenable_vm")
    assert client.get(f"{base}/session", headers=_keys(cred())).json()["permissions"] == 32
    assert client.get(f"{base}/session", headers=_keys(cred("admin"))).json()["permissions"] == 64
    assert client.get(f"{base}/session", headers=_keys(cred("noperm"))).json()["permissions"] == 16
    assert client.post(f"{base}/vulns/export", headers=_keys(cred("noperm")), json={}).status_code == 403
    props = client.get(f"{base}/server/properties", headers=_keys(cred("expired"))).json()
    assert props["license"]["expiration_date"] < time.time()
    bad = client.get(f"{base}/session", headers=_keys(cred("bad")))
    assert bad.json() == {"statusCode": 401, "error": "Unauthorized", "message": "Invalid Credentials"}


def test_tenable_sc_envelope_and_license(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "tenable_sc")
    system = client.get(f"{base}/system")  # no keys: pyTenable reads it first
    assert system.status_code == 200 and system.json()["response"]["version"]
    keys = {"x-apikey": f"accesskey={cred('expired')}; secretkey=s;"}
    status = client.get(f"{base}/status", headers=keys).json()
    assert status["error_code"] == 0 and status["response"]["licenseStatus"] == "Expired"
    assert {"activeIPs", "licensedIPs"} <= set(status["response"])
    refused = client.get(f"{base}/status", headers={"x-apikey": f"accesskey={cred('bad')}; secretkey=s;"})
    assert refused.status_code == 401
    assert set(refused.json()) == {"type", "response", "error_code", "error_msg", "warnings", "timestamp"}
    assert refused.json()["error_code"] != 0


def test_tenable_sc_roles_and_analysis_permission(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "tenable_sc")

    def keys(marker: str) -> dict[str, str]:
        return {"x-apikey": f"accesskey={cred(marker)}; secretkey=s;"}

    assert (
        client.get(f"{base}/currentUser", headers=keys("ok")).json()["response"]["role"]["name"] == "Security Analyst"
    )
    assert (
        client.get(f"{base}/currentUser", headers=keys("admin")).json()["response"]["role"]["name"]
        == "Security Manager"
    )
    narrowed = client.get(f"{base}/currentUser", params={"fields": "username"}, headers=keys("ok")).json()["response"]
    assert set(narrowed) == {"id", "uuid", "username"}  # id and uuid always come back; role only when asked for
    assert client.post(f"{base}/analysis", headers=keys("noperm"), json={"type": "vuln"}).status_code == 403
    rows = client.post(f"{base}/analysis", headers=keys("ok"), json={"type": "vuln"}).json()["response"]["results"]
    assert rows[0]["pluginID"] == "148125"


def test_qualys_detection_list_is_xml(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "qualys_vmdr")
    response = client.post(
        f"{base}/api/2.0/fo/asset/host/vm/detection/",
        data={"action": "list"},
        auth=("pmap", cred()),
        headers={"X-Requested-With": "pmap"},
    )
    assert response.status_code == 200
    root = ElementTree.fromstring(response.content)
    assert root.findtext(".//DETECTION/QID") == "38863"
    missing_action = client.get(
        f"{base}/api/2.0/fo/asset/host/vm/detection/", auth=("pmap", cred()), headers={"X-Requested-With": "pmap"}
    )
    assert missing_action.status_code == 400 and "<SIMPLE_RETURN>" in missing_action.text


def test_qualys_requires_x_requested_with(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(vendor_url(sandbox, "qualys_vmdr") + "/msp/about.php", auth=("pmap", cred()))
    assert response.status_code == 400
    assert ElementTree.fromstring(response.content).tag == "SIMPLE_RETURN"


def test_insightvm_license_needs_global_admin(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "rapid7_insightvm")
    # the console spec declares 401 (UnauthorizedError, status as a string), no 403, for this call
    denied = client.get(f"{base}/administration/license", auth=("pmap", cred()))
    assert denied.status_code == 401 and denied.json()["status"] == "401"
    admin = client.get(f"{base}/administration/license", auth=("pmap", cred("admin"))).json()
    assert admin["status"] == "Activated"
    assert set(admin["limits"]) == {"assets", "assetsWithHostedEngine", "scanEngines", "users"}
    expired = client.get(f"{base}/administration/license", auth=("pmap", cred("expired"))).json()
    assert expired["status"] == "Expired"
    assert datetime.strptime(expired["expires"], "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=UTC) < datetime.now(UTC)


def test_insightvm_info_describes_the_console_service_not_the_caller(sandbox: SandboxServer,
                                                                      client: httpx.Client) -> None:
    base = vendor_url(sandbox, "rapid7_insightvm")
    plain = client.get(f"{base}/administration/info", auth=("pmap", cred())).json()
    admin = client.get(f"{base}/administration/info", auth=("pmap", cred("admin"))).json()
    # Info.superuser: "Whether the service is running a super-user"; Info.user: "The user running the service"
    assert (plain["superuser"], plain["user"]) == (admin["superuser"], admin["user"]) == (True, "root")
    assert plain["version"]["semantic"] == "6.6.230"


def test_insightvm_assets_list_only_what_the_user_may_see(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "rapid7_insightvm")
    seen = client.get(f"{base}/assets", params={"page": 0, "size": 1}, auth=("pmap", cred()))
    assert seen.status_code == 200 and len(seen.json()["resources"]) == 1
    none = client.get(f"{base}/assets", params={"page": 0, "size": 1}, auth=("pmap", cred("noperm")))
    assert none.status_code == 200  # GET /assets "returns all assets for which you have access": no 403
    assert none.json()["resources"] == [] and none.json()["page"]["totalResources"] == 0
