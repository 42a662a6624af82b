"""DAST and SAST vendors: licenses, roles, GraphQL subsets, token exchange, Veracode HMAC."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest

from pmap_sandbox.scanners import veracode
from pmap_sandbox.server import SandboxServer

from .conftest import cred, vendor_url


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_sonarqube_status_is_anonymous_and_validate_reports_false(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "sonarqube")
    assert client.get(f"{base}/api/system/status").json()["status"] == "UP"
    assert client.get(f"{base}/api/authentication/validate").json() == {"valid": False}
    basic_token = client.get(f"{base}/api/authentication/validate", auth=(cred(), ""))
    assert basic_token.json() == {"valid": True}
    # ValidateAction turns a refused token into 200 {"valid": false}; other web services answer it 401
    refused = client.get(f"{base}/api/authentication/validate", headers=_bearer(cred("bad")))
    assert refused.status_code == 200 and refused.json() == {"valid": False}
    issues = client.get(f"{base}/api/issues/search", headers=_bearer(cred("bad")))
    assert issues.status_code == 401 and "errors" in issues.json()


def test_sonarqube_license_needs_admin_and_reports_expiry(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "sonarqube") + "/api/editions/show_license"
    assert client.get(base, headers=_bearer(cred())).status_code == 403
    admin = client.get(base, headers=_bearer(cred("admin"))).json()
    assert admin["isExpired"] is False
    expired = client.get(base, headers=_bearer(cred("expired"))).json()
    assert expired["isExpired"] is True
    expiring = client.get(base, headers=_bearer(cred("expiring"))).json()
    days = (datetime.strptime(expiring["expiresAt"], "%Y-%m-%d").replace(tzinfo=UTC) - datetime.now(UTC)).days
    assert 8 <= days <= 10


def test_sonarqube_webhooks_create_validate_and_list(sandbox: SandboxServer, client: httpx.Client) -> None:
    base, auth = vendor_url(sandbox, "sonarqube"), _bearer(cred())
    project = f"proj{time.monotonic_ns()}"
    short = client.post(
        f"{base}/api/webhooks/create",
        headers=auth,
        data={"name": "pmap", "url": "http://127.0.0.1:9/hook", "secret": "too-short", "project": project},
    )
    assert short.status_code == 400 and "16" in short.json()["errors"][0]["msg"]
    # a global webhook needs global Administer; Administer on the project is enough for the project's
    global_hook = client.post(f"{base}/api/webhooks/create", headers=auth,
                              data={"name": "pmap", "url": "http://127.0.0.1:9/hook"})
    assert global_hook.status_code == 403 and client.get(f"{base}/api/webhooks/list", headers=auth).status_code == 403
    created = client.post(
        f"{base}/api/webhooks/create",
        headers=auth,
        data={"name": "pmap", "url": "http://127.0.0.1:9/hook", "secret": "s" * 16, "project": project},
    )
    assert created.status_code == 200
    hook = created.json()["webhook"]
    assert hook["hasSecret"] is True and "secret" not in hook
    listed = client.get(f"{base}/api/webhooks/list", headers=auth, params={"project": project}).json()["webhooks"]
    assert listed == [hook]
    denied = client.post(
        f"{base}/api/webhooks/create",
        headers=_bearer(cred("noperm")),
        data={"name": "pmap", "url": "http://127.0.0.1:9/hook"},
    )
    assert denied.status_code == 403


def test_checkmarx_refresh_token_flow_and_roles(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "checkmarx_one")
    token_url = f"{base}/auth/realms/sandbox/protocol/openid-connect/token"
    wrong_client = client.post(
        token_url, data={"grant_type": "refresh_token", "client_id": "x", "refresh_token": cred()}
    )
    assert wrong_client.status_code == 401 and wrong_client.json()["error"] == "unauthorized_client"
    bad = client.post(
        token_url, data={"grant_type": "refresh_token", "client_id": "ast-app", "refresh_token": cred("bad")}
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    good = client.post(
        token_url, data={"grant_type": "refresh_token", "client_id": "ast-app", "refresh_token": cred()}
    ).json()
    assert good["token_type"] == "Bearer" and good["expires_in"] > 0
    results = client.get(f"{base}/api/results", params={"scan-id": "s1"}, headers=_bearer(good["access_token"]))
    assert results.status_code == 200 and results.json()["totalCount"] == 1
    noperm = client.post(
        token_url, data={"grant_type": "refresh_token", "client_id": "ast-app", "refresh_token": cred("noperm")}
    ).json()
    assert (
        client.get(f"{base}/api/results", params={"scan-id": "s1"}, headers=_bearer(noperm["access_token"])).status_code
        == 403
    )
    assert client.get(f"{base}/api/versions", headers=_bearer("forged")).status_code == 401


def test_checkmarx_client_credentials_grant(sandbox: SandboxServer, client: httpx.Client) -> None:
    token_url = vendor_url(sandbox, "checkmarx_one") + "/auth/realms/sandbox/protocol/openid-connect/token"
    ok = client.post(token_url, data={"grant_type": "client_credentials", "client_id": "pmap", "client_secret": cred()})
    assert ok.status_code == 200
    bad = client.post(
        token_url, data={"grant_type": "client_credentials", "client_id": "pmap", "client_secret": cred("bad")}
    )
    assert bad.status_code == 401


def _veracode_get(
    client: httpx.Client,
    url: str,
    api_id: str,
    secret: str,
    *,
    sign_url: str | None = None,
    ts: int | None = None,
    with_port: bool = False,
) -> httpx.Response:
    parts = urlsplit(sign_url or url)
    host = parts.netloc if with_port else parts.hostname or ""
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    header = veracode.authorization_header(api_id, secret, host, path, "GET", ts=ts)
    return client.get(url, headers={"Authorization": header})


def test_veracode_hmac_is_verified(sandbox: SandboxServer, client: httpx.Client) -> None:
    url = vendor_url(sandbox, "veracode") + "/api/authn/v2/users/self"
    api_id = cred("id")
    ok = _veracode_get(client, url, api_id, veracode.secret_for(api_id))
    assert ok.status_code == 200 and ok.json()["api_credentials"]["api_id"] == api_id
    assert _veracode_get(client, url, api_id, veracode.secret_for(api_id), with_port=True).status_code == 200
    assert _veracode_get(client, url, api_id, veracode.secret_for("someone-else")).status_code == 401
    other_path = vendor_url(sandbox, "veracode") + "/api/authn/v2/users"
    assert _veracode_get(client, url, api_id, veracode.secret_for(api_id), sign_url=other_path).status_code == 401
    stale = int(time.time() * 1000) - 10 * 60 * 1000
    assert _veracode_get(client, url, api_id, veracode.secret_for(api_id), ts=stale).status_code == 401
    wrong_scheme = client.get(url, headers={"Authorization": "Bearer " + api_id})
    assert wrong_scheme.status_code == 401 and wrong_scheme.json()["http_code"] == 401


def test_veracode_credential_expiry_and_roles(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "veracode")
    expiring_id, expired_id, noperm_id = cred("expiring"), cred("expired"), cred("noperm")
    me = _veracode_get(client, base + "/api/authn/v2/users/self", expiring_id, veracode.secret_for(expiring_id))
    expiry = datetime.strptime(me.json()["api_credentials"]["expiration_ts"], "%Y-%m-%dT%H:%M:%S.000+0000")
    assert 8 <= (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).days <= 10
    gone = _veracode_get(client, base + "/api/authn/v2/users/self", expired_id, veracode.secret_for(expired_id))
    assert gone.status_code == 401
    noperm_me = _veracode_get(client, base + "/api/authn/v2/users/self", noperm_id, veracode.secret_for(noperm_id))
    assert noperm_me.json()["roles"] == []
    findings = _veracode_get(
        client, base + "/appsec/v2/applications/app-1/findings", noperm_id, veracode.secret_for(noperm_id)
    )
    assert findings.status_code == 403


def test_semgrep_token_without_web_api_scope(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "semgrep")
    deployments = client.get(f"{base}/deployments", headers=_bearer(cred())).json()["deployments"]
    slug = deployments[0]["slug"]
    findings = client.get(f"{base}/deployments/{slug}/findings", headers=_bearer(cred())).json()["findings"]
    assert findings[0]["severity"] == "high"
    # a token without the Web API scope gets 404 (Semgrep KB "Web API error 404 and token scopes")
    assert client.get(f"{base}/deployments", headers=_bearer(cred("noperm"))).status_code == 404


def test_github_scopes_and_code_scanning_permissions(sandbox: SandboxServer, client: httpx.Client) -> None:
    base = vendor_url(sandbox, "github_code_scanning")
    user = client.get(f"{base}/user", headers=_bearer(cred()))
    assert "security_events" in user.headers["X-OAuth-Scopes"]
    admin = client.get(f"{base}/user", headers={"Authorization": f"token {cred('admin')}"})
    assert "admin:org" in admin.headers["X-OAuth-Scopes"]
    expiring = client.get(f"{base}/user", headers=_bearer(cred("expiring")))
    assert expiring.headers["github-authentication-token-expiration"].endswith(" UTC")
    alerts_url = f"{base}/repos/example/shop/code-scanning/alerts"
    alerts = client.get(alerts_url, headers=_bearer(cred()))
    assert alerts.status_code == 200 and alerts.json()[0]["rule"]["security_severity_level"] == "high"
    denied = client.get(alerts_url, headers=_bearer(cred("noperm")))
    assert denied.status_code == 403 and denied.json()["documentation_url"]
    assert client.get(alerts_url, headers=_bearer(cred("expired"))).json()["message"].startswith("Advanced Security")
    assert client.get(f"{base}/user", headers=_bearer(cred("bad"))).json()["message"] == "Bad credentials"


def test_burp_graphql_projects_selected_fields(sandbox: SandboxServer, client: httpx.Client) -> None:
    url = vendor_url(sandbox, "burp_dast") + "/graphql/v1"
    auth = {"Authorization": cred()}
    body = client.post(
        url,
        headers=auth,
        json={
            "query": "query S($id: ID!) { s: scan(id: $id) { status issues { severity path } } sites { name } }",
            "variables": {"id": "7"},
        },
    ).json()
    assert body["data"]["s"] == {"status": "succeeded", "issues": [{"severity": "high", "path": "/search"}]}
    assert body["data"]["sites"] == [{"name": "Example shop"}]
    unknown = client.post(url, headers=auth, json={"query": "{ version }"}).json()
    assert "FieldUndefined" in unknown["errors"][0]["message"] and "data" not in unknown
    noperm = client.post(url, headers={"Authorization": cred("noperm")}, json={"query": "{ sites { id } }"}).json()
    assert noperm["data"] is None and noperm["errors"]


@pytest.mark.parametrize(("key", "path"), [("acunetix", "/info"), ("invicti", "/account/license")])
def test_dast_license_expiry(sandbox: SandboxServer, client: httpx.Client, key: str, path: str) -> None:
    url = vendor_url(sandbox, key) + path

    def get(marker: str) -> httpx.Response:
        value = cred(marker)
        return client.get(url, headers={"X-Auth": value}) if key == "acunetix" else client.get(url, auth=("u", value))

    if key == "acunetix":
        assert get("expired").json()["license"]["expired"] is True
        assert get("ok").json()["license"]["expired"] is False
    else:
        assert get("expired").json()["IsSubscriptionEnabled"] is False
        expiring = get("expiring").json()
        end = datetime.fromisoformat(expiring["Licenses"][0]["EndDate"])  # ISO-8601 with offset per entry
        assert end.tzinfo is not None and 8 <= (end - datetime.now(UTC)).days <= 10
        # the subscription dates are in the account's date format (Netsparker's sample: 12/30/2022 04:00 PM)
        assert datetime.strptime(expiring["SubscriptionEndDate"], "%m/%d/%Y %I:%M %p").date() == end.date()
        assert expiring["Licenses"][0]["ProductDefinition"] and "Edition" not in expiring["Licenses"][0]
        assert get("noperm").status_code == 403


def test_acunetix_and_zap_specifics(sandbox: SandboxServer, client: httpx.Client) -> None:
    acunetix = vendor_url(sandbox, "acunetix")
    me = client.get(acunetix + "/me", headers={"X-Auth": cred("admin")}).json()
    # the community-documented /me fields: no role; the root account is not a child account
    assert me["child_account"] is False and me["su"] is True and "role" not in me
    assert client.get(acunetix + "/me", headers={"X-Auth": cred()}).json()["child_account"] is True
    vulns = client.get(acunetix + "/vulnerabilities", params={"l": 1}, headers={"X-Auth": cred()})
    assert vulns.status_code == 200 and vulns.json()["vulnerabilities"][0]["vt_name"]
    assert client.get(acunetix + "/vulnerabilities", headers={"X-Auth": cred("noperm")}).status_code == 403
    zap = vendor_url(sandbox, "zap")
    assert client.get(f"{zap}/JSON/core/view/version/", params={"apikey": cred()}).json() == {"version": "2.15.0"}
    refused = client.get(f"{zap}/JSON/core/view/version/", headers={"X-ZAP-API-Key": cred("bad")})
    # ZAP with api.reportpermerrors: 400 and ApiException's JSON (never 401/403)
    assert refused.status_code == 400
    assert refused.json() == {"code": "bad_api_key", "message": "Invalid or missing API key"}
    alerts = client.get(f"{zap}/JSON/alert/view/alerts/", headers={"X-ZAP-API-Key": cred()}).json()["alerts"]
    assert alerts[0]["risk"] == "Medium"
