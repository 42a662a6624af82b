"""GitHub REST API (api.github.com shape): authentication, ``/user``, repositories and issues.

Tokens go in ``Authorization: Bearer <token>`` (``token <token>`` and Basic with the token as
password are accepted too, as GitHub does). Every authenticated answer carries ``X-OAuth-Scopes``
(classic token scopes) and ``X-Accepted-OAuth-Scopes`` (what the endpoint wants). Scopes per
scenario: ``repo`` by default, ``read:user`` under ``noperm`` (private repositories then answer 404,
as GitHub hides them), admin scopes under ``admin``. ``expiring`` adds
``GitHub-Authentication-Token-Expiration``; an ``expired`` token is refused ("Bad credentials").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox import github_app
from pmap_sandbox.work import github_store as store
from pmap_sandbox.work._base import (
    Caller,
    Dialect,
    Reply,
    admit,
    base_url,
    int_param,
    iso_z,
    json_response,
    now,
    parse_basic,
    parse_scheme,
    state,
)

DOCS = "https://docs.github.com/rest"
SCOPES_DEFAULT = "repo"
SCOPES_NOPERM = "read:user"
SCOPES_ADMIN = "admin:org, admin:repo_hook, delete_repo, repo, workflow"


def gh_error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """GitHub's error body: ``message``, ``documentation_url`` and ``status`` (a string)."""
    return json_response(status, {"message": message, **extra, "documentation_url": DOCS, "status": str(status)},
                         headers)


class GitHubDialect(Dialect):
    def missing(self, request: Request) -> Response:
        return gh_error(401, "Requires authentication")

    def bad(self, request: Request) -> Response:
        return gh_error(401, "Bad credentials")

    def echo(self, request: Request, echoed: str) -> Response:
        return gh_error(401, f"Bad credentials: {echoed}")

    def down(self, request: Request) -> Response:
        return gh_error(503, "Service Unavailable")

    def ratelimited(self, request: Request) -> Response:
        return gh_error(429, "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                             "try again.", {"X-RateLimit-Remaining": "4998", "X-RateLimit-Resource": "core"})


DIALECT = GitHubDialect()


@dataclass(frozen=True)
class GhCall:
    """An authenticated GitHub request: the caller, its scopes and the API root."""

    caller: Caller
    scopes: str
    api: str
    key: str
    installation: bool = False  # a GitHub App installation token: no X-OAuth-Scopes, no /user

    @property
    def can_repo(self) -> bool:
        return "repo" in [s.strip() for s in self.scopes.split(",")]

    def headers(self, accepted: str) -> dict[str, str]:
        """Headers GitHub puts on every authenticated answer."""
        out = {} if self.installation else {"X-OAuth-Scopes": self.scopes, "X-Accepted-OAuth-Scopes": accepted}
        out |= {"X-GitHub-Media-Type": "github.v3; format=json", "X-GitHub-Api-Version-Selected": "2022-11-28",
               "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999", "X-RateLimit-Used": "1",
               "X-RateLimit-Resource": "core"}
        if self.caller.expiring:
            expiry = (now() + timedelta(days=10)).strftime("%Y-%m-%d %H:%M:%S UTC")
            out["GitHub-Authentication-Token-Expiration"] = expiry
        return out

    def reply(self, status: int, body: Any, accepted: str = "", headers: dict[str, str] | None = None) -> Response:
        """A JSON answer with the token headers."""
        return json_response(status, body, {**self.headers(accepted), **(headers or {})})


async def authenticate(key: str, request: Request) -> GhCall:
    """The call context, or raise :class:`Reply` with GitHub's 401."""
    header = request.headers.get("authorization")
    if not header:
        raise Reply(DIALECT.missing(request))
    token = parse_scheme(header, "bearer", "token")
    if token is None:
        basic = parse_basic(header)
        token = basic[1] if basic else None
    if token is None:
        raise Reply(DIALECT.bad(request))
    if github_app.installation_token(request, key):
        return GhCall(Caller("pmap-app[bot]", token, frozenset()), "repo", base_url(request, key), key,
                      installation=True)
    caller = await admit(key, DIALECT, request, store.LOGIN, token)
    if caller.expired:
        raise Reply(DIALECT.bad(request))
    scopes = SCOPES_NOPERM if caller.noperm else SCOPES_ADMIN if caller.admin else SCOPES_DEFAULT
    return GhCall(caller, scopes, base_url(request, key), key)


def gh_state(call: GhCall, request: Request) -> store.GitHubState:
    """This vendor key's GitHub data."""
    return state(request, call.key, store.GitHubState)


def find_repo(call: GhCall, request: Request, owner: str, name: str, accepted: str = "repo") -> store.Repo:
    """The repository, or 404 when it does not exist or the token cannot see private repositories."""
    repo = gh_state(call, request).repos.get(f"{owner}/{name}")
    if repo is None or not call.can_repo:
        raise Reply(gh_error(404, "Not Found", call.headers(accepted)))
    return repo


def paginate(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """One page (``per_page``, ``page``) and its ``Link`` header."""
    per_page = int_param(request.query_params.get("per_page"), 30, high=100)
    page = int_param(request.query_params.get("page"), 1, high=100_000)
    chunk = items[(page - 1) * per_page: page * per_page]
    links = []
    if page * per_page < len(items):
        links.append(f'<{request.url.include_query_params(page=page + 1, per_page=per_page)}>; rel="next"')
        last = (len(items) + per_page - 1) // per_page
        links.append(f'<{request.url.include_query_params(page=last, per_page=per_page)}>; rel="last"')
    return chunk, ({"Link": ", ".join(links)} if links else {})


def validation_failed(call: GhCall, resource: str, field: str, code: str = "invalid") -> Response:
    """GitHub's 422 with one field error."""
    return gh_error(422, "Validation Failed", call.headers("repo"),
                    errors=[{"resource": resource, "code": code, "field": field}])


def _comments(issue: dict[str, Any]) -> list[dict[str, Any]]:
    # comments live beside the issue under a private key that _public() drops
    comments: list[dict[str, Any]] = issue.setdefault("_comments", [])
    return comments


def _public(issue: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in issue.items() if not k.startswith("_")} | {"comments": len(issue.get("_comments", []))}


def register(router: APIRouter, key: str) -> None:
    """Add ``/user``, ``/repos/{owner}/{repo}`` and the issue routes."""

    def _find_issue(call: GhCall, request: Request, owner: str, name: str, number: int) -> dict[str, Any]:
        repo = find_repo(call, request, owner, name)
        issue = gh_state(call, request).issues[repo.id].get(number)
        if issue is None:
            raise Reply(gh_error(404, "Not Found", call.headers("repo")))
        return issue

    @router.get("/user")
    async def get_user(request: Request) -> Response:
        call = await authenticate(key, request)
        if call.installation:
            return gh_error(403, "Resource not accessible by integration")
        body = {**store.user_json(call.api), "name": "PMAP Bot", "company": None, "email": None,
                "created_at": "2020-01-15T09:00:00Z", "updated_at": "2024-05-01T09:00:00Z"}
        return call.reply(200, body)

    @router.get("/installation/repositories")
    async def installation_repositories(request: Request) -> Response:
        call = await authenticate(key, request)
        if not call.installation:
            return gh_error(403, "You must authenticate with an installation access token in order to list "
                                 "repositories for an installation.")
        repos = list(gh_state(call, request).repos.values())
        perms = {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True}
        return call.reply(200, {"total_count": len(repos), "repository_selection": "all",
                                "repositories": [store.repo_json(call.api, r, perms) for r in repos[:1]]})

    @router.get("/repos/{owner}/{name}")
    async def get_repo(request: Request, owner: str, name: str) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name)
        perms = {"admin": call.caller.admin, "maintain": True, "push": True, "triage": True, "pull": True}
        return call.reply(200, store.repo_json(call.api, repo, perms), "repo")

    @router.post("/repos/{owner}/{name}/issues")
    async def create_issue(request: Request, owner: str, name: str) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name)
        body = await json_object(call, request)
        title = body.get("title")
        if title is None or title == "":
            return gh_error(422, 'Invalid request.\n\n"title" wasn\'t supplied.', call.headers("repo"))
        if not isinstance(title, (str, int)):
            return validation_failed(call, "Issue", "title")
        labels = body.get("labels") or []
        if not isinstance(labels, list):
            return validation_failed(call, "Issue", "labels")
        issues = gh_state(call, request).issues[repo.id]
        number = len(issues) + 1
        issue_id = gh_state(call, request).next_issue_id()
        stamp = iso_z(now())
        url = f"{call.api}/repos/{repo.full_name}/issues/{number}"
        issues[number] = {
            "id": issue_id, "node_id": store.node_id("I_kwDO", issue_id), "url": url,
            "repository_url": f"{call.api}/repos/{repo.full_name}", "comments_url": f"{url}/comments",
            "html_url": f"https://github.com/{repo.full_name}/issues/{number}", "number": number,
            "state": "open", "state_reason": None, "title": str(title), "body": body.get("body"),
            "user": store.user_json(call.api),
            "labels": [{"name": str(n), "color": "ededed", "default": False} for n in labels],
            "assignees": [], "locked": False, "created_at": stamp, "updated_at": stamp, "closed_at": None,
            "author_association": "OWNER",
        }
        return call.reply(201, _public(issues[number]), "repo", {"Location": url})

    @router.get("/repos/{owner}/{name}/issues")
    async def list_issues(request: Request, owner: str, name: str) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name)
        wanted_state = request.query_params.get("state", "open")
        labels = {x for x in request.query_params.get("labels", "").split(",") if x}
        items = [_public(i) for i in gh_state(call, request).issues[repo.id].values()
                 if wanted_state in ("all", i["state"]) and labels <= {lb["name"] for lb in i["labels"]}]
        page, headers = paginate(request, items)
        return call.reply(200, page, "repo", headers)

    @router.get("/repos/{owner}/{name}/issues/{number}")
    async def get_issue(request: Request, owner: str, name: str, number: int) -> Response:
        call = await authenticate(key, request)
        issue = _find_issue(call, request, owner, name, number)
        return call.reply(200, _public(issue), "repo")

    @router.patch("/repos/{owner}/{name}/issues/{number}")
    async def update_issue(request: Request, owner: str, name: str, number: int) -> Response:
        call = await authenticate(key, request)
        issue = _find_issue(call, request, owner, name, number)
        body = await json_object(call, request)
        if "state" in body and body["state"] not in ("open", "closed"):
            return validation_failed(call, "Issue", "state")
        reason = body.get("state_reason")
        if reason is not None and reason not in ("completed", "not_planned", "reopened"):
            return validation_failed(call, "Issue", "state_reason")
        for field in ("title", "body"):
            if field in body:
                issue[field] = body[field]
        if "labels" in body and isinstance(body["labels"], list):
            issue["labels"] = [{"name": str(n), "color": "ededed", "default": False} for n in body["labels"]]
        if body.get("state") == "closed" and issue["state"] == "open":
            issue.update(state="closed", closed_at=iso_z(now()), state_reason=reason or "completed")
        elif body.get("state") == "open" and issue["state"] == "closed":
            issue.update(state="open", closed_at=None, state_reason="reopened")
        issue["updated_at"] = iso_z(now())
        return call.reply(200, _public(issue), "repo")

    @router.post("/repos/{owner}/{name}/issues/{number}/comments")
    async def add_comment(request: Request, owner: str, name: str, number: int) -> Response:
        call = await authenticate(key, request)
        issue = _find_issue(call, request, owner, name, number)
        body = await json_object(call, request)
        if not isinstance(body.get("body"), str) or not body["body"]:
            return gh_error(422, 'Invalid request.\n\n"body" wasn\'t supplied.', call.headers("repo"))
        comment_id = gh_state(call, request).next_comment_id()
        stamp = iso_z(now())
        comment = {"id": comment_id, "node_id": store.node_id("IC_kwDO", comment_id),
                   "url": f"{issue['repository_url']}/issues/comments/{comment_id}",
                   "html_url": f"{issue['html_url']}#issuecomment-{comment_id}", "body": body["body"],
                   "user": store.user_json(call.api), "created_at": stamp, "updated_at": stamp,
                   "issue_url": issue["url"], "author_association": "OWNER"}
        _comments(issue).append(comment)
        return call.reply(201, comment, "repo")



async def json_object(call: GhCall, request: Request) -> dict[str, Any]:
    """The JSON object body, or GitHub's 400 "Problems parsing JSON"."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Reply(gh_error(400, "Problems parsing JSON", call.headers("repo"))) from None
    if not isinstance(body, dict):
        raise Reply(gh_error(400, "Problems parsing JSON", call.headers("repo")))
    return body
