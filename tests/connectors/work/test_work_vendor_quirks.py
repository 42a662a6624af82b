"""Vendor behaviour the shared sandbox does not simulate, served by a small app of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from pmap.connectors.base import TicketRequest
from pmap.core.settings import Settings
from pmap.sandbox.server import SandboxServer
from pmap.sandbox.work._artifacts import sarif_report, zip_of

from .cases import catalog_entry, unique
from .conftest import context


def _quirks_app() -> FastAPI:
    app = FastAPI()
    app.state.created = []
    app.state.blob_requests = []

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
                                                                  "path": ".github/workflows/codeql.yml"}]})

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

    return app


@pytest.fixture(scope="module")
def quirks() -> Iterator[SandboxServer]:
    with SandboxServer(_quirks_app()) as server:
        yield server


def test_jira_drops_a_priority_the_project_does_not_take(quirks: SandboxServer, dev_settings: Settings) -> None:
    connection = {"base_url": f"{quirks.base_url}/jira", "project_key": "SEC"}
    credentials = {"email": unique("user"), "api_token": unique("ok")}
    ref = catalog_entry("jira_cloud").implementation.create_ticket(
        context(dev_settings, "jira_cloud", connection, credentials),
        TicketRequest(title="XSS", description="d", severity="high"))
    assert ref.key == "SEC-1"
    [created] = quirks.app.state.created
    assert "priority" not in created and created["summary"] == "XSS"


def test_github_archives_on_a_storage_host_are_fetched_without_the_token(quirks: SandboxServer,
                                                                         dev_settings: Settings) -> None:
    connection = {"base_url": f"{quirks.base_url}/github", "repository": "acme/webapp"}
    token = unique("ok")
    reports = catalog_entry("github").implementation.fetch_pipeline_reports(
        context(dev_settings, "github", connection, {"token": token}))
    assert len(reports) == 1 and reports[0].name.endswith("codeql.sarif") and b"CodeQL" in reports[0].content
    [seen] = quirks.app.state.blob_requests
    assert seen["_hostname"] == "localhost"  # another host than the API's
    assert "authorization" not in seen and not any(token in str(v) for v in seen.values())
