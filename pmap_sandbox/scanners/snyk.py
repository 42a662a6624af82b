"""Snyk: REST API (``/rest``, JSON:API, ``?version=`` required) and the v1 webhooks API.

Auth: ``Authorization: token <key>`` (``Bearer`` for OAuth tokens). REST errors are JSON:API
``{"jsonapi", "errors": [{"status", "detail", ...}]}``; v1 errors are ``{"code", "message", "error"}``.
v1 webhooks are pinged on creation and on ``POST .../ping``, signed ``X-Hub-Signature: sha256=<hex>``.
A seeded token's organization holds generated issues, paged by cursor (``starting_after``, ``links.next``).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import BackgroundTasks, Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners import _hooks
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_scheme, seeded, vendor_router

KEY = "snyk"
router = vendor_router(KEY)
ORG_ID = "4a18d42f-0706-4ad0-b127-24078731fbed"
PROJECT_ID = "9b0c3e55-6a1d-4c1e-9f5e-3d2b1a0c9e8f"
_JSONAPI = "application/vnd.api+json"
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(~(beta|experimental))?$")
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def _rest_error(status: int, message: str, source: dict[str, str] | None = None) -> Response:
    err: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "status": str(status),
        "title": _TITLES.get(status, "Error"),
        "detail": message,
        "meta": {"isPublic": True},
    }
    if source:
        err["source"] = source
    return json_reply(status, {"jsonapi": {"version": "1.0"}, "errors": [err]}, media_type=_JSONAPI)


def _v1_error(status: int, message: str) -> Response:
    return json_reply(status, {"code": status, "message": message, "error": message})


_MESSAGES = {
    "missing": (401, "Authentication credentials not recognized, or user access is not provisioned."),
    sc.BAD: (401, "Invalid auth token provided"),
    sc.ECHO: (401, "Invalid auth token provided: {echo}"),
    sc.RATELIMIT: (429, "Too many requests, please try again later."),
    sc.DOWN: (503, "Service temporarily unavailable"),
}
REST_STYLE = ErrorStyle(make=_rest_error, messages=_MESSAGES)
V1_STYLE = ErrorStyle(make=_v1_error, messages=_MESSAGES)


async def _auth(request: Request, style: ErrorStyle) -> set[str]:
    return await guard(KEY, style, request, [parse_scheme(request.headers.get("authorization"), "token", "Bearer")])


def _check_version(request: Request) -> str:
    version = request.query_params.get("version")
    if not version:
        raise Reply(_rest_error(400, "The version query parameter is required.", {"parameter": "version"}))
    if not _VERSION.match(version):
        raise Reply(_rest_error(400, f"The version '{version}' is not a valid version.", {"parameter": "version"}))
    return version


@router.get("/rest/self")
async def self_(request: Request) -> Response:
    """The token's user (JSON:API)."""
    version = _check_version(request)
    await _auth(request, REST_STYLE)
    return json_reply(
        200,
        {
            "jsonapi": {"version": "1.0"},
            "data": {
                "type": "user",
                "id": "55a348e2-c3ad-4bbc-b40e-9b232d1f4121",
                "attributes": {
                    "name": "PMAP integration",
                    "username": "pmap",
                    "email": "pmap@example.com",
                    "avatar_url": "https://example.com/avatar.png",
                    "default_org_context": ORG_ID,
                },
            },
            "links": {"self": f"/self?version={version}"},
        },
        media_type=_JSONAPI,
    )


#: the first generated issue's update time; issue ``i`` was updated ``i`` hours later
SEED_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)
# effective_severity_level's values in Snyk's REST API reference
_SEVERITIES = ("critical", "high", "medium", "low", "info")


def _sample_issue() -> dict[str, Any]:
    return {
        "id": "a7c1b3f0-0000-4000-8000-000000000001",
        "type": "issue",
        "attributes": {
            "key": "SNYK-JS-LODASH-1018905",
            "title": "Prototype Pollution",
            "type": "package_vulnerability",
            "status": "open",
            "effective_severity_level": "high",
            "ignored": False,
            "created_at": "2024-01-02T03:04:05Z",
            "updated_at": "2024-01-02T03:04:05Z",
            "problems": [{"id": "CVE-2020-8203", "source": "NVD", "type": "vulnerability"}],
        },
    }


def seeded_issue(i: int, fixed_every: int = 0) -> dict[str, Any]:
    """Generated issue ``i`` (deterministic): every ``fixed_every``-th one is resolved."""
    when = (SEED_EPOCH + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resolved = fixed_every > 0 and i % fixed_every == fixed_every - 1
    return {
        "id": str(uuid.UUID(int=0xA7C1B3F0_0000_4000_8000_000000000000 + i)),
        "type": "issue",
        "attributes": {
            "key": f"SNYK-JS-PKG{i}-{100000 + i}",
            "title": f"Generated vulnerability {i}",
            "type": "package_vulnerability",
            "status": "resolved" if resolved else "open",
            "effective_severity_level": _SEVERITIES[i % len(_SEVERITIES)],
            "ignored": False,
            "created_at": SEED_EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updated_at": when,
            "problems": [{"id": f"CVE-2024-{10000 + i}", "source": "NVD", "type": "vulnerability"}],
            "coordinates": [{"is_upgradeable": True, "is_fixable_snyk": True, "representations": [
                {"dependency": {"package_name": f"pkg{i}", "package_version": "1.0.0"}}]}],
        },
        "relationships": {"scan_item": {"data": {"id": PROJECT_ID, "type": "project"}}},
    }


def _cursor(index: int) -> str:
    return "v1." + base64.urlsafe_b64encode(json.dumps({"i": index}).encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int:
    """The index after which a ``starting_after`` cursor continues (-1: from the start)."""
    if not cursor:
        return -1
    try:
        raw = cursor.removeprefix("v1.")
        return int(json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["i"])
    except (ValueError, KeyError, TypeError):
        problem = _rest_error(400, "The starting_after cursor is not valid.", {"parameter": "starting_after"})
        raise Reply(problem) from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "10")
    # Snyk's REST pagination: limit is 10 to 100, in steps of 10
    if not raw.isdigit() or not 10 <= int(raw) <= 100 or int(raw) % 10:
        raise Reply(_rest_error(400, "limit must be a multiple of 10 between 10 and 100.", {"parameter": "limit"}))
    return int(raw)


def _updated_after(request: Request) -> datetime | None:
    raw = request.query_params.get("updated_after")
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        problem = _rest_error(400, "updated_after must be an RFC 3339 date-time.", {"parameter": "updated_after"})
        raise Reply(problem) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _page(request: Request, org_id: str, version: str, data: dict[str, Any]) -> Response:
    """One page of a seeded organization's issues: cursor paging by ``starting_after``, ``links.next``."""
    limit, after, since = _limit(request), _after(request.query_params.get("starting_after")), _updated_after(request)
    fixed_every = int(data.get("fixed_every", 0))
    picked: list[dict[str, Any]] = []
    last = after
    for i in range(after + 1, int(data["count"])):
        issue = seeded_issue(i, fixed_every)
        if since is not None and datetime.fromisoformat(
                issue["attributes"]["updated_at"].replace("Z", "+00:00")) <= since:
            continue
        if len(picked) == limit:
            break
        picked.append(issue)
        last = i
    more = any(since is None or SEED_EPOCH + timedelta(hours=i) > since
               for i in range(last + 1, int(data["count"])))
    query = {"version": version, "limit": str(limit)}
    if since is not None:
        query["updated_after"] = request.query_params["updated_after"]
    links: dict[str, str] = {"self": f"/orgs/{org_id}/issues?{urlencode(query)}"}
    if more:
        # Snyk's links are relative to the REST base (/orgs/..., as its pagination docs show); the
        # foreign_next option makes a hostile one for the tests
        nxt = f"/orgs/{org_id}/issues?{urlencode({**query, 'starting_after': _cursor(last)})}"
        links["next"] = f"{data['foreign_next']}/rest{nxt}" if data.get("foreign_next") else nxt
    return json_reply(200, {"jsonapi": {"version": "1.0"}, "data": picked, "links": links}, media_type=_JSONAPI)


@router.get("/rest/orgs/{org_id}/issues")
async def issues(org_id: str, request: Request) -> Response:
    """An organization's issues (403 for ``noperm``); a seeded token pages through its generated set."""
    version = _check_version(request)
    marks = await _auth(request, REST_STYLE)
    if sc.NOPERM in marks:
        raise Reply(_rest_error(403, "You do not have the required permissions for this action."))
    data = seeded(request, KEY, parse_scheme(request.headers.get("authorization"), "token", "Bearer"), REST_STYLE)
    if data is not None:
        return _page(request, org_id, version, data)
    return json_reply(
        200,
        {"jsonapi": {"version": "1.0"}, "data": [_sample_issue()],
         "links": {"self": f"/orgs/{org_id}/issues?version={version}"}},
        media_type=_JSONAPI,
    )


async def _v1_hook_auth(request: Request) -> set[str]:
    marks = await _auth(request, V1_STYLE)
    if sc.NOPERM in marks:
        raise Reply(_v1_error(403, "You do not have the required permissions to manage webhooks"))
    return marks


def _view(hook: dict[str, Any]) -> dict[str, Any]:
    return {"id": hook["uuid"], "url": hook["url"]}


def _find(request: Request, org_id: str, webhook_id: str) -> dict[str, Any]:
    for hook in _hooks.hooks(request, KEY).values():
        if hook["uuid"] == webhook_id and hook["org"] == org_id:
            return hook
    raise Reply(_v1_error(404, "Webhook not found"))


@router.post("/v1/org/{org_id}/webhooks")
async def create_webhook(org_id: str, request: Request, background: BackgroundTasks) -> Response:
    """Create a webhook (``url``, ``secret``); Snyk pings it right away."""
    await _v1_hook_auth(request)
    try:
        body = await request.json()
    except ValueError:
        raise Reply(_v1_error(400, "Invalid JSON")) from None
    url, secret = (body or {}).get("url"), (body or {}).get("secret")
    if not url or not secret:
        raise Reply(_v1_error(400, "url and secret are required"))
    hook = _hooks.register(
        request, KEY, {"uuid": str(uuid.uuid4()), "org": org_id, "url": str(url), "secret": str(secret)}
    )
    background.add_task(_hooks.deliver, hook, "snyk", "ping", {"webhookId": hook["uuid"]})
    return json_reply(200, _view(hook))


@router.get("/v1/org/{org_id}/webhooks")
async def list_webhooks(org_id: str, request: Request) -> Response:
    """The organization's webhooks."""
    await _v1_hook_auth(request)
    found = [_view(h) for h in _hooks.hooks(request, KEY).values() if h["org"] == org_id]
    return json_reply(200, {"results": found, "total": len(found)})


@router.get("/v1/org/{org_id}/webhooks/{webhook_id}")
async def get_webhook(org_id: str, webhook_id: str, request: Request) -> Response:
    """One webhook."""
    await _v1_hook_auth(request)
    return json_reply(200, _view(_find(request, org_id, webhook_id)))


@router.delete("/v1/org/{org_id}/webhooks/{webhook_id}")
async def delete_webhook(org_id: str, webhook_id: str, request: Request) -> Response:
    """Remove a webhook."""
    await _v1_hook_auth(request)
    hook = _find(request, org_id, webhook_id)
    _hooks.hooks(request, KEY).pop(hook["id"], None)
    return Response(status_code=200)


@router.post("/v1/org/{org_id}/webhooks/{webhook_id}/ping")
async def ping_webhook(org_id: str, webhook_id: str, request: Request) -> Response:
    """Deliver a ``ping/v0`` event now."""
    await _v1_hook_auth(request)
    hook = _find(request, org_id, webhook_id)
    await _hooks.deliver(hook, "snyk", "ping", {"webhookId": hook["uuid"]})
    return json_reply(200, {})


VENDOR = {
    "category": "SCA",
    "base_path": f"/{KEY}/rest",
    "auth": "Authorization: token <key>",
    "valid_credentials": {"token": "snyk-token-0001"},
    "connection": {"org_id": ORG_ID},
    "notes": "REST under /snyk/rest (version required, checked before auth), v1 under /snyk/v1; "
    "real Snyk requires https webhook URLs, the sandbox accepts http on loopback",
}
