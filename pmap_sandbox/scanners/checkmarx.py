"""Checkmarx One: the IAM (Keycloak) token endpoint and the AST API, under one sandbox prefix.

The API key is an OIDC refresh token exchanged at
``/auth/realms/{tenant}/protocol/openid-connect/token`` (form ``grant_type=refresh_token``,
``client_id=ast-app``, ``refresh_token``); OAuth clients use ``client_credentials``. Token errors
follow Keycloak (``{"error", "error_description"}``; a bad refresh token is 400 ``invalid_grant``).
Scenario markers are read from the refresh token / client secret; the access token carries them.

A seeded API key (or OAuth client id) sees ``count`` generated results over projects of ``per_project``
(default: all in one), each project's latest completed scan listed by ``GET /api/scans``
(``project-id``, ``statuses``, ``sort``, ``offset``/``limit``); projects and results page by
``offset``/``limit`` with ``totalCount``/``filteredTotalCount``. Every ``fixed_every``-th result has status
FIXED, every ``not_exploitable_every``-th state NOT_EXPLOITABLE; ``unscanned`` extra projects have no
completed scan; the ``expire_at``-th counted request finds its access token expired (401).
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
    credential = str(form.get("refresh_token") or "") if grant == "refresh_token" else str(form.get("client_id") or "")
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
    store(request, KEY).setdefault("tokens", {})[access] = {"marks": marks, "exp": claims["exp"], "roles": roles,
                                                            "credential": credential}
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


API_STYLE = ErrorStyle(make=_api_error)
_SEVERITIES = ("HIGH", "MEDIUM", "LOW", "INFO")


def _seed(request: Request, session: dict[str, Any]) -> dict[str, Any] | None:
    """The seeded data set of the session's credential; its ``expire_at``-th request finds the token expired."""
    data = seeded(request, KEY, session.get("credential"), API_STYLE)
    if data is not None and data.get("expire_at") == store(request, KEY)["pulls"][session.get("credential")]:
        session["exp"] = 0
        raise Reply(_api_error(401, "Unauthorized"))
    return data


def _window(request: Request) -> tuple[int, int]:
    try:
        offset, limit = int(request.query_params.get("offset", "0")), int(request.query_params.get("limit", "20"))
    except ValueError:
        raise Reply(_api_error(400, "offset and limit must be integers")) from None
    if offset < 0 or not 1 <= limit <= 10000:
        raise Reply(_api_error(400, "offset or limit out of range"))
    return offset, limit


def _per_project(data: dict[str, Any]) -> int:
    return max(1, int(data.get("per_project") or int(data["count"]) or 1))


def _scanned(data: dict[str, Any]) -> int:
    return -(-int(data["count"]) // _per_project(data))


def seeded_result(i: int, data: dict[str, Any]) -> dict[str, Any]:
    """Generated result ``i`` (deterministic): SAST, with every 7th a KICS and every 11th an SCA result."""
    fixed_every, ne_every = int(data.get("fixed_every", 0)), int(data.get("not_exploitable_every", 0))
    fixed = fixed_every > 0 and i % fixed_every == fixed_every - 1
    not_exploitable = ne_every > 0 and i % ne_every == ne_every - 1
    base: dict[str, Any] = {
        "id": f"res-{i}", "similarityId": str(900000 + i), "status": "FIXED" if fixed else "RECURRENT",
        "state": "NOT_EXPLOITABLE" if not_exploitable else "TO_VERIFY", "severity": _SEVERITIES[i % 4],
        "created": "2024-03-01T00:00:00Z", "firstFoundAt": "2024-03-01T00:00:00Z", "foundAt": "2024-03-02T00:00:00Z",
        "description": f"Generated result {i}", "vulnerabilityDetails": {"cweId": 89},
    }
    if i % 11 == 10:
        return {**base, "type": "sca", "data": {"packageIdentifier": f"Npm-pkg{i}-1.0.0", "packageVersion": "1.0.0"},
                "vulnerabilityDetails": {"cveName": f"CVE-2024-{20000 + i}", "cweId": "CWE-79"}}
    if i % 7 == 6:
        return {**base, "type": "kics", "data": {"queryId": f"kics-{i}", "queryName": f"Generated IaC check {i}",
                                                 "fileName": f"/infra/main{i}.tf", "line": 3,
                                                 "expectedValue": "encryption enabled"}}
    return {**base, "type": "sast", "data": {"queryId": str(1000000 + i), "queryName": f"Generated_Query_{i}",
                                             "languageName": "Java",
                                             "nodes": [{"fileName": "/src/In.java", "line": 1},
                                                       {"fileName": f"/src/Sink{i}.java", "line": i % 300 + 1}]}}


@router.get("/api/projects")
async def projects(request: Request) -> Response:
    """Projects (a seeded key's generated ones; otherwise one sample), paged by ``offset``/``limit``."""
    session = _session(request)
    if "view-projects" not in session["roles"]:
        raise Reply(_api_error(403, "Forbidden"))
    offset, limit = _window(request)
    data = _seed(request, session)
    total = _scanned(data) + int(data.get("unscanned", 0)) if data is not None else 1
    listed = [{"id": f"proj-{p}", "name": f"app{p}", "createdAt": "2024-01-01T00:00:00Z"}
              for p in range(offset, min(offset + limit, total))]
    return json_reply(200, {"totalCount": total, "filteredTotalCount": total, "projects": listed})


@router.get("/api/scans")
async def scans(request: Request) -> Response:
    """Scans, filtered by ``project-id`` and ``statuses`` (a seeded project has one completed scan)."""
    session = _session(request)
    if "view-scans" not in session["roles"]:
        raise Reply(_api_error(403, "Forbidden"))
    _window(request)
    data = _seed(request, session)
    project = request.query_params.get("project-id", "")
    statuses = {s.strip().lower() for s in request.query_params.get("statuses", "").split(",") if s.strip()}
    number = int(project.removeprefix("proj-")) if project.removeprefix("proj-").isdigit() else -1
    scanned = _scanned(data) if data is not None else 1
    found = [] if not 0 <= number < scanned or (statuses and "completed" not in statuses) else [
        {"id": f"scan-{number}", "projectId": project, "status": "Completed", "branch": "main",
         "createdAt": "2024-03-02T00:00:00Z"}]
    return json_reply(200, {"totalCount": len(found), "filteredTotalCount": len(found), "scans": found})


@router.get("/api/results")
async def results(request: Request) -> Response:
    """Results of one scan (``scan-id``, ``offset``/``limit``); 403 without the view-results role."""
    session = _session(request)
    if "view-results" not in session["roles"]:
        raise Reply(_api_error(403, "Forbidden"))
    if not request.query_params.get("scan-id"):
        raise Reply(_api_error(400, "scan-id is required"))
    data = _seed(request, session)
    if data is not None:
        offset, limit = _window(request)
        scan = request.query_params["scan-id"].removeprefix("scan-")
        if not scan.isdigit() or int(scan) >= _scanned(data):
            raise Reply(_api_error(404, "scan not found"))
        per = _per_project(data)
        first, end = int(scan) * per, min((int(scan) + 1) * per, int(data["count"]))
        listed = [seeded_result(i, data) for i in range(first + offset, min(first + offset + limit, end))]
        return json_reply(200, {"results": listed, "totalCount": end - first})
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
