"""Black Duck: ``POST /api/tokens/authenticate`` (``Authorization: token <key>``) -> bearer token.

The response carries ``bearerToken`` and ``expiresInMilliseconds`` plus an ``X-CSRF-TOKEN`` header;
later calls send ``Authorization: Bearer <bearerToken>``. Errors: ``{"errorMessage", "errorCode",
"arguments", "errors"}`` (shape from the public REST client, status texts are sandbox choices).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_scheme, store, vendor_router

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
    marks = await guard(KEY, STYLE, request, [parse_scheme(request.headers.get("authorization"), "token")])
    bearer, csrf = secrets.token_urlsafe(48), secrets.token_hex(16)
    store(request, KEY).setdefault("tokens", {})[bearer] = {"marks": marks, "exp": time.time() + TOKEN_TTL_MS / 1000}
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


@router.get("/api/projects")
async def projects(request: Request) -> Response:
    """Projects visible to the user: the list is filtered, not refused (``noperm``: a user without project
    roles sees an empty list, ``totalCount`` 0)."""
    marks = _session(request)["marks"]
    items = [] if sc.NOPERM in marks else [
        {"name": "shop", "projectLevelAdjustments": True, "_meta": _meta(request, "/api/projects/1")}
    ]
    return json_reply(200, {"totalCount": len(items), "items": items, "_meta": _meta(request, "/api/projects")})


VENDOR = {
    "category": "SCA",
    "base_path": f"/{KEY}",
    "auth": "POST /api/tokens/authenticate with Authorization: token <key> -> Bearer",
    "valid_credentials": {"api_token": "blackduck-token-0001"},
    "notes": "markers read from the API token at authenticate time; noperm -> the project list is empty "
    "(Black Duck filters lists by the user's rights rather than refusing them)",
}
