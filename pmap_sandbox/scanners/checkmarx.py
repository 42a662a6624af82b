"""Checkmarx One: the IAM (Keycloak) token endpoint and the AST API, under one sandbox prefix.

The API key is an OIDC refresh token exchanged at
``/auth/realms/{tenant}/protocol/openid-connect/token`` (form ``grant_type=refresh_token``,
``client_id=ast-app``, ``refresh_token``); OAuth clients use ``client_credentials``. Token errors
follow Keycloak (``{"error", "error_description"}``; a bad refresh token is 400 ``invalid_grant``).
Scenario markers are read from the refresh token / client secret; the access token carries them.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_scheme, store, vendor_router

KEY = "checkmarx_one"
router = vendor_router(KEY)
TOKEN_TTL = 1800
_VIEW_ROLES = ["view-projects", "view-scans", "view-results"]


def _oidc_error(status: int, message: str) -> Response:
    error = {
        400: "invalid_grant",
        401: "unauthorized_client",
        429: "too_many_requests",
        503: "temporarily_unavailable",
    }.get(status, "invalid_request")
    return json_reply(status, {"error": error, "error_description": message})


TOKEN_STYLE = ErrorStyle(
    make=_oidc_error,
    messages={
        "missing": (400, "Missing parameter: refresh_token"),
        sc.BAD: (400, "Invalid refresh token"),
        sc.ECHO: (400, "Invalid refresh token: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Service unavailable"),
    },
)


def _api_error(status: int, message: str) -> Response:
    return json_reply(status, {"code": status, "message": message})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


@router.post("/auth/realms/{tenant}/protocol/openid-connect/token")
async def token(tenant: str, request: Request) -> Response:
    """Exchange a refresh token (API key) or client credentials for a Bearer access token."""
    counts = store(request, KEY)
    counts["token_requests"] = counts.get("token_requests", 0) + 1  # a test proves PMAP caches OAuth tokens
    form = await request.form()
    grant = str(form.get("grant_type") or "")
    if grant == "refresh_token":
        if str(form.get("client_id") or "") != "ast-app":
            raise Reply(_oidc_error(401, "Invalid client or Invalid client credentials"))
        marks = await guard(KEY, TOKEN_STYLE, request, [str(form.get("refresh_token") or "")])
    elif grant == "client_credentials":
        client_id, client_secret = str(form.get("client_id") or ""), str(form.get("client_secret") or "")
        if not client_id or not client_secret:
            raise Reply(_oidc_error(401, "Invalid client or Invalid client credentials"))
        style = ErrorStyle(
            make=_oidc_error,
            messages={
                **TOKEN_STYLE.messages,
                sc.BAD: (401, "Invalid client secret"),
                sc.ECHO: (401, "Invalid client secret: {echo}"),
            },
        )
        marks = await guard(KEY, style, request, [client_secret], limit_key=client_id)
    else:
        raise Reply(json_reply(400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}))
    roles = [] if sc.NOPERM in marks else _VIEW_ROLES + (["ast-admin", "manage-users"] if sc.ADMIN in marks else [])
    now = int(time.time())
    claims = {
        "exp": now + TOKEN_TTL,
        "iat": now,
        "jti": secrets.token_hex(8),
        "azp": "ast-app",
        "iss": f"{str(request.base_url).rstrip('/')}/{KEY}/auth/realms/{tenant}",
        "sub": "sandbox-user",
        "typ": "Bearer",
        "tenant_name": tenant,
        "roles_ast": roles,
    }
    access = f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.{secrets.token_urlsafe(32)}"
    store(request, KEY).setdefault("tokens", {})[access] = {"marks": marks, "exp": claims["exp"], "roles": roles}
    return json_reply(
        200,
        {
            "access_token": access,
            "expires_in": TOKEN_TTL,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "openid offline_access",
        },
    )


def _session(request: Request) -> dict[str, Any]:
    bearer = parse_scheme(request.headers.get("authorization"), "Bearer")
    session: dict[str, Any] | None = store(request, KEY).get("tokens", {}).get(bearer or "")
    if session is None or session["exp"] < time.time():
        raise Reply(_api_error(401, "Unauthorized"))
    return session


@router.get("/api/versions")
async def versions(request: Request) -> Response:
    """Engine versions."""
    _session(request)
    return json_reply(200, {"CxOne": "3.21.4", "SAST": "9.6.2", "KICS": "v2.1.0"})


@router.get("/api/results")
async def results(request: Request) -> Response:
    """Results of one scan (``scan-id``); 403 without the view-results role."""
    session = _session(request)
    if "view-results" not in session["roles"]:
        raise Reply(_api_error(403, "Forbidden"))
    if not request.query_params.get("scan-id"):
        raise Reply(_api_error(400, "scan-id is required"))
    found = {
        "type": "sast",
        "id": "r-0001",
        "similarityId": "123456",
        "status": "NEW",
        "state": "TO_VERIFY",
        "severity": "HIGH",
        "created": "2024-01-02T03:04:05Z",
        "description": "SQL injection",
        "data": {
            "queryName": "SQL_Injection",
            "languageName": "Java",
            "nodes": [{"fileName": "/src/Main.java", "line": 42}],
        },
    }
    return json_reply(200, {"results": [found], "totalCount": 1})


VENDOR = {
    "category": "SAST",
    "base_path": f"/{KEY}",
    "auth": "refresh token -> POST /auth/realms/{tenant}/protocol/openid-connect/token -> Bearer",
    "valid_credentials": {"api_key": "cx-refresh-token-0001"},
    "connection": {"tenant": "sandbox"},
    "notes": "IAM and AST share the sandbox prefix (real: <region>.iam.checkmarx.net vs <region>.ast.checkmarx.net); "
    "markers read from the refresh token (or client_secret); bad -> 400 invalid_grant as Keycloak answers",
}
