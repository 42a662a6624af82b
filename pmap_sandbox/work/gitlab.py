"""GitLab REST API v4: authentication, version, user, token introspection, projects and issues.

Tokens go in ``PRIVATE-TOKEN`` (``Authorization: Bearer`` and the ``private_token`` query parameter
are accepted too, as GitLab does). ``GET /personal_access_tokens/self`` reports ``scopes``,
``active``, ``revoked`` and ``expires_at``: ``api`` by default, ``read_user`` only under ``noperm``
(project routes then answer 403 ``insufficient_scope``), ``api``, ``sudo`` and ``admin_mode`` for
an administrator under ``admin``. ``expiring`` sets ``expires_at`` 10 days ahead; an ``expired``
token is refused with GitLab's ``invalid_token`` 401. Parameters come from the query string, a
form or a JSON body, as GitLab accepts all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import gitlab_store as store
from pmap_sandbox.work._base import (
    Caller,
    Dialect,
    Reply,
    admit,
    as_bool,
    base_url,
    int_param,
    iso_z,
    json_response,
    now,
    parse_scheme,
    read_params,
    state,
    text_response,
)

API = "/api/v4"
VERSION = "17.5.1-ee"


def gl_message(status: int, message: str) -> Response:
    """GitLab's ``{"message": "<status> <reason>"}`` error."""
    return json_response(status, {"message": message})


class GitLabDialect(Dialect):
    def missing(self, request: Request) -> Response:
        return gl_message(401, "401 Unauthorized")

    def echo(self, request: Request, echoed: str) -> Response:
        return gl_message(401, f"401 Unauthorized: {echoed}")

    def down(self, request: Request) -> Response:
        return gl_message(503, "503 Service Unavailable")

    def ratelimited(self, request: Request) -> Response:
        # GitLab's rack-attack throttle answers plain text with RateLimit-* headers
        return text_response(429, "Retry later\n", headers={
            "RateLimit-Limit": "600", "RateLimit-Observed": "601", "RateLimit-Remaining": "0",
            "RateLimit-Name": "throttle_authenticated_api"})


DIALECT = GitLabDialect()


@dataclass(frozen=True)
class GlCall:
    """An authenticated GitLab request: the caller, its token scopes and URLs."""

    caller: Caller
    scopes: list[str]
    key: str
    web: str

    @property
    def access_level(self) -> int:
        return 50 if self.caller.admin else 40  # Owner / Maintainer


async def authenticate(key: str, request: Request) -> GlCall:
    """The call context, or raise :class:`Reply` with GitLab's 401."""
    token = request.headers.get("private-token") or request.query_params.get("private_token")
    header = request.headers.get("authorization")
    if not token and header:
        token = parse_scheme(header, "bearer")
        if token is None:
            raise Reply(DIALECT.bad(request))
    caller = await admit(key, DIALECT, request, store.USERNAME, token)
    if caller.expired:
        challenge = ('Bearer realm="Protected by OAuth 2.0", error="invalid_token", '
                     'error_description="Token has expired."')
        raise Reply(json_response(401, {"error": "invalid_token", "error_description": "Token has expired."},
                                  {"WWW-Authenticate": challenge}))
    scopes = ["read_user"] if caller.noperm else ["api", "sudo", "admin_mode"] if caller.admin else ["api"]
    return GlCall(caller, scopes, key, base_url(request, key))


def gl_state(call: GlCall, request: Request) -> store.GitLabState:
    """This vendor key's GitLab data."""
    return state(request, call.key, store.GitLabState)


def find_project(call: GlCall, request: Request, ref: str) -> store.Project:
    """The project, 403 ``insufficient_scope`` for a ``read_user`` token, or 404."""
    if not {"api", "read_api"} & set(call.scopes):
        raise Reply(json_response(403, {"error": "insufficient_scope", "error_description":
                                        "The request requires higher privileges than provided by the access token.",
                                        "scope": "api read_api"}))
    project = gl_state(call, request).project(ref)
    if project is None:
        raise Reply(gl_message(404, "404 Project Not Found"))
    return project


def paginate(request: Request, items: list[Any]) -> Response:
    """A page (``per_page``, ``page``) with GitLab's ``X-Total``/``X-Next-Page`` headers."""
    per_page = int_param(request.query_params.get("per_page"), 20, high=100)
    page = int_param(request.query_params.get("page"), 1, high=100_000)
    total_pages = max(1, (len(items) + per_page - 1) // per_page)
    headers = {"X-Total": str(len(items)), "X-Total-Pages": str(total_pages), "X-Per-Page": str(per_page),
               "X-Page": str(page), "X-Next-Page": str(page + 1) if page < total_pages else "",
               "X-Prev-Page": str(page - 1) if page > 1 else ""}
    return json_response(200, items[(page - 1) * per_page: page * per_page], headers)


def _labels(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def register(router: APIRouter, key: str) -> None:
    """Add version, user, token, project and issue routes."""

    def _find_issue(call: GlCall, request: Request, pid: str, iid: int) -> dict[str, Any]:
        project = find_project(call, request, pid)
        issue = gl_state(call, request).issues[project.id].get(iid)
        if issue is None:
            raise Reply(gl_message(404, "404 Not found"))
        return issue

    @router.get(API + "/version")
    async def version(request: Request) -> Response:
        await authenticate(key, request)
        return json_response(200, {"version": VERSION, "revision": "4a5b6c7d8e9", "enterprise": True,
                                   "kas": {"enabled": True, "externalUrl": None, "version": "17.5.1"}})

    @router.get(API + "/user")
    async def user(request: Request) -> Response:
        call = await authenticate(key, request)
        body = {**store.user_json(call.web), "created_at": "2021-03-01T09:00:00.000Z", "bio": "",
                "public_email": None, "email": f"{store.USERNAME}@example.com", "bot": False,
                "two_factor_enabled": False, "external": False}
        if call.caller.admin:  # GitLab shows is_admin only to administrators
            body["is_admin"] = True
        return json_response(200, body)

    @router.get(API + "/personal_access_tokens/self")
    async def token_self(request: Request) -> Response:
        call = await authenticate(key, request)
        expires = now() + timedelta(days=10 if call.caller.expiring else 300)
        return json_response(200, {"id": 4, "name": "pmap", "revoked": False, "created_at": "2024-01-02T09:00:00.000Z",
                                   "description": "PMAP integration", "scopes": call.scopes, "user_id": store.USER_ID,
                                   "last_used_at": iso_z(now()), "active": True,
                                   "expires_at": expires.strftime("%Y-%m-%d")})

    @router.post(API + "/projects/{pid:path}/issues")
    async def create_issue(request: Request, pid: str) -> Response:
        call = await authenticate(key, request)
        project = find_project(call, request, pid)
        params = await read_params(request)
        if not str(params.get("title") or "").strip():
            return json_response(400, {"error": "title is missing"})
        issues = gl_state(call, request).issues[project.id]
        iid, issue_id, stamp = len(issues) + 1, gl_state(call, request).next_issue_id(), iso_z(now())
        web = f"{call.web}/{project.path_with_namespace}/-/issues/{iid}"
        issues[iid] = {
            "id": issue_id, "iid": iid, "project_id": project.id, "title": str(params["title"]),
            "description": params.get("description"), "state": "opened", "created_at": stamp, "updated_at": stamp,
            "closed_at": None, "closed_by": None, "labels": _labels(params.get("labels")), "milestone": None,
            "assignees": [], "assignee": None, "author": store.user_json(call.web), "type": "ISSUE",
            "issue_type": "issue", "confidential": as_bool(params.get("confidential")), "due_date": None,
            "web_url": web, "severity": "UNKNOWN", "upvotes": 0, "downvotes": 0, "merge_requests_count": 0,
            "references": {"short": f"#{iid}", "relative": f"#{iid}", "full": f"{project.path_with_namespace}#{iid}"},
            "_links": {"self": f"{call.web}{API}/projects/{project.id}/issues/{iid}",
                       "notes": f"{call.web}{API}/projects/{project.id}/issues/{iid}/notes"},
            "_notes": [],
        }
        return json_response(201, _public(issues[iid]))

    @router.get(API + "/projects/{pid:path}/issues")
    async def list_issues(request: Request, pid: str) -> Response:
        call = await authenticate(key, request)
        project = find_project(call, request, pid)
        wanted = request.query_params.get("state", "all")
        labels = set(_labels(request.query_params.get("labels")))
        search = request.query_params.get("search", "").lower()
        items = [_public(i) for i in gl_state(call, request).issues[project.id].values()
                 if wanted in ("all", i["state"]) and labels <= set(i["labels"])
                 and (not search or search in (i["title"] + (i["description"] or "")).lower())]
        return paginate(request, items)

    @router.get(API + "/projects/{pid:path}/issues/{iid:int}")
    async def get_issue(request: Request, pid: str, iid: int) -> Response:
        call = await authenticate(key, request)
        return json_response(200, _public(_find_issue(call, request, pid, iid)))

    @router.put(API + "/projects/{pid:path}/issues/{iid:int}")
    async def update_issue(request: Request, pid: str, iid: int) -> Response:
        call = await authenticate(key, request)
        issue = _find_issue(call, request, pid, iid)
        params = await read_params(request)
        event = params.get("state_event")
        if event is not None and event not in ("close", "reopen"):
            return json_response(400, {"error": "state_event does not have a valid value"})
        for field in ("title", "description"):
            if field in params:
                issue[field] = params[field]
        if "labels" in params:
            issue["labels"] = _labels(params["labels"])
        issue["labels"] += [x for x in _labels(params.get("add_labels")) if x not in issue["labels"]]
        issue["labels"] = [x for x in issue["labels"] if x not in _labels(params.get("remove_labels"))]
        if event == "close" and issue["state"] == "opened":
            issue.update(state="closed", closed_at=iso_z(now()), closed_by=store.user_json(call.web))
        elif event == "reopen" and issue["state"] == "closed":
            issue.update(state="opened", closed_at=None, closed_by=None)
        issue["updated_at"] = iso_z(now())
        return json_response(200, _public(issue))

    @router.post(API + "/projects/{pid:path}/issues/{iid:int}/notes")
    async def add_note(request: Request, pid: str, iid: int) -> Response:
        call = await authenticate(key, request)
        issue = _find_issue(call, request, pid, iid)
        params = await read_params(request)
        if not str(params.get("body") or "").strip():
            return json_response(400, {"error": "body is missing"})
        note = {"id": gl_state(call, request).next_note_id(), "type": None, "body": str(params["body"]),
                "author": store.user_json(call.web), "created_at": iso_z(now()), "updated_at": iso_z(now()),
                "system": False, "noteable_id": issue["id"], "noteable_type": "Issue",
                "noteable_iid": issue["iid"], "project_id": issue["project_id"], "confidential": False,
                "internal": False, "resolvable": False}
        issue["_notes"].append(note)
        return json_response(201, note)



def register_project(router: APIRouter, key: str) -> None:
    """Add ``GET /projects/:id``; register it after every deeper project route (its path is greedy)."""

    @router.get(API + "/projects/{pid:path}")
    async def get_project(request: Request, pid: str) -> Response:
        call = await authenticate(key, request)
        project = find_project(call, request, pid)
        return json_response(200, store.project_json(call.web, project, call.access_level))


def _public(issue: dict[str, Any]) -> dict[str, Any]:
    # notes live beside the issue under a private key; the API shows only their count
    body = {k: v for k, v in issue.items() if k != "_notes"}
    body["user_notes_count"] = len(issue["_notes"])
    return body
