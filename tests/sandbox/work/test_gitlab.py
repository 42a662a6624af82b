"""GitLab issues, CI and project hooks over real HTTP."""

from __future__ import annotations

import hmac
import io
import json
import socket
import zipfile
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from pmap_sandbox.server import SandboxServer

from .conftest import Receiver, bearer, cred, vendor_url


def api(sandbox: SandboxServer, path: str, key: str = "gitlab_issues") -> str:
    return vendor_url(sandbox, key) + path


def token(marker: str = "ok") -> dict[str, str]:
    return {"PRIVATE-TOKEN": cred(marker)}


@pytest.mark.parametrize(("marker", "scopes"), [("ok", ["api"]), ("noperm", ["read_user"]),
                                                ("admin", ["api", "sudo", "admin_mode"])])
def test_token_self_reports_scopes(sandbox: SandboxServer, client: httpx.Client, marker: str,
                                   scopes: list[str]) -> None:
    body = client.get(api(sandbox, "/personal_access_tokens/self"), headers=token(marker)).json()
    assert body["scopes"] == scopes
    assert body["active"] is True and body["revoked"] is False


def test_expiring_and_expired_tokens(sandbox: SandboxServer, client: httpx.Client) -> None:
    soon = client.get(api(sandbox, "/personal_access_tokens/self"), headers=token("expiring")).json()
    assert date.fromisoformat(soon["expires_at"]) - datetime.now(UTC).date() == timedelta(days=10)
    expired = client.get(api(sandbox, "/version"), headers=token("expired"))
    assert expired.status_code == 401
    assert expired.json() == {"error": "invalid_token", "error_description": "Token has expired."}


def test_version_user_and_bearer(sandbox: SandboxServer, client: httpx.Client) -> None:
    version = client.get(api(sandbox, "/version"), headers=bearer(cred())).json()
    assert version["version"].endswith("-ee") and version["enterprise"] is True
    user = client.get(api(sandbox, "/user"), headers=token()).json()
    assert user["username"] == "pmap-bot" and "is_admin" not in user
    assert client.get(api(sandbox, "/user"), headers=token("admin")).json()["is_admin"] is True
    missing = client.get(api(sandbox, "/user"))
    assert missing.status_code == 401 and missing.json() == {"message": "401 Unauthorized"}


def test_noperm_token_lacks_scope_for_projects(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(api(sandbox, "/projects/1/issues"), headers=token("noperm"))
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"


def test_project_by_encoded_path_and_access_level(sandbox: SandboxServer, client: httpx.Client) -> None:
    project = client.get(api(sandbox, "/projects/acme%2Fwebapp"), headers=token()).json()
    assert project["id"] == 1 and project["permissions"]["project_access"]["access_level"] == 40
    assert client.get(api(sandbox, "/projects/9999"), headers=token()).json() == {"message": "404 Project Not Found"}


def test_issue_create_update_close(sandbox: SandboxServer, client: httpx.Client) -> None:
    created = client.post(api(sandbox, "/projects/acme%2Fapi/issues"), headers=token(),
                          data={"title": "CVE-2023-44487 in nginx", "labels": "security,pmap"})
    assert created.status_code == 201
    issue = created.json()
    assert issue["state"] == "opened" and issue["labels"] == ["security", "pmap"]
    closed = client.put(api(sandbox, f"/projects/2/issues/{issue['iid']}"), headers=token(),
                        json={"state_event": "close", "add_labels": "fixed"}).json()
    assert closed["state"] == "closed" and "fixed" in closed["labels"] and closed["closed_at"]
    note = client.post(api(sandbox, f"/projects/2/issues/{issue['iid']}/notes"), headers=token(), json={"body": "ok"})
    assert note.status_code == 201
    again = client.get(api(sandbox, f"/projects/2/issues/{issue['iid']}"), headers=token()).json()
    assert again["user_notes_count"] == 1
    missing = client.post(api(sandbox, "/projects/2/issues"), headers=token(), json={"description": "x"})
    assert missing.status_code == 400 and missing.json() == {"error": "title is missing"}
    bad = client.put(api(sandbox, f"/projects/2/issues/{issue['iid']}"), headers=token(), json={"state_event": "done"})
    assert bad.status_code == 400


def test_pipelines_jobs_and_artifacts(sandbox: SandboxServer, client: httpx.Client) -> None:
    auth = token()
    pipelines = client.get(api(sandbox, "/projects/1/pipelines", "gitlab_ci"), headers=auth,
                           params={"status": "success"})
    assert pipelines.headers["X-Total"] == "1"
    pipeline = pipelines.json()[0]
    jobs = client.get(api(sandbox, f"/projects/1/pipelines/{pipeline['id']}/jobs", "gitlab_ci"), headers=auth).json()
    sast = next(j for j in jobs if any(a["file_type"] == "sast" for a in j["artifacts"]))
    report = client.get(api(sandbox, f"/projects/1/jobs/{sast['id']}/artifacts/gl-sast-report.json", "gitlab_ci"),
                        headers=auth)
    assert report.status_code == 200 and json.loads(report.content)["vulnerabilities"][0]["severity"] == "High"
    archive = client.get(api(sandbox, f"/projects/1/jobs/{sast['id']}/artifacts", "gitlab_ci"), headers=auth)
    assert zipfile.ZipFile(io.BytesIO(archive.content)).namelist() == ["gl-sast-report.json"]
    by_ref = client.get(api(sandbox, "/projects/1/jobs/artifacts/main/download", "gitlab_ci"), headers=auth,
                        params={"job": "semgrep-sast"})
    assert by_ref.content == archive.content
    build = next(j for j in jobs if not j["artifacts"])
    assert client.get(api(sandbox, f"/projects/1/jobs/{build['id']}/artifacts", "gitlab_ci"),
                      headers=auth).status_code == 404


def test_hook_register_and_test_delivers_the_token(sandbox: SandboxServer, client: httpx.Client,
                                                   receiver: Receiver) -> None:
    secret = "gl-hook-token-0001"
    created = client.post(api(sandbox, "/projects/1/hooks"), headers=token(),
                          json={"url": receiver.url, "token": secret, "issues_events": True, "push_events": False})
    assert created.status_code == 201
    hook = created.json()
    assert "token" not in hook and hook["issues_events"] is True and hook["push_events"] is False
    listed = client.get(api(sandbox, "/projects/1/hooks"), headers=token()).json()
    assert hook["id"] in [h["id"] for h in listed]

    test_url = api(sandbox, f"/projects/1/hooks/{hook['id']}/test/issues_events")
    if not client.get(api(sandbox, "/projects/1/issues"), headers=token()).json():
        # GitLab builds the test event from the project's first issue, and refuses without one
        refused = client.post(test_url, headers=token())
        assert refused.status_code == 422 and refused.json() == {"message": "Ensure the project has issues."}
        assert not receiver.deliveries
        client.post(api(sandbox, "/projects/1/issues"), headers=token(), json={"title": "Hook test"})
    tested = client.post(test_url, headers=token())
    assert tested.status_code == 201 and tested.json() == {"message": "201 Created"}
    got = receiver.wait_for(1)[0]
    assert hmac.compare_digest(got.headers["x-gitlab-token"], secret)
    assert got.headers["x-gitlab-event"] == "Issue Hook"
    assert got.headers["idempotency-key"] and got.headers["idempotency-key"] != got.headers["x-gitlab-webhook-uuid"]
    assert json.loads(got.body)["object_kind"] == "issue"

    invalid = client.post(api(sandbox, f"/projects/1/hooks/{hook['id']}/test/bogus_events"), headers=token())
    assert invalid.status_code == 400


def test_hook_test_reports_a_failing_receiver(sandbox: SandboxServer, client: httpx.Client,
                                              receiver: Receiver) -> None:
    receiver.status = 500
    hook = client.post(api(sandbox, "/projects/2/hooks"), headers=token(), data={"url": receiver.url}).json()
    failed = client.post(api(sandbox, f"/projects/2/hooks/{hook['id']}/test/push_events"), headers=token())
    # the receiver's (empty) body is the message; its status shows only in the hook's log
    assert failed.status_code == 422 and failed.json() == {"message": ""}
    assert receiver.wait_for(1)[0].headers["x-gitlab-event"] == "Push Hook"
    assert "x-gitlab-token" not in receiver.deliveries[0].headers  # registered without a token
    [log] = client.get(api(sandbox, f"/projects/2/hooks/{hook['id']}/events"), headers=token()).json()
    assert log["response_status"] == "500" and log["trigger"] == "push_hooks" and log["response_body"] == ""


def test_hook_test_names_the_connection_error(sandbox: SandboxServer, client: httpx.Client) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    hook = client.post(api(sandbox, "/projects/2/hooks"), headers=token(),
                       data={"url": f"http://127.0.0.1:{closed_port}/hook"}).json()
    failed = client.post(api(sandbox, f"/projects/2/hooks/{hook['id']}/test/push_events"), headers=token())
    assert failed.status_code == 422 and failed.json()["message"]
    [log] = client.get(api(sandbox, f"/projects/2/hooks/{hook['id']}/events"), headers=token()).json()
    assert log["response_status"] == "internal error"
