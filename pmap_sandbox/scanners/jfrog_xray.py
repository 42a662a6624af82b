"""JFrog Xray REST API (``https://HOST/xray/api/v1``): system version and ping, vulnerability reports.

Auth: ``Authorization: Bearer <access token>``. Errors: ``{"errors": [{"status", "message"}]}``
(JFrog platform shape; Xray's own error body is not confirmed). ``/system/ping`` answers without auth, so it
never proves credentials; that ``/system/version`` refuses a missing token is not confirmed (JFrog's Xray REST
introduction: "A few calls (such as SYSTEM calls) do not require authentication"). ``xray_version`` and
``xray_revision``: public clients (jfrog/jfrog-client-go, jfrog/xray-client-java).
"""

from __future__ import annotations

import itertools

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_scheme, vendor_router

KEY = "jfrog_xray"
router = vendor_router(KEY)
_API = "/xray/api/v1"
_report_ids = itertools.count(1)


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"errors": [{"status": status, "message": message}]})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Unauthorized"),
        sc.BAD: (401, "Bad credentials"),
        sc.ECHO: (401, "Bad credentials: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Service unavailable"),
    },
)


async def _auth(request: Request) -> set[str]:
    return await guard(KEY, STYLE, request, [parse_scheme(request.headers.get("authorization"), "Bearer")])


@router.get(_API + "/system/ping")
async def ping() -> Response:
    """Liveness (no auth)."""
    return json_reply(200, {"status": "pong"})


@router.get(_API + "/system/version")
async def version(request: Request) -> Response:
    """Xray version and revision."""
    await _auth(request)
    return json_reply(200, {"xray_version": "3.92.7", "xray_revision": "5b1e2a9"})


@router.post(_API + "/reports/vulnerabilities")
async def vulnerability_report(request: Request) -> Response:
    """Start a vulnerabilities report (needs the Reports/Manage Reports permission)."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Forbidden"))
    return json_reply(200, {"report_id": next(_report_ids), "status": "pending"})


VENDOR = {
    "category": "SCA",
    "base_path": f"/{KEY}/xray/api/v1",
    "auth": "Authorization: Bearer <access token>",
    "valid_credentials": {"access_token": "jfrog-access-token-0001"},
    "notes": "/system/ping is anonymous; noperm -> 403 on report creation",
}
