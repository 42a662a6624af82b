"""Azure Pipelines: pipelines, runs and run artifacts (Pipelines API and Build artifacts API).

Pipeline 12 (``security-scan``) has a succeeded run 345 that published ``CodeAnalysisLogs`` (a SARIF
log, the convention of the SARIF SAST Scans Tab) and a run 346 still in progress. A run id is also
its build id. ``$expand=signedContent`` yields a pre-signed download URL (here on the sandbox host,
served without credentials); the Build API's ``downloadUrl`` with ``$format=zip`` returns the zip.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work._artifacts import sarif_report, zip_of
from pmap_sandbox.work._base import Reply, base_url, iso_z, json_response, now, state
from pmap_sandbox.work.azure_devops import (
    PROJECT_ID,
    AdoCall,
    authenticate,
    check_project,
    require_version,
    vss_error,
)

PIPELINE_ID = 12
PIPELINE_NAME = "security-scan"
RUNS = {345: ("completed", "succeeded"), 346: ("inProgress", None)}
ARTIFACT = "CodeAnalysisLogs"


class Pipelines:
    """Artifacts content and pre-signed blobs (per server, per vendor key)."""

    def __init__(self) -> None:
        self.artifacts = {345: {ARTIFACT: zip_of({f"{ARTIFACT}/semgrep.sarif": sarif_report("Semgrep OSS")})}}
        self.blobs: dict[str, bytes] = {}
        self.created = now() - timedelta(days=1)


def _pipeline_json(call: AdoCall) -> dict[str, Any]:
    url = f"{call.project_url()}/_apis/pipelines/{PIPELINE_ID}?revision=3"
    return {"url": url, "id": PIPELINE_ID, "revision": 3, "name": PIPELINE_NAME, "folder": "\\",
            "_links": {"self": {"href": url},
                       "web": {"href": f"{call.root}/{PROJECT_ID}/_build/definition?definitionId={PIPELINE_ID}"}}}


def _run_json(call: AdoCall, data: Pipelines, run_id: int) -> dict[str, Any]:
    run_state, result = RUNS[run_id]
    url = f"{call.project_url()}/_apis/pipelines/{PIPELINE_ID}/runs/{run_id}"
    created = data.created + timedelta(hours=run_id - 345)
    body: dict[str, Any] = {
        "_links": {"self": {"href": url}, "web": {"href": f"{call.root}/{PROJECT_ID}/_build/results?buildId={run_id}"},
                   "pipeline.web": {"href": _pipeline_json(call)["_links"]["web"]["href"]},
                   "pipeline": {"href": _pipeline_json(call)["url"]}},
        "pipeline": {k: v for k, v in _pipeline_json(call).items() if k != "_links"},
        "state": run_state, "createdDate": iso_z(created), "url": url, "id": run_id,
        "name": f"{created.strftime('%Y%m%d')}.{run_id - 344}",
        "resources": {"repositories": {"self": {"repository": {"id": "2f3d5c6e-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
                                                               "type": "azureReposGit"},
                                                "refName": "refs/heads/main",
                                                "version": "b83d6e391c22777fca1ed3012fce84f633d7fed0"}}},
    }
    if result:
        body.update(result=result, finishedDate=iso_z(created + timedelta(minutes=6)))
    return body


def _build_json(run_id: int) -> dict[str, Any]:
    """A build as Builds - List gives it (a run id is its build id): the fields PMAP reads and a few more."""
    run_state, result = RUNS[run_id]
    body: dict[str, Any] = {"id": run_id, "buildNumber": f"20261128.{run_id - 344}",
                            "status": "completed" if run_state == "completed" else "inProgress",
                            "sourceBranch": "refs/heads/main",
                            "sourceVersion": "b83d6e391c22777fca1ed3012fce84f633d7fed0",
                            "definition": {"id": PIPELINE_ID, "name": PIPELINE_NAME, "type": "build"}}
    if result:
        body["result"] = result
    return body


def _build_artifact_json(call: AdoCall, request: Request, key: str, run_id: int, name: str,
                         content: bytes) -> dict[str, Any]:
    api = f"{base_url(request, key)}/{call.org}/{PROJECT_ID}/_apis/build/builds/{run_id}/artifacts"
    return {"id": 7, "name": name, "source": "1c7a9c33-0f5e-4d7c-bc0e-5c8a1d2e3f40", "resource": {
        "type": "Container", "data": f"#/4242/{name}",
        "properties": {"localpath": f"/home/vsts/work/1/a/{name}", "artifactsize": str(len(content))},
        "url": f"{api}?artifactName={name}&api-version=7.1",
        "downloadUrl": f"{api}?artifactName={name}&api-version=7.1&%24format=zip"}}


def register(router: APIRouter, key: str) -> None:
    """Add pipeline, run and artifact routes."""
    root = "/{org}/{project}/_apis"

    def data(request: Request) -> Pipelines:
        return state(request, key, Pipelines)

    async def enter(request: Request, org: str, project: str) -> AdoCall:
        call = await authenticate(key, request, org)
        check_project(project)
        require_version(request)
        return call

    def check_run(pipeline_id: int, run_id: int | None = None) -> None:
        if pipeline_id != PIPELINE_ID or (run_id is not None and run_id not in RUNS):
            raise Reply(vss_error(404, f"Pipeline run {run_id} not found in pipeline {pipeline_id}."
                                  if run_id is not None else f"Pipeline {pipeline_id} not found.",
                                  "PipelineNotFoundException"))

    @router.get(root + "/pipelines")
    async def list_pipelines(request: Request, org: str, project: str) -> Response:
        call = await enter(request, org, project)
        return json_response(200, {"count": 1, "value": [_pipeline_json(call)]})

    @router.get(root + "/pipelines/{pipeline_id:int}/runs")
    async def list_runs(request: Request, org: str, project: str, pipeline_id: int) -> Response:
        call = await enter(request, org, project)
        check_run(pipeline_id)
        # list items carry no resources (as Runs - Get does): a client must not filter branches on them
        runs = [{k: v for k, v in _run_json(call, data(request), r).items() if k != "resources"}
                for r in sorted(RUNS, reverse=True)]
        return json_response(200, {"count": len(runs), "value": runs})

    @router.get(root + "/pipelines/{pipeline_id:int}/runs/{run_id:int}")
    async def get_run(request: Request, org: str, project: str, pipeline_id: int, run_id: int) -> Response:
        call = await enter(request, org, project)
        check_run(pipeline_id, run_id)
        return json_response(200, _run_json(call, data(request), run_id))

    @router.get(root + "/pipelines/{pipeline_id:int}/runs/{run_id:int}/artifacts")
    async def run_artifact(request: Request, org: str, project: str, pipeline_id: int, run_id: int) -> Response:
        call = await enter(request, org, project)
        check_run(pipeline_id, run_id)
        name = request.query_params.get("artifactName")
        if not name:
            return vss_error(400, "The artifactName parameter is required.", "ArgumentNullException")
        content = data(request).artifacts.get(run_id, {}).get(name)
        if content is None:
            return vss_error(404, f"Artifact {name} was not found for run {run_id}.", "ArtifactNotFoundException")
        body: dict[str, Any] = {"name": name, "url": f"{call.project_url()}/_apis/pipelines/{PIPELINE_ID}/runs/"
                                f"{run_id}/artifacts?artifactName={name}"}
        if "signedContent" in request.query_params.get("$expand", ""):
            token = secrets.token_urlsafe(24)
            data(request).blobs[token] = content
            body["signedContent"] = {"url": f"{base_url(request, key)}/_blobs/{token}",
                                     "signatureExpires": iso_z(now() + timedelta(minutes=15))}
        return json_response(200, body)

    @router.get(root + "/build/builds")
    async def list_builds(request: Request, org: str, project: str) -> Response:
        """Builds - List, with the filters PMAP uses (definitions, branchName, statusFilter, $top)."""
        await enter(request, org, project)
        q = request.query_params
        definitions = {d.strip() for d in q.get("definitions", "").split(",") if d.strip()}
        builds = [_build_json(r) for r in sorted(RUNS, reverse=True)]  # finish time descending
        builds = [b for b in builds if (not definitions or str(b["definition"]["id"]) in definitions)
                  and (not q.get("branchName") or b["sourceBranch"] == q["branchName"])
                  and (not q.get("statusFilter") or b["status"] == q["statusFilter"])]
        if q.get("$top", "").isdigit():
            builds = builds[:int(q["$top"])]
        return json_response(200, {"count": len(builds), "value": builds})

    @router.get(root + "/build/builds/{build_id:int}/artifacts")
    async def build_artifacts(request: Request, org: str, project: str, build_id: int) -> Response:
        call = await enter(request, org, project)
        artifacts = data(request).artifacts.get(build_id, {})
        if build_id not in RUNS:
            return vss_error(404, f"The requested build {build_id} could not be found.", "BuildNotFoundException")
        name = request.query_params.get("artifactName")
        if name is None:
            value = [_build_artifact_json(call, request, key, build_id, n, c) for n, c in artifacts.items()]
            return json_response(200, {"count": len(value), "value": value})
        if name not in artifacts:
            return vss_error(404, f"Artifact {name} does not exist for build {build_id}.", "ArtifactNotFoundException")
        if request.query_params.get("$format") == "zip":
            return Response(artifacts[name], media_type="application/zip",
                            headers={"Content-Disposition": f'attachment; filename="{name}.zip"'})
        return json_response(200, _build_artifact_json(call, request, key, build_id, name, artifacts[name]))

    @router.get("/_blobs/{token}")
    async def blob(request: Request, token: str) -> Response:
        content = data(request).blobs.get(token)
        if content is None:
            return Response(status_code=403)
        return Response(content, media_type="application/zip")
