"""Jenkins remote access API over real HTTP."""

from __future__ import annotations

import io
import json
import zipfile

import httpx

from pmap_sandbox.server import SandboxServer

from .conftest import basic, cred, vendor_url


def url(sandbox: SandboxServer, path: str) -> str:
    return vendor_url(sandbox, "jenkins") + path


def auth(marker: str = "ok") -> dict[str, str]:
    return basic("pmap", cred(marker))


def test_version_header_and_jobs(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(url(sandbox, "/api/json"), headers=auth())
    assert response.status_code == 200
    assert response.headers["X-Jenkins"] == "2.479.3"
    assert response.json()["useSecurity"] is True
    assert [j["name"] for j in response.json()["jobs"]] == ["webapp-security"]


def test_anonymous_is_403_and_bad_token_is_401(sandbox: SandboxServer, client: httpx.Client) -> None:
    anonymous = client.get(url(sandbox, "/api/json"))
    assert anonymous.status_code == 403
    assert anonymous.headers["X-You-Are-Authenticated-As"] == "anonymous"
    assert anonymous.headers["X-Required-Permission"] == "hudson.model.Hudson.Read"
    bad = client.get(url(sandbox, "/api/json"), headers=basic("pmap", cred("bad")))
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == 'Basic realm="Jenkins"'
    assert "Invalid password/token for user: pmap" in bad.text


def test_crumb_and_who_am_i(sandbox: SandboxServer, client: httpx.Client) -> None:
    crumb = client.get(url(sandbox, "/crumbIssuer/api/json"), headers=auth())
    assert crumb.json()["crumbRequestField"] == "Jenkins-Crumb" and len(crumb.json()["crumb"]) == 64
    assert any(name.startswith("JSESSIONID.") for name in crumb.cookies)
    me = client.get(url(sandbox, "/whoAmI/api/json"), headers=basic("alice", cred())).json()
    assert me["name"] == "alice" and me["authenticated"] is True and me["anonymous"] is False


def test_who_am_i_answers_anonymous_callers(sandbox: SandboxServer, client: httpx.Client) -> None:
    # hudson.security.WhoAmI is an UnprotectedRootAction: no 403, it names the anonymous user
    response = client.get(url(sandbox, "/whoAmI/api/json"))
    assert response.status_code == 200 and response.headers["X-Jenkins"] == "2.479.3"
    me = response.json()
    assert me["anonymous"] is True and me["name"] == "anonymous"
    assert set(me) == {"_class", "anonymous", "authenticated", "authorities", "details", "name", "toString"}


def test_build_and_artifacts(sandbox: SandboxServer, client: httpx.Client) -> None:
    build = client.get(url(sandbox, "/job/webapp-security/lastSuccessfulBuild/api/json"), headers=auth()).json()
    assert build["result"] == "SUCCESS" and build["number"] == 7
    path = build["artifacts"][0]["relativePath"]
    sarif = client.get(url(sandbox, f"/job/webapp-security/7/artifact/{path}"), headers=auth())
    assert json.loads(sarif.content)["version"] == "2.1.0"
    archive = client.get(url(sandbox, "/job/webapp-security/7/artifact/*zip*/archive.zip"), headers=auth())
    assert zipfile.ZipFile(io.BytesIO(archive.content)).namelist() == [f"archive/{path}"]
    running = client.get(url(sandbox, "/job/webapp-security/lastBuild/api/json"), headers=auth()).json()
    assert running["building"] is True and running["result"] is None
    assert client.get(url(sandbox, "/job/webapp-security/99/api/json"), headers=auth()).status_code == 404


def test_trigger_build_needs_no_crumb_with_api_token(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.post(url(sandbox, "/job/webapp-security/build"), headers=auth())
    assert response.status_code == 201 and "/queue/item/" in response.headers["Location"]


def test_noperm_sees_no_jobs_and_only_admin_reads_plugins(sandbox: SandboxServer, client: httpx.Client) -> None:
    weak = auth("noperm")
    assert client.get(url(sandbox, "/api/json"), headers=weak).json()["jobs"] == []
    assert client.get(url(sandbox, "/job/webapp-security/api/json"), headers=weak).status_code == 404
    denied = client.get(url(sandbox, "/pluginManager/api/json"), headers=auth())
    assert denied.status_code == 403
    assert denied.headers["X-Required-Permission"] == "hudson.model.Hudson.Administer"
    assert client.get(url(sandbox, "/pluginManager/api/json"), headers=auth("admin")).status_code == 200
