"""GitLab CI: pipelines, jobs and job artifacts (whole archive, one file, or by ref and job name).

With object storage and ``proxy_download`` off (gitlab.com keeps artifacts in S3), a download answers
``302`` to a pre-signed URL on the storage host (gitlab-org/gitlab!5168: "This resource has been moved
temporarily to https://gitlab-artifacts.s3.amazonaws.com/...?X-Amz-Signature=..."). Here the storage host is
this server under another name (as for GitHub's artifacts); the signature authorizes the request, and
S3 refuses one that carries an ``Authorization`` header too with its ``InvalidArgument`` answer; the storage host
records the headers of each request it gets.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import gitlab_store as store
from pmap_sandbox.work._artifacts import zip_of
from pmap_sandbox.work._base import Reply, json_response, state
from pmap_sandbox.work.gitlab import API, GlCall, authenticate, find_project, gl_message, gl_state, paginate

FINISHED = {"success", "failed", "canceled", "skipped"}


def _pipeline(call: GlCall, request: Request, project: store.Project, pipeline_id: int) -> store.Pipeline:
    pipeline = gl_state(call, request).pipelines.get(pipeline_id)
    if pipeline is None or pipeline.project != project:
        raise Reply(gl_message(404, "404 Not found"))
    return pipeline


def _job(call: GlCall, request: Request, project: store.Project, job_id: int) -> tuple[store.Pipeline, store.Job]:
    found = gl_state(call, request).job(project, job_id)
    if found is None:
        raise Reply(gl_message(404, "404 Not found"))
    return found


def _latest_successful(call: GlCall, request: Request, project: store.Project, ref: str,
                       job_name: str | None) -> store.Job:
    """The newest successful job named ``job_name`` on ``ref`` (GitLab's download-by-ref lookup)."""
    if not job_name:
        raise Reply(json_response(400, {"error": "job is missing"}))
    pipelines = sorted((p for p in gl_state(call, request).pipelines.values() if p.project == project),
                       key=lambda p: p.id, reverse=True)
    for pipeline in pipelines:
        if ref != "main" or pipeline.status != "success":
            continue
        for job in pipeline.jobs:
            if job.name == job_name and job.status == "success" and job.files:
                return job
    raise Reply(gl_message(404, "404 Not found"))


def _zip(job: store.Job) -> Response:
    return Response(zip_of(job.files), media_type="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="artifacts.zip"'})


_S3_TWO_AUTHS = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument</Code><Message>Only one auth '
                 "mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the "
                 "Authorization header should be specified</Message></Error>")


def _file(job: store.Job, path: str, request: Request | None = None, call: GlCall | None = None) -> Response:
    content = job.files.get(path)
    if content is None:
        raise Reply(gl_message(404, "404 Not found"))
    data = gl_state(call, request) if request is not None and call is not None else None
    if data is not None and request is not None and data.object_storage:
        token = secrets.token_urlsafe(24)
        data.objects[token] = content
        url = request.base_url
        other = "localhost" if url.hostname != "localhost" else "127.0.0.1"
        location = (f"{str(url.replace(hostname=other)).rstrip('/')}/{call.key if call else ''}/_objects/{token}/"
                    f"{path.rsplit('/', 1)[-1]}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=600")
        return Response(status_code=302, headers={"Location": location})
    return Response(content, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{path.rsplit("/", 1)[-1]}"'})


def register(router: APIRouter, key: str) -> None:
    """Add pipeline, job and artifact routes."""
    prefix = API + "/projects/{pid:path}"

    @router.get(prefix + "/pipelines")
    async def list_pipelines(request: Request, pid: str) -> Response:
        call = await authenticate(key, request)
        project = find_project(call, request, pid)
        query = request.query_params
        scope = query.get("scope")
        items = [store.pipeline_json(call.web, p)
                 for p in sorted(gl_state(call, request).pipelines.values(), key=lambda p: p.id,
                                 reverse=query.get("sort", "desc") == "desc")
                 if p.project == project and query.get("status") in (None, p.status)
                 and query.get("ref") in (None, "main") and query.get("sha") in (None, store.SHA)
                 and (scope is None or (scope == "finished" and p.status in FINISHED)
                      or scope == p.status or scope == "branches")]
        return paginate(request, items)

    @router.get(prefix + "/pipelines/{pipeline_id:int}")
    async def get_pipeline(request: Request, pid: str, pipeline_id: int) -> Response:
        call = await authenticate(key, request)
        pipeline = _pipeline(call, request, find_project(call, request, pid), pipeline_id)
        return json_response(200, store.pipeline_json(call.web, pipeline, detailed=True))

    @router.get(prefix + "/pipelines/{pipeline_id:int}/jobs")
    async def list_pipeline_jobs(request: Request, pid: str, pipeline_id: int) -> Response:
        call = await authenticate(key, request)
        pipeline = _pipeline(call, request, find_project(call, request, pid), pipeline_id)
        scopes = set(request.query_params.getlist("scope[]") + request.query_params.getlist("scope"))
        items = [store.job_json(call.web, pipeline, j) for j in pipeline.jobs if not scopes or j.status in scopes]
        return paginate(request, items)

    @router.get(prefix + "/jobs/{job_id:int}")
    async def get_job(request: Request, pid: str, job_id: int) -> Response:
        call = await authenticate(key, request)
        pipeline, job = _job(call, request, find_project(call, request, pid), job_id)
        return json_response(200, store.job_json(call.web, pipeline, job))

    @router.get(prefix + "/jobs/{job_id:int}/artifacts")
    async def job_artifacts(request: Request, pid: str, job_id: int) -> Response:
        call = await authenticate(key, request)
        _, job = _job(call, request, find_project(call, request, pid), job_id)
        if not job.files:
            return gl_message(404, "404 Not found")
        return _zip(job)

    @router.get(prefix + "/jobs/{job_id:int}/artifacts/{artifact_path:path}")
    async def job_artifact_file(request: Request, pid: str, job_id: int, artifact_path: str) -> Response:
        call = await authenticate(key, request)
        _, job = _job(call, request, find_project(call, request, pid), job_id)
        return _file(job, artifact_path, request, call)

    @router.get("/_objects/{token}/{filename}")
    async def storage_object(request: Request, token: str, filename: str) -> Response:
        data = state(request, key, store.GitLabState)
        got = {k.lower(): v for k, v in request.headers.items()}
        data.object_requests.append(got)
        content = data.objects.get(token)
        if content is None:
            return Response(status_code=403, media_type="application/xml")
        if "authorization" in got:  # S3 ignores other headers; the test reads what was sent
            return Response(_S3_TWO_AUTHS, status_code=400, media_type="application/xml")
        return Response(content, media_type="application/octet-stream")

    @router.get(prefix + "/jobs/artifacts/{ref}/download")
    async def ref_artifacts(request: Request, pid: str, ref: str) -> Response:
        call = await authenticate(key, request)
        project = find_project(call, request, pid)
        return _zip(_latest_successful(call, request, project, ref, request.query_params.get("job")))

    @router.get(prefix + "/jobs/artifacts/{ref}/raw/{artifact_path:path}")
    async def ref_artifact_file(request: Request, pid: str, ref: str, artifact_path: str) -> Response:
        call = await authenticate(key, request)
        project = find_project(call, request, pid)
        job = _latest_successful(call, request, project, ref, request.query_params.get("job"))
        return _file(job, artifact_path, request, call)
