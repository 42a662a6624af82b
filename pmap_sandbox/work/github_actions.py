"""GitHub Actions: workflow runs and their artifacts.

``GET .../actions/artifacts/{id}/zip`` answers ``302`` with a ``Location`` to short-lived blob
storage on another host, as GitHub does. Here the "storage host" is the same loopback server under
another name (``localhost`` when the API was called as ``127.0.0.1``, and the reverse), path
``/<vendor_key>/_blobs/...``: the URL authorizes itself, and like pre-signed storage URLs it refuses
a request that also carries an ``Authorization`` header (so a client that forwards its token to the
storage host is caught) with Azure Blob Storage's own answer: 403 ``<Error><Code>AuthenticationFailed</Code>
<Message>Server failed to authenticate the request. ...`` as reported for GitHub artifact downloads in
project-chip/connectedhomeip#32656, cloudflare/workers-sdk#4816 and XAMPPRocky/octocrab#562 (a
malformed ``Authorization`` can also draw 400 ``InvalidAuthenticationInfo``, rapid7/metakitty#30).
An expired artifact answers 410.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import github_store as store
from pmap_sandbox.work._base import Reply, state
from pmap_sandbox.work.github import GhCall, authenticate, find_repo, gh_error, gh_state, paginate

ACCEPTED = "repo"
# Azure Blob Storage's refusal of a signed URL fetched with an Authorization header (see the docstring)
_AUTH_FAILED = ('<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server '
                "failed to authenticate the request. Make sure the value of Authorization header is formed correctly "
                "including the signature.\nRequestId:00000000-0000-0000-0000-000000000000\n"
                "Time:2024-01-01T00:00:00.0000000Z</Message></Error>")


def _run(call: GhCall, request: Request, repo: store.Repo, run_id: int) -> store.Run:
    run = gh_state(call, request).runs.get(run_id)
    if run is None or run.repo != repo:
        raise Reply(gh_error(404, "Not Found", call.headers(ACCEPTED)))
    return run


def _storage_base(request: Request, key: str) -> str:
    """The blob URL base: this server under another host name (a different host to the client)."""
    url = request.base_url
    other = "localhost" if url.hostname != "localhost" else "127.0.0.1"
    return f"{str(url.replace(hostname=other)).rstrip('/')}/{key}"


def register(router: APIRouter, key: str) -> None:
    """Add the workflow run and artifact routes."""
    prefix = "/repos/{owner}/{name}/actions"

    @router.get(prefix + "/runs")
    async def list_runs(request: Request, owner: str, name: str) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name)
        query = request.query_params
        runs = [r for r in sorted(gh_state(call, request).runs.values(), key=lambda r: r.id, reverse=True)
                if r.repo == repo
                and query.get("status") in (None, r.status, r.conclusion)
                and query.get("branch") in (None, "main")
                and query.get("event") in (None, "push")
                and query.get("head_sha") in (None, store.SHA)]
        page, headers = paginate(request, [store.run_json(call.api, r) for r in runs])
        return call.reply(200, {"total_count": len(runs), "workflow_runs": page}, ACCEPTED, headers)

    @router.get(prefix + "/runs/{run_id}")
    async def get_run(request: Request, owner: str, name: str, run_id: int) -> Response:
        call = await authenticate(key, request)
        run = _run(call, request, find_repo(call, request, owner, name), run_id)
        return call.reply(200, store.run_json(call.api, run), ACCEPTED)

    @router.get(prefix + "/runs/{run_id}/artifacts")
    async def list_run_artifacts(request: Request, owner: str, name: str, run_id: int) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name)
        run = _run(call, request, repo, run_id)
        wanted = request.query_params.get("name")
        items = [store.artifact_json(call.api, repo, a) for a in run.artifacts if wanted in (None, a.name)]
        page, headers = paginate(request, items)
        return call.reply(200, {"total_count": len(items), "artifacts": page}, ACCEPTED, headers)

    @router.get(prefix + "/artifacts")
    async def list_artifacts(request: Request, owner: str, name: str) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name)
        wanted = request.query_params.get("name")
        items = [store.artifact_json(call.api, repo, a) for r in gh_state(call, request).runs.values()
                 if r.repo == repo for a in r.artifacts if wanted in (None, a.name)]
        page, headers = paginate(request, items)
        return call.reply(200, {"total_count": len(items), "artifacts": page}, ACCEPTED, headers)

    @router.get(prefix + "/artifacts/{artifact_id}")
    async def get_artifact(request: Request, owner: str, name: str, artifact_id: int) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name)
        artifact = gh_state(call, request).artifact(repo, artifact_id)
        if artifact is None:
            return gh_error(404, "Not Found", call.headers(ACCEPTED))
        return call.reply(200, store.artifact_json(call.api, repo, artifact), ACCEPTED)

    @router.get(prefix + "/artifacts/{artifact_id}/{archive_format}")
    async def download_artifact(request: Request, owner: str, name: str, artifact_id: int,
                                archive_format: str) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name)
        artifact = gh_state(call, request).artifact(repo, artifact_id)
        if artifact is None or archive_format != "zip":
            return gh_error(404, "Not Found", call.headers(ACCEPTED))
        if artifact.expired:
            return gh_error(410, "Artifact has expired", call.headers(ACCEPTED))
        token = secrets.token_urlsafe(24)
        gh_state(call, request).blobs[token] = artifact.content
        location = f"{_storage_base(request, key)}/_blobs/{token}/{artifact.name}.zip"
        return Response(status_code=302, headers={**call.headers(ACCEPTED), "Location": location})

    @router.get("/_blobs/{token}/{filename}")
    async def blob(request: Request, token: str, filename: str) -> Response:
        data = state(request, key, store.GitHubState)
        data.blob_requests.append({k.lower(): v for k, v in request.headers.items()})
        content = data.blobs.get(token)
        # blob storage's own answers, not the API's: an unknown or expired signature, or a second
        # credential beside the signature, is refused
        if content is None or "authorization" in request.headers:
            return Response(_AUTH_FAILED, status_code=403, media_type="application/xml")
        return Response(content, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
