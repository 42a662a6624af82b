"""SCA, discovery and mobile vendors: Snyk versioning, Dependency-Track permissions, Xray, Black Duck,
runZero key scopes, MobSF, NowSecure."""

from __future__ import annotations

import httpx

from pmap_sandbox.server import SandboxServer

from .conftest import cred, vendor_url


def _token(value: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {value}"}


def test_snyk_rest_requires_a_valid_version(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "snyk")
    missing = client.get(f"{base}/self", headers=_token(cred(), "token"))
    assert missing.status_code == 400
    assert missing.headers["content-type"].startswith("application/vnd.api+json")
    assert missing.json()["errors"][0]["source"] == {"parameter": "version"}
    assert (
        client.get(f"{base}/self", params={"version": "yesterday"}, headers=_token(cred(), "token")).status_code == 400
    )
    me = client.get(f"{base}/self", params={"version": "2024-06-10~beta"}, headers=_token(cred(), "token")).json()
    assert me["data"]["type"] == "user" and me["jsonapi"] == {"version": "1.0"}


def test_snyk_permissions(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "snyk")
    org = "4a18d42f-0706-4ad0-b127-24078731fbed"
    issues = client.get(f"{base}/orgs/{org}/issues", params={"version": "2024-06-10"}, headers=_token(cred(), "token"))
    assert issues.json()["data"][0]["attributes"]["effective_severity_level"] == "high"
    denied = client.get(
        f"{base}/orgs/{org}/issues", params={"version": "2024-06-10"}, headers=_token(cred("noperm"), "token")
    )
    assert denied.status_code == 403 and denied.json()["errors"][0]["status"] == "403"
    v1 = sandbox.base_url + "/snyk/v1"
    refused = client.get(f"{v1}/org/{org}/webhooks", headers=_token(cred("bad"), "token"))
    assert refused.status_code == 401 and refused.json()["code"] == 401
    assert client.get(f"{v1}/org/{org}/webhooks", headers=_token(cred("noperm"), "token")).status_code == 403


def test_dependency_track_version_permissions_and_findings(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "dependency_track")
    assert client.get(f"{base}/api/version").json()["application"] == "Dependency-Track"
    perms = client.get(f"{base}/api/v1/team/self", headers={"X-Api-Key": cred()}).json()["permissions"]
    assert {p["name"] for p in perms} == {"VIEW_PORTFOLIO", "VIEW_VULNERABILITY"}
    admin = client.get(f"{base}/api/v1/team/self", headers={"X-Api-Key": cred("admin")}).json()["permissions"]
    assert "ACCESS_MANAGEMENT" in {p["name"] for p in admin}
    projects = client.get(f"{base}/api/v1/project", params={"pageSize": 1}, headers={"X-Api-Key": cred()})
    assert projects.headers["X-Total-Count"] == "1"
    project_uuid = projects.json()[0]["uuid"]
    findings = client.get(f"{base}/api/v1/finding/project/{project_uuid}", headers={"X-Api-Key": cred()}).json()
    assert findings[0]["vulnerability"]["vulnId"] == "CVE-2020-8203"
    denied = client.get(f"{base}/api/v1/project", headers={"X-Api-Key": cred("noperm")})
    assert denied.status_code == 403 and denied.text == ""


def test_xray_ping_is_anonymous_but_version_is_not(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "jfrog_xray")
    assert client.get(f"{base}/system/ping").json() == {"status": "pong"}
    assert client.get(f"{base}/system/version").status_code == 401
    assert client.get(f"{base}/system/version", headers=_token(cred())).json()["xray_version"]
    assert client.post(f"{base}/reports/vulnerabilities", headers=_token(cred("noperm")), json={}).status_code == 403


def test_black_duck_token_exchange(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "black_duck")
    auth = client.post(f"{base}/api/tokens/authenticate", headers=_token(cred(), "token"))
    assert auth.status_code == 200 and auth.headers["X-CSRF-TOKEN"]
    body = auth.json()
    assert body["expiresInMilliseconds"] > 0
    assert client.get(f"{base}/api/current-version", headers=_token(body["bearerToken"])).json()["version"]
    assert client.get(f"{base}/api/current-version", headers=_token("forged")).status_code == 401
    wrong_scheme = client.post(f"{base}/api/tokens/authenticate", headers=_token(cred()))
    assert wrong_scheme.status_code == 401 and wrong_scheme.json()["errorCode"]
    noperm = client.post(f"{base}/api/tokens/authenticate", headers=_token(cred("noperm"), "token")).json()
    # Black Duck filters lists by the user's rights: no project role, an empty list (not a 403)
    listed = client.get(f"{base}/api/projects", headers=_token(noperm["bearerToken"]))
    assert listed.status_code == 200 and listed.json()["totalCount"] == 0 and listed.json()["items"] == []


def test_runzero_key_prefix_is_the_scope(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "runzero")
    assert client.get(f"{base}/org", headers=_token("OT" + cred())).json()["name"] == "Sandbox Org"
    assert client.get(f"{base}/org", headers=_token("CT" + cred()), params={"_oid": "o-1"}).json()["id"] == "o-1"
    export_only = client.get(f"{base}/org", headers=_token("ET" + cred()))
    assert export_only.status_code == 403 and "error" in export_only.json()
    assets = client.get(f"{base}/export/org/assets.json", params={"page_size": 1}, headers=_token("ET" + cred()))
    assert assets.status_code == 200 and len(assets.json()) == 1


def test_mobsf_accepts_either_header_and_serves_reports(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "mobsf")
    scans = client.get(f"{base}/scans", params={"page": 1}, headers={"Authorization": cred()}).json()
    digest = scans["content"][0]["MD5"]
    report = client.post(f"{base}/report_json", data={"hash": digest}, headers={"X-Mobsf-Api-Key": cred()})
    assert report.json()["md5"] == digest
    # MobSF's api_json_report: 422 without hash, 400 for a malformed one, 404 {"report": ...} for an unknown scan
    key = {"X-Mobsf-Api-Key": cred()}
    missing = client.post(f"{base}/report_json", data={"other": "x"}, headers=key)
    assert missing.status_code == 422 and missing.json() == {"error": "Missing Parameters"}
    assert client.post(f"{base}/report_json", data={"hash": "nope"}, headers=key).status_code == 400
    unknown = client.post(f"{base}/report_json", data={"hash": "0" * 32}, headers=key)
    assert unknown.status_code == 404 and unknown.json() == {"report": "Report not Found"}
    assert client.get(f"{base}/scans", params={"page": 2}, headers=key).status_code == 500  # Django's EmptyPage
    # the X-Mobsf-Api-Key header wins over Authorization, as in MobSF's middleware
    refused = client.get(f"{base}/scans", headers={"X-Mobsf-Api-Key": cred("bad"), "Authorization": cred()})
    assert refused.status_code == 401
    assert refused.json() == {"error": "You are unauthorized to make this request."}


def test_nowsecure_graphql(sandbox: SandboxServer, client: httpx.Client) -> None:
    url = vendor_url(sandbox, "nowsecure") + "/graphql"
    body = client.post(url, headers=_token(cred()), json={"query": "{ auto { applications { ref title } } }"}).json()
    assert body["data"]["auto"]["applications"][0] == {"ref": "5c4f0a2e-sandbox-app", "title": "Shop"}
    assert client.post(url, headers=_token(cred()), json={}).status_code == 400
    assert (
        client.post(url, headers=_token(cred("noperm")), json={"query": "{ auto { applications { ref } } }"}).json()[
            "errors"
        ][0]["message"]
        == "Forbidden"
    )
