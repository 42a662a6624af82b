"""Vendor behaviour the shared sandbox does not simulate, served by a small app of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from pmap.connectors.base import TicketRequest
from pmap.core.errors import UpstreamError
from pmap.core.settings import Settings
from pmap_sandbox.server import SandboxServer
from pmap_sandbox.work._artifacts import sarif_report, zip_of

from .cases import implementation, unique
from .conftest import context


def _quirks_app() -> FastAPI:
    app = FastAPI()
    app.state.created = []
    app.state.blob_requests = []
    app.state.gitlab_test_answer = {}
    app.state.ado_versions = []
    app.state.ado_reads = 0

    @app.post("/jira/rest/api/3/issue")
    async def create_issue(request: Request) -> JSONResponse:
        fields: dict[str, Any] = (await request.json())["fields"]
        if "priority" in fields:  # the field is not on this project's create screen
            return JSONResponse({"errorMessages": [], "errors": {
                "priority": "Field 'priority' cannot be set. It is not on the appropriate screen, or unknown."}},
                status_code=400)
        app.state.created.append(fields)
        return JSONResponse({"id": "10001", "key": "SEC-1", "self": "x"}, status_code=201)

    @app.get("/github/repos/acme/webapp/actions/runs")
    async def runs() -> JSONResponse:
        return JSONResponse({"total_count": 1, "workflow_runs": [{"id": 7, "status": "completed",
                                                                  "path": ".github/workflows/codeql.yml@main"}]})

    @app.get("/github/repos/acme/webapp/actions/runs/7/artifacts")
    async def artifacts(request: Request) -> JSONResponse:
        url = f"{request.base_url}github/repos/acme/webapp/actions/artifacts/70/zip"
        return JSONResponse({"total_count": 1, "artifacts": [{"id": 70, "name": "sarif", "expired": False,
                                                              "size_in_bytes": 10, "archive_download_url": url}]})

    @app.get("/github/repos/acme/webapp/actions/artifacts/70/zip")
    async def archive(request: Request) -> RedirectResponse:
        # GitHub.com hands archives out from a storage host, behind a short-lived pre-signed URL
        storage = str(request.base_url).replace("127.0.0.1", "localhost")
        return RedirectResponse(f"{storage}blob/sarif.zip?sig=abc", status_code=302)

    @app.get("/blob/sarif.zip")
    async def blob(request: Request) -> Response:
        app.state.blob_requests.append({**dict(request.headers), "_hostname": request.url.hostname})
        return Response(zip_of({"codeql.sarif": sarif_report("CodeQL")}), media_type="application/zip")

    @app.post("/gitlab/projects/1/hooks/5/test/issues_events")
    async def gitlab_hook_test() -> JSONResponse:
        return JSONResponse(app.state.gitlab_test_answer, status_code=422)

    @app.post("/ado/_apis/hooks/testnotifications")
    async def ado_test(request: Request) -> JSONResponse:
        app.state.ado_versions.append(request.query_params.get("api-version"))
        return JSONResponse({"id": 9, "subscriptionId": _SUB, "status": "queued", "result": "pending"})

    @app.get(f"/ado/_apis/hooks/subscriptions/{_SUB}/notifications/9")
    async def ado_notification(request: Request) -> JSONResponse:
        app.state.ado_versions.append(request.query_params.get("api-version"))
        app.state.ado_reads += 1
        if app.state.ado_reads < 2:
            return JSONResponse({"id": 9, "status": "processing", "result": "pending"})
        return JSONResponse({"id": 9, "status": "completed", "result": "failed",
                             "details": {"errorMessage": "The remote name could not be resolved", "response": None}})

    return app


_SUB = "0d8f2b8e-7d6c-4e1a-9c55-3b8f0a1e2d44"


@pytest.fixture(scope="module")
def quirks() -> Iterator[SandboxServer]:
    with SandboxServer(_quirks_app()) as server:
        yield server


def test_jira_drops_a_priority_the_project_does_not_take(quirks: SandboxServer, dev_settings: Settings) -> None:
    connection = {"base_url": f"{quirks.base_url}/jira", "project_key": "SEC"}
    credentials = {"email": unique("user"), "api_token": unique("ok")}
    ref = implementation("jira_cloud").create_ticket(
        context(dev_settings, "jira_cloud", connection, credentials),
        TicketRequest(title="XSS", description="d", severity="high"))
    assert ref.key == "SEC-1"
    [created] = quirks.app.state.created
    assert "priority" not in created and created["summary"] == "XSS"


def test_github_archives_on_a_storage_host_are_fetched_without_the_token(quirks: SandboxServer,
                                                                         dev_settings: Settings) -> None:
    connection = {"base_url": f"{quirks.base_url}/github", "repository": "acme/webapp"}
    token = unique("ok")
    reports = implementation("github").fetch_pipeline_reports(
        context(dev_settings, "github", connection, {"token": token}))
    assert len(reports) == 1 and reports[0].name.endswith("codeql.sarif") and b"CodeQL" in reports[0].content
    [seen] = quirks.app.state.blob_requests
    assert seen["_hostname"] == "localhost"  # another host than the API's
    assert "authorization" not in seen and not any(token in str(v) for v in seen.values())


@pytest.mark.parametrize(("message", "answered"), [
    ("", True),  # the receiver refused with an empty body
    ('{"error": {"code": "authentication_required", "message": "webhook delivery rejected"}}', True),
    ("Ensure the project has issues.", False),  # GitLab's test service refused before sending
    ("Failed to open TCP connection to 127.0.0.1:9 (Connection refused)", False),
])
def test_gitlab_hook_test_422_carries_the_receivers_body_not_its_status(quirks: SandboxServer, dev_settings: Settings,
                                                                        message: str, answered: bool) -> None:
    quirks.app.state.gitlab_test_answer = {"message": message}
    connection = {"base_url": f"{quirks.base_url}/gitlab", "project": "1"}
    ctx = context(dev_settings, "gitlab_issues", connection, {"private_token": unique("ok")})
    impl = implementation("gitlab_issues")
    if answered:
        impl.ping_webhook(ctx, "5")  # it arrived: PMAP's own delivery log says why it was refused
        return
    with pytest.raises(UpstreamError) as caught:
        impl.ping_webhook(ctx, "5")
    assert caught.value.step == "response" and message in caught.value.message


def test_azure_test_notification_is_a_preview_resource_read_until_it_completes(quirks: SandboxServer,
                                                                               dev_settings: Settings) -> None:
    connection = {"base_url": f"{quirks.base_url}/ado", "project": "Security"}
    ctx = context(dev_settings, "azure_boards", connection, {"personal_access_token": unique("ok")})
    with pytest.raises(UpstreamError) as caught:
        implementation("azure_boards").ping_webhook(ctx, _SUB)
    assert caught.value.step == "response" and "could not be resolved" in caught.value.message
    assert quirks.app.state.ado_reads == 2
    assert set(quirks.app.state.ado_versions) == {"7.1-preview.1"}
