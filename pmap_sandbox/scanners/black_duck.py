"""Black Duck: ``POST /api/tokens/authenticate`` (``Authorization: token <key>``) -> bearer token.

The response carries ``bearerToken`` and ``expiresInMilliseconds`` plus an ``X-CSRF-TOKEN`` header;
later calls send ``Authorization: Bearer <bearerToken>``. Errors: ``{"errorMessage", "errorCode",
"arguments", "errors"}`` (shape from the public REST client, status texts are sandbox choices).

A seeded API token sees ``count`` generated vulnerable components over projects of ``per_project`` (default: all in
one), each with one version; projects, versions and ``vulnerable-bom-components`` page by ``offset``/``limit`` with
``totalCount``. Every ``fixed_every``-th item's remediation status is REMEDIATION_COMPLETE; with ``statuses``, item
``i`` takes ``statuses[i % len(statuses)]`` (unless fixed). The token exchange is not a counted request.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import (
    ErrorStyle,
    Reply,
    guard,
    json_reply,
    parse_scheme,
    seeded,
    store,
    vendor_router,
)

KEY = "black_duck"
router = vendor_router(KEY)
TOKEN_TTL_MS = 7_200_000


def _error(status: int, message: str) -> Response:
    code = {401: "{core.rest.unauthorized}", 403: "{core.rest.forbidden}"}.get(status, "{core.rest.error}")
    return json_reply(status, {"errorMessage": message, "arguments": {}, "errors": [], "errorCode": code})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Unauthorized"),
        sc.BAD: (401, "Unauthorized"),
        sc.ECHO: (401, "Unauthorized API token {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Service unavailable"),
    },
)


@router.post("/api/tokens/authenticate")
async def authenticate(request: Request) -> Response:
    """Exchange the API token for a bearer token."""
    credential = parse_scheme(request.headers.get("authorization"), "token")
    marks = await guard(KEY, STYLE, request, [credential])
    bearer, csrf = secrets.token_urlsafe(48), secrets.token_hex(16)
    store(request, KEY).setdefault("tokens", {})[bearer] = {"marks": marks, "exp": time.time() + TOKEN_TTL_MS / 1000,
                                                            "credential": credential}
    return json_reply(
        200, {"bearerToken": bearer, "expiresInMilliseconds": TOKEN_TTL_MS - 2}, headers={"X-CSRF-TOKEN": csrf}
    )


def _session(request: Request) -> dict[str, Any]:
    bearer = parse_scheme(request.headers.get("authorization"), "Bearer")
    session: dict[str, Any] | None = store(request, KEY).get("tokens", {}).get(bearer or "")
    if session is None or session["exp"] < time.time():
        raise Reply(_error(401, "Unauthorized"))
    return session


def _meta(request: Request, path: str) -> dict[str, Any]:
    return {"allow": ["GET"], "href": f"{str(request.base_url).rstrip('/')}/{KEY}{path}", "links": []}


@router.get("/api/current-version")
async def current_version(request: Request) -> Response:
    """Server version."""
    _session(request)
    return json_reply(200, {"version": "2024.1.0", "_meta": _meta(request, "/api/current-version")})


@router.get("/api/current-user")
async def current_user(request: Request) -> Response:
    """The token's user."""
    _session(request)
    return json_reply(
        200,
        {
            "userName": "pmap",
            "firstName": "PMAP",
            "lastName": "Integration",
            "email": "pmap@example.com",
            "active": True,
            "type": "INTERNAL",
            "_meta": _meta(request, "/api/current-user"),
        },
    )


def _window(request: Request) -> tuple[int, int]:
    try:
        offset, limit = int(request.query_params.get("offset", "0")), int(request.query_params.get("limit", "10"))
    except ValueError:
        raise Reply(_error(400, "offset and limit must be integers")) from None
    if offset < 0 or limit < 1:
        raise Reply(_error(400, "offset or limit out of range"))
    return offset, limit


def _page(request: Request, path: str, total: int, render: Any) -> Response:
    offset, limit = _window(request)
    items = [render(n) for n in range(offset, min(offset + limit, total))]
    return json_reply(200, {"totalCount": total, "items": items, "_meta": _meta(request, path)})


def _per_project(data: dict[str, Any]) -> int:
    return max(1, int(data.get("per_project") or int(data["count"]) or 1))


def _projects(data: dict[str, Any]) -> int:
    return -(-int(data["count"]) // _per_project(data))


def _project_number(data: dict[str, Any], project: str) -> int:
    number = project.removeprefix("proj-")
    if not number.isdigit() or int(number) >= _projects(data):
        raise Reply(_error(404, "Project not found"))
    return int(number)


_SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")


def seeded_component(i: int, data: dict[str, Any]) -> dict[str, Any]:
    """Generated vulnerable component item ``i`` (deterministic): a CVE, every third a BDSA."""
    fixed_every, statuses = int(data.get("fixed_every", 0)), list(data.get("statuses") or ["NEW"])
    fixed = fixed_every > 0 and i % fixed_every == fixed_every - 1
    bdsa = i % 3 == 2
    return {
        "componentName": f"comp{i}", "componentVersionName": f"1.0.{i}",
        "componentVersionOriginName": "maven", "componentVersionOriginId": f"org.example:comp{i}:1.0.{i}",
        "ignored": False,
        "vulnerabilityWithRemediation": {
            "vulnerabilityName": f"BDSA-2024-{i:04d}" if bdsa else f"CVE-2024-{40000 + i}",
            "source": "BDSA" if bdsa else "NVD", "description": f"Generated vulnerability {i}",
            "vulnerabilityPublishedDate": "2024-03-01T00:00:00.000Z",
            "vulnerabilityUpdatedDate": "2024-03-02T00:00:00.000Z",
            "baseScore": 7.5, "overallScore": 7.5, "exploitabilitySubscore": 3.9, "impactSubscore": 3.6,
            "severity": _SEVERITIES[i % len(_SEVERITIES)],
            "remediationStatus": "REMEDIATION_COMPLETE" if fixed else statuses[i % len(statuses)],
            "cweId": "CWE-502",
            "remediationCreatedAt": "2024-03-01T00:00:00.000Z", "remediationUpdatedAt": "2024-03-02T00:00:00.000Z",
        },
    }


@router.get("/api/projects")
async def projects(request: Request) -> Response:
    """Projects visible to the user: the list is filtered, not refused (``noperm``: a user without project
    roles sees an empty list, ``totalCount`` 0); a seeded token's generated ones, paged by ``offset``/``limit``."""
    session = _session(request)
    marks = session["marks"]
    data = None if sc.NOPERM in marks else seeded(request, KEY, session.get("credential"), STYLE)
    if data is not None:
        return _page(request, "/api/projects", _projects(data), lambda p: {
            "name": f"app{p}", "projectLevelAdjustments": True, "_meta": _meta(request, f"/api/projects/proj-{p}")})
    items = [] if sc.NOPERM in marks else [
        {"name": "shop", "projectLevelAdjustments": True, "_meta": _meta(request, "/api/projects/1")}
    ]
    return json_reply(200, {"totalCount": len(items), "items": items, "_meta": _meta(request, "/api/projects")})


@router.get("/api/projects/{project}/versions")
async def versions(project: str, request: Request) -> Response:
    """A project's versions (a seeded project has one, ``1.0.0``)."""
    session = _session(request)
    data = seeded(request, KEY, session.get("credential"), STYLE)
    if data is None:
        raise Reply(_error(404, "Project not found"))
    number = _project_number(data, project)
    path = f"/api/projects/{project}/versions"
    return _page(request, path, 1, lambda _v: {
        "versionName": "1.0.0", "phase": "RELEASED", "distribution": "EXTERNAL",
        "_meta": _meta(request, f"{path}/ver-{number}")})


@router.get("/api/projects/{project}/versions/{version}/vulnerable-bom-components")
async def vulnerable_components(project: str, version: str, request: Request) -> Response:
    """One page of a project version's vulnerable BOM components (``offset``/``limit``)."""
    session = _session(request)
    data = seeded(request, KEY, session.get("credential"), STYLE)
    if data is None:
        raise Reply(_error(404, "Project not found"))
    number = _project_number(data, project)
    if version != f"ver-{number}":
        raise Reply(_error(404, "Version not found"))
    per = _per_project(data)
    first, end = number * per, min((number + 1) * per, int(data["count"]))
    path = f"/api/projects/{project}/versions/{version}/vulnerable-bom-components"
    return _page(request, path, end - first, lambda n: seeded_component(first + n, data))


VENDOR = {
    "category": "SCA",
    "base_path": f"/{KEY}",
    "auth": "POST /api/tokens/authenticate with Authorization: token <key> -> Bearer",
    "valid_credentials": {"api_token": "blackduck-token-0001"},
    "notes": "markers read from the API token at authenticate time; noperm -> the project list is empty "
    "(Black Duck filters lists by the user's rights rather than refusing them)",
}
