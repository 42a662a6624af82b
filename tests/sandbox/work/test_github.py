"""GitHub issues, Actions and repository hooks over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from pmap_sandbox.server import SandboxServer

from .conftest import Receiver, bearer, cred, vendor_url


def api(sandbox: SandboxServer, path: str, key: str = "github_issues") -> str:
    return vendor_url(sandbox, key) + path


@pytest.mark.parametrize(("marker", "scopes"), [
    ("ok", "repo"), ("noperm", "read:user"), ("admin", "admin:org, admin:repo_hook, delete_repo, repo, workflow")])
def test_user_reports_token_scopes(sandbox: SandboxServer, client: httpx.Client, marker: str, scopes: str) -> None:
    response = client.get(api(sandbox, "/user"), headers=bearer(cred(marker)))
    assert response.status_code == 200
    assert response.headers["X-OAuth-Scopes"] == scopes
    assert response.json()["login"] == "pmap-bot"


def test_token_expiry_header_and_expired_token(sandbox: SandboxServer, client: httpx.Client) -> None:
    soon = client.get(api(sandbox, "/user"), headers=bearer(cred("expiring")))
    expiry = datetime.strptime(soon.headers["GitHub-Authentication-Token-Expiration"], "%Y-%m-%d %H:%M:%S UTC")
    assert timedelta(days=9) < expiry.replace(tzinfo=UTC) - datetime.now(UTC) <= timedelta(days=10)
    assert "GitHub-Authentication-Token-Expiration" not in client.get(
        api(sandbox, "/user"), headers=bearer(cred())).headers
    expired = client.get(api(sandbox, "/user"), headers=bearer(cred("expired")))
    assert expired.status_code == 401 and expired.json()["message"] == "Bad credentials"


def test_token_scheme_and_missing_auth(sandbox: SandboxServer, client: httpx.Client) -> None:
    assert client.get(api(sandbox, "/user"), headers={"Authorization": f"token {cred()}"}).status_code == 200
    missing = client.get(api(sandbox, "/user"))
    assert missing.status_code == 401 and missing.json()["message"] == "Requires authentication"


def test_issue_create_get_close(sandbox: SandboxServer, client: httpx.Client) -> None:
    auth = bearer(cred())
    created = client.post(api(sandbox, "/repos/acme/webapp/issues"), headers=auth,
                          json={"title": "Dependabot: bump lodash", "body": "CVE-2021-23337", "labels": ["security"]})
    assert created.status_code == 201
    number = created.json()["number"]
    assert created.headers["Location"].endswith(f"/repos/acme/webapp/issues/{number}")
    issue = client.get(api(sandbox, f"/repos/acme/webapp/issues/{number}"), headers=auth).json()
    assert issue["state"] == "open" and issue["labels"][0]["name"] == "security"
    closed = client.patch(api(sandbox, f"/repos/acme/webapp/issues/{number}"), headers=auth,
                          json={"state": "closed", "state_reason": "completed"}).json()
    assert closed["state"] == "closed" and closed["closed_at"]
    listed = client.get(api(sandbox, "/repos/acme/webapp/issues"), headers=auth, params={"state": "closed"}).json()
    assert number in [i["number"] for i in listed]
    comment = client.post(api(sandbox, f"/repos/acme/webapp/issues/{number}/comments"), headers=auth,
                          json={"body": "Fixed"})
    assert comment.status_code == 201


def test_issue_validation_and_hidden_private_repos(sandbox: SandboxServer, client: httpx.Client) -> None:
    no_title = client.post(api(sandbox, "/repos/acme/webapp/issues"), headers=bearer(cred()), json={"body": "x"})
    assert no_title.status_code == 422 and "title" in no_title.json()["message"]
    number = client.post(api(sandbox, "/repos/acme/webapp/issues"), headers=bearer(cred()),
                         json={"title": "t"}).json()["number"]
    bad_state = client.patch(api(sandbox, f"/repos/acme/webapp/issues/{number}"), headers=bearer(cred()),
                             json={"state": "done"})
    assert bad_state.status_code == 422 and bad_state.json()["errors"][0]["field"] == "state"
    weak = client.post(api(sandbox, "/repos/acme/webapp/issues"), headers=bearer(cred("noperm")), json={"title": "t"})
    assert weak.status_code == 404 and weak.headers["X-Accepted-OAuth-Scopes"] == "repo"
    assert client.get(api(sandbox, "/repos/acme/nope"), headers=bearer(cred())).status_code == 404


def test_repo_permissions(sandbox: SandboxServer, client: httpx.Client) -> None:
    normal = client.get(api(sandbox, "/repos/acme/api"), headers=bearer(cred())).json()["permissions"]
    admin = client.get(api(sandbox, "/repos/acme/api"), headers=bearer(cred("admin"))).json()["permissions"]
    assert (normal["admin"], normal["push"], admin["admin"]) == (False, True, True)


def test_workflow_runs_and_artifact_download(sandbox: SandboxServer, client: httpx.Client) -> None:
    auth = bearer(cred())
    runs = client.get(api(sandbox, "/repos/acme/webapp/actions/runs", "github_actions"), headers=auth,
                      params={"status": "success"}).json()
    assert runs["total_count"] == 1 and runs["workflow_runs"][0]["conclusion"] == "success"
    # the REST reference's workflow-run example names the ref the file was read from
    assert runs["workflow_runs"][0]["path"] == ".github/workflows/codeql.yml@main"
    artifacts = client.get(runs["workflow_runs"][0]["artifacts_url"], headers=auth).json()["artifacts"]
    live = next(a for a in artifacts if not a["expired"])
    redirect = client.get(live["archive_download_url"], headers=auth)
    assert redirect.status_code == 302
    location = httpx.URL(redirect.headers["Location"])
    assert location.host != httpx.URL(live["archive_download_url"]).host  # the storage host, as on GitHub.com
    refused = client.get(location, headers=auth)  # a second credential beside the signature
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/xml")
    assert "<Code>AuthenticationFailed</Code>" in refused.text  # Azure Blob Storage's answer, as GitHub users see it
    blob = client.get(location)  # a pre-signed URL: no credentials
    assert blob.status_code == 200 and blob.headers["content-type"] == "application/zip"
    sarif = json.loads(zipfile.ZipFile(io.BytesIO(blob.content)).read("results.sarif"))
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == 1
    assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == live["digest"]
    old = next(a for a in artifacts if a["expired"])
    gone = client.get(old["archive_download_url"], headers=auth)
    assert gone.status_code == 410 and gone.json()["message"] == "Artifact has expired"


def _verify_github(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-hub-signature-256"], expected)


def test_hook_register_and_ping_delivers_a_signed_ping(sandbox: SandboxServer, client: httpx.Client,
                                                       receiver: Receiver) -> None:
    auth = bearer(cred())
    secret = "gh-hook-secret-0001"
    created = client.post(api(sandbox, "/repos/acme/webapp/hooks"), headers=auth, json={
        "name": "web", "active": True, "events": ["issues", "push"],
        "config": {"url": receiver.url, "content_type": "json", "secret": secret, "insecure_ssl": "0"}})
    assert created.status_code == 201
    hook = created.json()
    assert hook["config"]["secret"] == "********" and hook["last_response"]["status"] == "unused"
    duplicate = client.post(api(sandbox, "/repos/acme/webapp/hooks"), headers=auth,
                            json={"config": {"url": receiver.url}})
    assert duplicate.status_code == 422

    assert client.post(hook["ping_url"], headers=auth).status_code == 204
    got = receiver.wait_for(1)[0]
    assert got.headers["x-github-event"] == "ping"
    assert got.headers["x-github-hook-id"] == str(hook["id"])
    assert _verify_github(secret, got.body, got.headers)
    assert json.loads(got.body)["hook_id"] == hook["id"]

    after = client.get(hook["url"], headers=auth).json()
    assert after["last_response"] == {"code": 200, "status": "active", "message": "OK"}
    deliveries = client.get(hook["deliveries_url"], headers=auth).json()
    assert deliveries[0]["guid"] == got.headers["x-github-delivery"] and deliveries[0]["event"] == "ping"


def test_form_hook_and_unsigned_hook(sandbox: SandboxServer, client: httpx.Client, receiver: Receiver) -> None:
    auth = bearer(cred())
    form = client.post(api(sandbox, "/repos/acme/api/hooks"), headers=auth,
                       json={"config": {"url": receiver.url + "/form", "secret": "form-secret-0001"}}).json()
    assert form["config"]["content_type"] == "form"
    assert client.post(form["url"] + "/tests", headers=auth).status_code == 204  # sends a push event
    got = receiver.wait_for(1)[0]
    assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    assert got.headers["x-github-event"] == "push"
    assert _verify_github("form-secret-0001", got.body, got.headers)
    assert json.loads(parse_qs(got.body.decode())["payload"][0])["ref"] == "refs/heads/main"

    bare = client.post(api(sandbox, "/repos/acme/api/hooks"), headers=auth,
                       json={"config": {"url": receiver.url + "/bare", "content_type": "json"}}).json()
    client.post(bare["ping_url"], headers=auth)
    unsigned = receiver.wait_for(2)[1]
    assert "x-hub-signature-256" not in unsigned.headers and unsigned.headers["x-github-event"] == "ping"


def test_hooks_are_hidden_from_noperm(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(api(sandbox, "/repos/acme/webapp/hooks"), headers=bearer(cred("noperm")))
    assert response.status_code == 404
    assert "admin:repo_hook" in response.headers["X-Accepted-OAuth-Scopes"]
