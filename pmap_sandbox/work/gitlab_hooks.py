"""GitLab project webhooks: create, list, read, update, delete and test.

``POST /projects/:id/hooks/:hook_id/test/:trigger`` really POSTs an event of that trigger to the
hook URL with the hook ``token`` in ``X-Gitlab-Token`` (plus ``X-Gitlab-Event``,
``X-Gitlab-Webhook-UUID`` and ``Idempotency-Key``), then answers as GitLab's ``API::Hooks::TriggerTest``
does (gitlabhq ``lib/api/hooks/trigger_test.rb``, ``app/services/web_hook_service.rb``,
``app/services/test_hooks/project_service.rb``): ``201 {"message": "201 Created"}`` when the receiver
said 2xx; otherwise 422 ``{"message": ...}`` carrying the receiver's own response body (its status is
not in the answer, only in the hook's log), the connection error's text, or, before anything is
sent, the test service's refusal when the project lacks the data the event is built from (``Ensure
the project has issues.``: GitLab builds an issue event from the project's first issue). Each
delivery is logged under ``GET .../hooks/:hook_id/events`` in the ``WebHookLog`` shape.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import gitlab_store as store
from pmap_sandbox.work._base import Reply, as_bool, iso_z, json_response, now, read_params
from pmap_sandbox.work._delivery import send
from pmap_sandbox.work.gitlab import API, GlCall, authenticate, find_project, gl_message, gl_state

TRIGGER_EVENTS = {
    "push_events": "Push Hook", "tag_push_events": "Tag Push Hook", "issues_events": "Issue Hook",
    "confidential_issues_events": "Confidential Issue Hook", "note_events": "Note Hook",
    "merge_requests_events": "Merge Request Hook", "job_events": "Job Hook", "pipeline_events": "Pipeline Hook",
    "wiki_page_events": "Wiki Page Hook", "deployment_events": "Deployment Hook",
    "feature_flag_events": "Feature Flag Hook", "releases_events": "Release Hook", "emoji_events": "Emoji Hook",
    "resource_access_token_events": "Resource Access Token Hook",
}
OBJECT_KINDS = {"push_events": "push", "tag_push_events": "tag_push", "issues_events": "issue",
                "confidential_issues_events": "issue", "note_events": "note",
                "merge_requests_events": "merge_request", "job_events": "build", "pipeline_events": "pipeline",
                "wiki_page_events": "wiki_page", "deployment_events": "deployment",
                "feature_flag_events": "feature_flag", "releases_events": "release", "emoji_events": "emoji",
                "resource_access_token_events": "access_token"}


#: what GitLab's TestHooks::ProjectService refuses with when the project has nothing to build the event from
MISSING_DATA = {"issues_events": "Ensure the project has issues.",
                "confidential_issues_events": "Ensure the project has issues.",
                "note_events": "Ensure the project has notes.",
                "merge_requests_events": "Ensure the project has merge requests.",
                "wiki_page_events": "Ensure the wiki is enabled and has pages."}
#: the hook log's ``trigger`` (GitLab logs the hook name, e.g. ``issue_hooks``)
LOG_TRIGGERS = {"push_events": "push_hooks", "tag_push_events": "tag_push_hooks", "issues_events": "issue_hooks",
                "confidential_issues_events": "confidential_issue_hooks", "note_events": "note_hooks",
                "merge_requests_events": "merge_request_hooks", "job_events": "job_hooks",
                "pipeline_events": "pipeline_hooks", "wiki_page_events": "wiki_page_hooks"}


def _missing_data(call: GlCall, request: Request, project: store.Project, trigger: str) -> str | None:
    """GitLab's refusal when the project lacks what the trigger's test event is built from."""
    if trigger in ("issues_events", "confidential_issues_events"):
        return None if gl_state(call, request).issues[project.id] else MISSING_DATA[trigger]
    return MISSING_DATA.get(trigger)


def _sample(call: GlCall, request: Request, project: store.Project, trigger: str) -> dict[str, Any]:
    """The test event body of the trigger's ``object_kind`` (an issue event is built from the first issue)."""
    proj = {"id": project.id, "name": project.path, "path_with_namespace": project.path_with_namespace,
            "web_url": f"{call.web}/{project.path_with_namespace}", "default_branch": "main"}
    user = {"id": store.USER_ID, "name": "PMAP Bot", "username": store.USERNAME}
    kind = OBJECT_KINDS[trigger]
    body: dict[str, Any] = {"object_kind": kind, "event_type": kind, "user": user, "project": proj}
    if kind == "push":
        body.update(event_name="push", before="0" * 40, after=store.SHA, ref="refs/heads/main",
                    checkout_sha=store.SHA, user_id=store.USER_ID, user_username=store.USERNAME,
                    project_id=project.id, commits=[], total_commits_count=0)
    elif kind == "issue":
        first = next(iter(gl_state(call, request).issues[project.id].values()))
        body["object_attributes"] = {"id": first["id"], "iid": first["iid"], "title": first["title"],
                                     "state": first["state"], "action": "open", "url": first["web_url"]}
        body.update(labels=[], changes={})
    elif kind == "pipeline":
        body["object_attributes"] = {"id": project.id * 100 + 1, "iid": 11, "ref": "main", "sha": store.SHA,
                                     "status": "success", "detailed_status": "passed", "source": "push",
                                     "url": f"{proj['web_url']}/-/pipelines/{project.id * 100 + 1}"}
        body["builds"] = [{"id": project.id * 1000 + 1, "stage": "test", "name": "semgrep-sast", "status": "success"}]
    return body


def _events(params: dict[str, Any], hook: store.Hook | None) -> dict[str, bool]:
    # GitLab defaults push_events to true and every other trigger to false
    return {name: as_bool(params.get(name), hook.events[name] if hook else name == "push_events")
            for name in store.HOOK_EVENTS}


def _url(params: dict[str, Any], hook: store.Hook | None) -> str:
    url = str(params.get("url") or (hook.url if hook else ""))
    if not url:
        raise Reply(json_response(400, {"error": "url is missing"}))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Reply(json_response(422, {"message": {"url": ["is blocked: Only allowed schemes are http, https"]}}))
    return url


def _hook(call: GlCall, request: Request, project: store.Project, hook_id: int) -> store.Hook:
    hook = gl_state(call, request).hooks.get(hook_id)
    if hook is None or hook.project != project:
        raise Reply(gl_message(404, "404 Not found"))
    return hook


def register(router: APIRouter, key: str) -> None:
    """Add the project hook routes."""
    prefix = API + "/projects/{pid:path}/hooks"

    @router.post(prefix)
    async def create_hook(request: Request, pid: str) -> Response:
        call = await authenticate(key, request)
        project = find_project(call, request, pid)
        params = await read_params(request)
        hook = store.Hook(id=gl_state(call, request).next_hook_id(), project=project, url=_url(params, None),
                          token=str(params.get("token") or ""), name=str(params.get("name") or ""),
                          events=_events(params, None), created=now(),
                          enable_ssl_verification=as_bool(params.get("enable_ssl_verification"), True))
        gl_state(call, request).hooks[hook.id] = hook
        return json_response(201, store.hook_json(hook))

    @router.get(prefix)
    async def list_hooks(request: Request, pid: str) -> Response:
        call = await authenticate(key, request)
        project = find_project(call, request, pid)
        return json_response(200, [store.hook_json(h) for h in gl_state(call, request).hooks.values()
                                   if h.project == project])

    @router.get(prefix + "/{hook_id:int}")
    async def get_hook(request: Request, pid: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        return json_response(200, store.hook_json(_hook(call, request, find_project(call, request, pid), hook_id)))

    @router.put(prefix + "/{hook_id:int}")
    async def update_hook(request: Request, pid: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        hook = _hook(call, request, find_project(call, request, pid), hook_id)
        params = await read_params(request)
        hook.url, hook.events = _url(params, hook), _events(params, hook)
        if "token" in params:
            hook.token = str(params["token"] or "")
        hook.enable_ssl_verification = as_bool(params.get("enable_ssl_verification"), hook.enable_ssl_verification)
        return json_response(200, store.hook_json(hook))

    @router.delete(prefix + "/{hook_id:int}")
    async def delete_hook(request: Request, pid: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        hook = _hook(call, request, find_project(call, request, pid), hook_id)
        del gl_state(call, request).hooks[hook.id]
        return Response(status_code=204)

    @router.post(prefix + "/{hook_id:int}/test/{trigger}")
    async def test_hook(request: Request, pid: str, hook_id: int, trigger: str) -> Response:
        call = await authenticate(key, request)
        project = find_project(call, request, pid)
        hook = _hook(call, request, project, hook_id)
        if trigger not in TRIGGER_EVENTS:
            return json_response(400, {"error": "trigger does not have a valid value"})
        refusal = _missing_data(call, request, project, trigger)
        if refusal is not None:
            return json_response(422, {"message": refusal})
        payload = _sample(call, request, project, trigger)
        result = await send(hook.url, "gitlab", hook.token, payload, TRIGGER_EVENTS[trigger],
                            verify=hook.enable_ssl_verification,
                            extra_headers={"X-Gitlab-Instance": call.web})
        hook.deliveries.insert(0, {
            "id": len(hook.deliveries) + 1, "url": hook.url, "trigger": LOG_TRIGGERS.get(trigger, trigger),
            "request_headers": {"Content-Type": "application/json", "X-Gitlab-Event": TRIGGER_EVENTS[trigger]},
            "request_data": payload, "response_headers": {}, "response_body": result.response_body,
            "execution_duration": round(result.duration_ms / 1000, 3),
            "response_status": str(result.status_code) if result.status_code is not None else "internal error",
            "created_at": iso_z(now())})
        if result.status_code is None:  # the request failed: GitLab answers the error's text
            return json_response(422, {"message": result.error or "internal error"})
        if not result.ok:  # the receiver answered: GitLab passes its body on, not its status
            return json_response(422, {"message": result.response_body})
        return json_response(201, {"message": "201 Created"})

    @router.get(prefix + "/{hook_id:int}/events")
    async def hook_events(request: Request, pid: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        hook = _hook(call, request, find_project(call, request, pid), hook_id)
        return json_response(200, hook.deliveries)
