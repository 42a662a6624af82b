"""SonarQube Server web API: status (anonymous), token validation, license, webhooks, issues.

Auth: ``Authorization: Bearer <token>`` (10.0+) or the token as Basic user with an empty password
(9.x and older). Errors are ``{"errors": [{"msg": "..."}]}``. ``/api/authentication/validate``
answers HTTP 200 ``{"valid": false}`` without credentials and for a refused token (SonarSource/sonarqube
``ValidateAction.java``: an AuthenticationException becomes ``valid: false``); other web services answer
a refused token 401. The license fields follow the web app's ``License`` type (SonarSource/sonarqube
``server/sonar-web/src/main/js/types/editions.ts``).

``/api/issues/search`` follows the web API's documentation: ``p`` (1-based) and ``ps`` (at most 500),
only the first 10,000 results of a query (``p * ps`` beyond answers 400 "Can return only the first 10000
results"), ``paging.total`` the true total, ``s`` (``CREATION_DATE``, ``UPDATE_DATE``) with ``asc``,
``createdAfter`` (inclusive), ``componentKeys``/``components``, ``resolved``, ``additionalFields=rules``.
It serves the built-in example, or the issues seeded with ``POST /_sandbox/seed/sonarqube``: fixed ones
are CLOSED with resolution FIXED.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners import _hooks
from pmap_sandbox.scanners._common import (
    ErrorStyle,
    Reply,
    guard,
    json_reply,
    parse_basic,
    parse_scheme,
    vendor_router,
)
from pmap_sandbox.scanners._seeded import Seeded, seeded

KEY = "sonarqube"
router = vendor_router(KEY)
SECRET_MIN, SECRET_MAX = 16, 200


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"errors": [{"msg": message}]})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Authentication is required"),
        sc.BAD: (401, "Invalid authentication token"),
        sc.ECHO: (401, "Invalid authentication token: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "SonarQube is under maintenance"),
    },
)


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    bearer = parse_scheme(header, "Bearer")
    if bearer:
        return bearer
    basic = parse_basic(header)
    if basic and basic[0]:
        return basic[0] if not basic[1] else f"{basic[0]}:{basic[1]}"
    return None


async def _auth(request: Request) -> set[str]:
    return await guard(KEY, STYLE, request, [_token(request)])


def _is_admin(marks: set[str]) -> bool:
    return bool(marks & {sc.ADMIN, sc.EXPIRED, sc.EXPIRING}) and sc.NOPERM not in marks


@router.get("/api/system/status")
async def system_status() -> Response:
    """Server id, version and status (no auth)."""
    return json_reply(200, {"id": "243F7E9B-AXyz0000sandbox", "version": "10.6.0.92116", "status": "UP"})


@router.get("/api/authentication/validate")
async def validate(request: Request) -> Response:
    """``{"valid": true}`` for a good token; ``false`` when none was sent or the token is refused."""
    token = _token(request)
    if token is None or sc.scenario_of(token) & {sc.BAD, sc.ECHO}:
        return json_reply(200, {"valid": False})
    await _auth(request)
    return json_reply(200, {"valid": True})


@router.get("/api/editions/show_license")
async def show_license(request: Request) -> Response:
    """Commercial license (internal API; needs Administer System)."""
    marks = await _auth(request)
    if not _is_admin(marks):
        raise Reply(_error(403, "Insufficient privileges"))
    expires = sc.license_expiry(marks)
    return json_reply(
        200,
        {
            "edition": "enterprise",
            "expiresAt": expires.strftime("%Y-%m-%d"),
            "isExpired": sc.license_expired(marks),
            "isValidEdition": True,
            "isValidServerId": True,
            "isOfficialDistribution": True,
            "isSupported": True,
            "type": "PRODUCTION",
            "serverId": "243F7E9B-AXyz0000sandbox",
            "loc": 120000,
            "maxLoc": 1000000,
            "contactEmail": "admin@example.com",
            "plugins": ["branch", "governance"],
        },
    )


def _public(hook: dict[str, Any]) -> dict[str, Any]:
    return {"key": hook["key"], "name": hook["name"], "url": hook["url"], "hasSecret": bool(hook.get("secret"))}


@router.post("/api/webhooks/create")
async def create_webhook(request: Request) -> Response:
    """Form fields ``name``, ``url``, optional ``project`` and ``secret`` (16-200 characters)."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Insufficient privileges"))
    form = await request.form()
    name, url = str(form.get("name") or ""), str(form.get("url") or "")
    secret, project = form.get("secret"), form.get("project")
    if not project and not _is_admin(marks):  # "Administer on the project, or global Administer" (web API)
        raise Reply(_error(403, "Insufficient privileges"))
    if not name:
        raise Reply(_error(400, "The 'name' parameter is missing"))
    if not url:
        raise Reply(_error(400, "The 'url' parameter is missing"))
    if not url.startswith(("http://", "https://")):
        raise Reply(_error(400, f"Url parameter with value '{url}' is not a valid url"))
    if secret is not None and not SECRET_MIN <= len(str(secret)) <= SECRET_MAX:
        raise Reply(_error(400, "Secret length must be between 16 and 200 characters"))
    hook = _hooks.register(
        request,
        KEY,
        {
            "key": "AX" + secrets.token_hex(8),
            "name": name,
            "url": url,
            "secret": str(secret) if secret else None,
            "project": str(project) if project else None,
        },
    )
    return json_reply(200, {"webhook": _public(hook)})


@router.post("/api/webhooks/delete")
async def delete_webhook(request: Request) -> Response:
    """Form field ``webhook`` (its key); 204, or 404 for a key SonarQube does not know."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Insufficient privileges"))
    key = str((await request.form()).get("webhook") or "")
    if not key:
        raise Reply(_error(400, "The 'webhook' parameter is missing"))
    registered = _hooks.hooks(request, KEY)
    found = next((hook_id for hook_id, hook in registered.items() if hook["key"] == key), None)
    if found is None:
        raise Reply(_error(404, f"No webhook with key '{key}'"))
    if not registered[found].get("project") and not _is_admin(marks):
        raise Reply(_error(403, "Insufficient privileges"))
    del registered[found]
    return Response(status_code=204)


@router.get("/api/webhooks/list")
async def list_webhooks(request: Request, project: str | None = None) -> Response:
    """Registered webhooks (global, or of one project)."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Insufficient privileges"))
    if project is None and not _is_admin(marks):  # global webhooks: global Administer (web API docs)
        raise Reply(_error(403, "Insufficient privileges"))
    found = [_public(h) for h in _hooks.hooks(request, KEY).values() if h.get("project") == project]
    return json_reply(200, {"webhooks": found})


_EXAMPLE: dict[str, Any] = {
    "key": "AYsandbox0001",
    "rule": "java:S2076",
    "severity": "CRITICAL",
    "component": "shop:src/Main.java",
    "project": "shop",
    "line": 42,
    "status": "OPEN",
    "message": "Change this code to not construct the OS command from user-controlled data.",
    "type": "VULNERABILITY",
    "impacts": [{"softwareQuality": "SECURITY", "severity": "HIGH"}],
    "creationDate": "2024-01-02T03:04:05+0000",
    "updateDate": "2024-01-02T03:04:05+0000",
}
_SEVERITIES = ("INFO", "MINOR", "MAJOR", "CRITICAL", "BLOCKER")
_RULES = [{"key": "java:S2076", "name": "OS commands should not be vulnerable to command injection attacks"}]


def _date(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _seeded_issue(item: Seeded) -> dict[str, Any]:
    """Seeded issue ``n``: rule java:S2076 at line n % 10 + 1 of file n // 10 of project shop. Its creation
    date is n seconds into the day before it was seeded, so issues have distinct creation dates."""
    n = item.n
    issue: dict[str, Any] = {
        **_EXAMPLE, "key": f"AYseed{n:010d}", "component": f"shop:src/File{n // 10}.java", "line": n % 10 + 1,
        "severity": _SEVERITIES[n % len(_SEVERITIES)], "message": f"Seeded issue {n}",
        "creationDate": _date(item.created - 86_400 + n), "updateDate": _date(item.changed),
    }
    if item.fixed:
        issue.update(status="CLOSED", resolution="FIXED", closeDate=_date(item.changed))
    return issue


def _when(value: str | None) -> float | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"):
        try:
            when = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    raise Reply(_error(400, f"Date '{value}' cannot be parsed as either a date or date+time"))


@router.get("/api/issues/search")
async def issues(request: Request, ps: int = 100, p: int = 1) -> Response:
    """One page of issues, within the search's 10,000-result window."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Insufficient privileges"))
    if not 1 <= ps <= 500:
        raise Reply(_error(400, f"'ps' value ({ps}) must be less than 500"))
    if p < 1:
        raise Reply(_error(400, f"'p' value ({p}) must be greater than 0"))
    if p * ps > 10_000:
        raise Reply(_error(400, f"Can return only the first 10000 results. {p * ps}th result asked."))
    q = request.query_params
    items = seeded(request, KEY)
    found = [_EXAMPLE] if items is None else [_seeded_issue(i) for i in items]
    project = q.get("components") or q.get("componentKeys")
    if project:
        found = [i for i in found if i["project"] in project.split(",")]
    if q.get("resolved") in ("true", "false"):
        found = [i for i in found if ("resolution" in i) == (q["resolved"] == "true")]
    after = _when(q.get("createdAfter"))
    # the sandbox writes every date in UTC ("+0000"), so their text order is their time order
    if after is not None:
        found = [i for i in found if i["creationDate"] >= _date(after)]
    sort = {"CREATION_DATE": "creationDate", "UPDATE_DATE": "updateDate"}.get(q.get("s") or "", "creationDate")
    found.sort(key=lambda i: (i[sort], i["key"]), reverse=q.get("asc") == "false")
    body: dict[str, Any] = {
        "total": len(found), "p": p, "ps": ps, "paging": {"pageIndex": p, "pageSize": ps, "total": len(found)},
        "issues": found[(p - 1) * ps:p * ps],
    }
    if "rules" in (q.get("additionalFields") or "").split(","):
        body["rules"] = _RULES
    return json_reply(200, body)


VENDOR = {
    "category": "SAST",
    "base_path": f"/{KEY}",
    "auth": "Authorization: Bearer <token> | Basic <token>:",
    "valid_credentials": {"token": "squ_sandbox0001"},
    "notes": "show_license needs admin ('admin', 'expired' or 'expiring' credentials); no ping (deliveries via "
    "/_sandbox/deliver/sonarqube); real SonarQube refuses loopback webhook URLs unless "
    "sonar.validateWebhooks=false, the sandbox accepts them",
}
