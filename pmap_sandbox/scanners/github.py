"""GitHub REST (code scanning side): ``/user`` with scope headers, code-scanning alerts, repo hooks.

Auth: ``Authorization: Bearer <token>`` (or ``token <token>``). Errors: ``{"message",
"documentation_url", "status"}``. Classic-token scopes come back in ``X-OAuth-Scopes``; hooks are
delivered with ``X-Hub-Signature-256`` (a ping on creation and on ``POST .../pings``). A seeded token's
repository holds generated alerts, paged by ``per_page``/``page`` with ``Link`` headers.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import BackgroundTasks, Request
from fastapi.responses import Response

from pmap_sandbox import github_app
from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners import _hooks
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_scheme, seeded, vendor_router

KEY = "github_code_scanning"
router = vendor_router(KEY)
github_app.register(router, KEY)  # GitHub Apps: installation tokens minted with the App's JWT
DOCS = "https://docs.github.com/rest"
SCOPES = {
    "default": "admin:repo_hook, security_events",
    sc.NOPERM: "read:user",
    sc.ADMIN: "admin:org, admin:repo_hook, delete_repo, repo, security_events, workflow",
}


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"message": message, "documentation_url": DOCS, "status": str(status)})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Requires authentication"),
        sc.BAD: (401, "Bad credentials"),
        sc.ECHO: (401, "Bad credentials: {echo}"),
        sc.RATELIMIT: (429, "API rate limit exceeded for user ID 1."),
        sc.DOWN: (503, "Service Unavailable"),
    },
    retry_headers={
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-used": "5000",
        "x-ratelimit-resource": "core",
    },
)


def _scopes(marks: set[str]) -> str:
    return SCOPES[sc.NOPERM] if sc.NOPERM in marks else SCOPES[sc.ADMIN] if sc.ADMIN in marks else SCOPES["default"]


def _headers(marks: set[str], accepted: str = "") -> dict[str, str]:
    headers = {
        "X-OAuth-Scopes": _scopes(marks),
        "X-Accepted-OAuth-Scopes": accepted,
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4999",
        "x-ratelimit-reset": str(int(time.time()) + 3600),
        "X-GitHub-Api-Version-Selected": "2022-11-28",
    }
    if sc.EXPIRING in marks:
        headers["github-authentication-token-expiration"] = sc.license_expiry(marks).strftime("%Y-%m-%d %H:%M:%S UTC")
    return headers


async def _auth(request: Request) -> set[str]:
    token = parse_scheme(request.headers.get("authorization"), "Bearer", "token")
    return await guard(KEY, STYLE, request, [token])


def _has(marks: set[str], scope: str) -> bool:
    return scope in {s.strip() for s in _scopes(marks).split(",")}


@router.get("/user")
async def user(request: Request) -> Response:
    """The authenticated user; scopes in ``X-OAuth-Scopes``. An App installation token may not read it."""
    marks = await _auth(request)
    if github_app.installation_token(request, KEY):
        raise Reply(_error(403, "Resource not accessible by integration"))
    return json_reply(
        200,
        {
            "login": "pmap-bot",
            "id": 1,
            "node_id": "MDQ6VXNlcjE=",
            "type": "User",
            "site_admin": False,
            "name": "PMAP integration",
        },
        headers=_headers(marks),
    )


@router.get("/installation/repositories")
async def installation_repositories(request: Request) -> Response:
    """The repositories of the App installation whose token is sent (403 for any other token)."""
    await _auth(request)
    if not github_app.installation_token(request, KEY):
        raise Reply(_error(403, "You must authenticate with an installation access token in order to list "
                                "repositories for an installation."))
    return json_reply(200, {"total_count": 1, "repository_selection": "all",
                            "repositories": [{"id": 1, "full_name": "example/shop", "private": True}]})


@router.get("/repos/{owner}/{repo}/code-scanning/alerts")
async def alerts(owner: str, repo: str, request: Request, state: str = "open") -> Response:
    """Code scanning alerts (403 without ``security_events``/``repo``; 403 when GHAS is off for ``expired``)."""
    marks = await _auth(request)
    accepted = "admin:repo_hook, repo, security_events"
    if not (_has(marks, "security_events") or _has(marks, "repo")):
        raise Reply(_error(403, "Resource not accessible by personal access token"))
    if sc.EXPIRED in marks:
        raise Reply(_error(403, "Advanced Security must be enabled for this repository to use code scanning."))
    base = f"{str(request.base_url).rstrip('/')}/{KEY}/repos/{owner}/{repo}/code-scanning/alerts"
    data = seeded(request, KEY, parse_scheme(request.headers.get("authorization"), "Bearer", "token"), STYLE)
    if data is not None and data.get("primary_limit_seconds") and not data.get("limit_spent"):
        # GitHub's primary rate limit: 403 with no requests left and the reset time (epoch seconds), no Retry-After
        data["limit_spent"] = True
        spent = {**_headers(marks, accepted), "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
                 "x-ratelimit-reset": str(int(time.time()) + int(data["primary_limit_seconds"]))}
        raise Reply(json_reply(403, {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS,
                                     "status": "403"}, headers=spent))
    if data is not None:
        return _seeded_page(request, base, owner, repo, data, _headers(marks, accepted))
    alert = {
        "number": 1,
        "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-01-02T03:04:05Z",
        "url": f"{base}/1",
        "html_url": f"https://github.com/{owner}/{repo}/security/code-scanning/1",
        "state": "open",
        "fixed_at": None,
        "dismissed_by": None,
        "dismissed_at": None,
        "dismissed_reason": None,
        "rule": {
            "id": "java/sql-injection",
            "severity": "error",
            "security_severity_level": "high",
            "description": "Query built from user-controlled sources",
            "name": "java/sql-injection",
            "tags": ["security", "external/cwe/cwe-089"],
        },
        "tool": {"name": "CodeQL", "guid": None, "version": "2.15.0"},
        "most_recent_instance": {
            "ref": "refs/heads/main",
            "analysis_key": ".github/workflows/codeql.yml:analyze",
            "category": "/language:java",
            "state": "open",
            "commit_sha": "0" * 40,
            "message": {"text": "This query depends on a user-provided value."},
            "location": {
                "path": "src/Main.java",
                "start_line": 42,
                "end_line": 42,
                "start_column": 5,
                "end_column": 60,
            },
            "classifications": [],
        },
    }
    listed = [alert] if state in {"open", ""} else []
    return json_reply(200, listed, headers=_headers(marks, accepted))


#: the first generated alert's update time; alert ``i`` (number ``i + 1``) was updated ``i`` hours later
SEED_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)
_LEVELS = ("critical", "high", "medium", "low")
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def seeded_alert(base: str, owner: str, repo: str, i: int, data: dict[str, Any]) -> dict[str, Any]:
    """Generated alert ``i`` (deterministic): every ``fixed_every``-th fixed, every ``dismissed_every``-th
    (of the rest) dismissed as a false positive, or as won't fix when its number is even."""
    fixed_every, dismissed_every = int(data.get("fixed_every", 0)), int(data.get("dismissed_every", 0))
    updated = (SEED_EPOCH + timedelta(hours=i)).strftime(_STAMP)
    state = "open"
    if fixed_every and i % fixed_every == fixed_every - 1:
        state = "fixed"
    elif dismissed_every and i % dismissed_every == dismissed_every - 1:
        state = "dismissed"
    number = i + 1
    return {
        "number": number,
        "created_at": SEED_EPOCH.strftime(_STAMP),
        "updated_at": updated,
        "url": f"{base}/{number}",
        "html_url": f"https://github.com/{owner}/{repo}/security/code-scanning/{number}",
        "state": state,
        "fixed_at": updated if state == "fixed" else None,
        "dismissed_by": {"login": "octocat", "id": 2} if state == "dismissed" else None,
        "dismissed_at": updated if state == "dismissed" else None,
        "dismissed_reason": ("false positive" if number % 2 else "won't fix") if state == "dismissed" else None,
        "dismissed_comment": None,
        "rule": {"id": f"js/generated-rule-{i}", "severity": "error", "security_severity_level": _LEVELS[i % 4],
                 "description": f"Generated rule {i}", "name": f"js/generated-rule-{i}",
                 "tags": ["security", "external/cwe/cwe-079"]},
        "tool": {"name": "CodeQL", "guid": None, "version": "2.15.0"},
        "most_recent_instance": {
            "ref": "refs/heads/main", "analysis_key": ".github/workflows/codeql.yml:analyze",
            "category": "/language:javascript", "state": state, "commit_sha": "0" * 40,
            "message": {"text": f"Generated finding {i}."},
            "location": {"path": f"src/file{i}.js", "start_line": 10, "end_line": 10, "start_column": 1,
                         "end_column": 20},
            "classifications": [],
        },
    }


def _int_param(request: Request, name: str, default: int, top: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise Reply(_error(422, f"Invalid value for parameter {name}."))
    return int(raw)


def _seeded_page(request: Request, base: str, owner: str, repo: str, data: dict[str, Any],
                 headers: dict[str, str]) -> Response:
    """A page of a seeded repository's alerts: ``state``, ``sort`` (created, updated), ``direction``,
    ``per_page`` (up to 100) and ``page``, with RFC 8288 ``Link`` headers as GitHub pages its REST lists."""
    q = request.query_params
    per_page, page = _int_param(request, "per_page", 30, 100), _int_param(request, "page", 1, 10**6)
    sort, direction, state = q.get("sort", "created"), q.get("direction", "desc"), q.get("state")
    if sort not in ("created", "updated") or direction not in ("asc", "desc"):
        raise Reply(_error(422, "Invalid value for parameter sort or direction."))
    alerts = [seeded_alert(base, owner, repo, i, data) for i in range(int(data["count"]))]
    if state:
        alerts = [a for a in alerts if a["state"] == state]
    # every generated alert was created at once: "created" falls back to the number, as a stable order
    key = "updated_at" if sort == "updated" else "number"
    alerts.sort(key=lambda a: (a[key], a["number"]), reverse=direction == "desc")
    last = max(1, -(-len(alerts) // per_page))
    shown = alerts[(page - 1) * per_page: page * per_page]
    rels = ([("prev", page - 1), ("first", 1)] if page > 1 else []) + (
        [("next", page + 1), ("last", last)] if page < last else [])
    links = []
    for rel, number in rels:
        url = request.url.include_query_params(page=number)
        # GitHub's links are absolute; the foreign_next option makes a hostile one for the tests
        shown_url = f"{data['foreign_next']}{url.path}?{url.query}" if rel == "next" and data.get(
            "foreign_next") else str(url)
        links.append(f'<{shown_url}>; rel="{rel}"')
    if links:
        headers = {**headers, "Link": ", ".join(links)}
    return json_reply(200, shown, headers=headers)


def _hook_view(request: Request, owner: str, repo: str, hook: dict[str, Any]) -> dict[str, Any]:
    url = f"{str(request.base_url).rstrip('/')}/{KEY}/repos/{owner}/{repo}/hooks/{hook['id']}"
    config = {"content_type": hook["content_type"], "insecure_ssl": hook["insecure_ssl"], "url": hook["url"]}
    if hook.get("secret"):
        config["secret"] = "********"  # noqa: S105  (the mask GitHub answers in place of a hook secret)
    return {
        "type": "Repository",
        "id": hook["id"],
        "name": "web",
        "active": hook["active"],
        "events": hook["events"],
        "config": config,
        "updated_at": hook["created_at"],
        "created_at": hook["created_at"],
        "url": url,
        "test_url": f"{url}/test",
        "ping_url": f"{url}/pings",
        "deliveries_url": f"{url}/deliveries",
        "last_response": hook["last_response"],
    }


async def _hook_auth(request: Request) -> set[str]:
    marks = await _auth(request)
    # GitHub's OAuth scope list: repo grants read and write access to repository webhooks, as admin:repo_hook does
    if not (_has(marks, "admin:repo_hook") or _has(marks, "write:repo_hook") or _has(marks, "repo")):
        raise Reply(_error(404, "Not Found"))
    return marks


def _ping_payload(request: Request, owner: str, repo: str, hook: dict[str, Any]) -> dict[str, Any]:
    return {
        "zen": "Keep it logically awesome.",
        "hook_id": hook["id"],
        "hook": _hook_view(request, owner, repo, hook),
        "repository": {"id": 1296269, "name": repo, "full_name": f"{owner}/{repo}", "private": False},
        "sender": {"login": "pmap-bot", "id": 1, "type": "User"},
    }


@router.post("/repos/{owner}/{repo}/hooks", status_code=201)
async def create_hook(owner: str, repo: str, request: Request, background: BackgroundTasks) -> Response:
    """Create a repository webhook (``config.url``, ``config.secret``, ``config.content_type``)."""
    marks = await _hook_auth(request)
    try:
        body = await request.json()
    except ValueError:
        raise Reply(_error(400, "Problems parsing JSON")) from None
    config = (body or {}).get("config") or {}
    if not isinstance(config, dict) or not config.get("url"):
        raise Reply(
            json_reply(
                422,
                {
                    "message": "Validation Failed",
                    "documentation_url": DOCS,
                    "status": "422",
                    "errors": [{"resource": "Hook", "code": "custom", "message": "Config must contain url"}],
                },
            )
        )
    hook = _hooks.register(
        request,
        KEY,
        {
            "repo": f"{owner}/{repo}",
            "url": str(config["url"]),
            "secret": config.get("secret") or None,
            "content_type": config.get("content_type") or "form",
            "insecure_ssl": str(config.get("insecure_ssl", "0")),
            "events": body.get("events") or ["push"],
            "active": bool(body.get("active", True)),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    # GitHub pings a new hook right after creating it; the caller does not wait for that delivery
    background.add_task(
        _hooks.deliver, hook, "github", "ping", _ping_payload(request, owner, repo, hook), hook["content_type"]
    )
    return json_reply(201, _hook_view(request, owner, repo, hook), headers=_headers(marks, "admin:repo_hook"))


def _find(request: Request, owner: str, repo: str, hook_id: int) -> dict[str, Any]:
    hook = _hooks.hooks(request, KEY).get(hook_id)
    if hook is None or hook["repo"] != f"{owner}/{repo}":
        raise Reply(_error(404, "Not Found"))
    return hook


@router.get("/repos/{owner}/{repo}/hooks")
async def list_hooks(owner: str, repo: str, request: Request) -> Response:
    """The repository's webhooks."""
    marks = await _hook_auth(request)
    listed = [
        _hook_view(request, owner, repo, h)
        for h in _hooks.hooks(request, KEY).values()
        if h["repo"] == f"{owner}/{repo}"
    ]
    return json_reply(200, listed, headers=_headers(marks, "admin:repo_hook, read:repo_hook"))


@router.get("/repos/{owner}/{repo}/hooks/{hook_id}")
async def get_hook(owner: str, repo: str, hook_id: int, request: Request) -> Response:
    """One webhook, with ``last_response``."""
    marks = await _hook_auth(request)
    return json_reply(
        200, _hook_view(request, owner, repo, _find(request, owner, repo, hook_id)), headers=_headers(marks)
    )


@router.post("/repos/{owner}/{repo}/hooks/{hook_id}/pings", status_code=204)
async def ping_hook(owner: str, repo: str, hook_id: int, request: Request) -> Response:
    """Send a ``ping`` delivery now (204 once the receiver has answered)."""
    marks = await _hook_auth(request)
    hook = _find(request, owner, repo, hook_id)
    await _hooks.deliver(hook, "github", "ping", _ping_payload(request, owner, repo, hook), hook["content_type"])
    return Response(status_code=204, headers=_headers(marks))


VENDOR = {
    "category": "SAST",
    "base_path": f"/{KEY}",
    "auth": "Authorization: Bearer <token> (or token <token>)",
    "valid_credentials": {"token": "ghp_sandbox0001"},
    "notes": "scopes: default 'admin:repo_hook, security_events', noperm 'read:user', admin adds admin:org/repo/...; "
    "expiring -> github-authentication-token-expiration header; expired -> code scanning 403 (GHAS off)",
}
