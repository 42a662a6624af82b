"""Acunetix API v1 (``https://HOST:3443/api/v1``): ``/me``, ``/info`` (version and license) and a
one-page ``/vulnerabilities`` read.

Auth: ``X-Auth: <key>``. Errors are ``{"code", "message", "details"}`` (field names from the
community API documentation, not confirmed on a live install). ``/me`` carries the fields the
community documentation lists (h4rdy/Acunetix11-API-Documentation ``Document/Dashboard.md``:
``user_id``, ``email``, ``first_name``, ``enabled``, ``child_account``, ``su``): no role. Acunetix's
roles (System/Platform Administrator, AppSec Admin/User, Report Viewer; Tech Admin, Tester, Auditor
before 15.4) are not named by ``/me``; the root account (``child_account: false``) is the System
Administrator. ``noperm`` is a user whose role may not read vulnerabilities (403).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, vendor_router

KEY = "acunetix"
router = vendor_router(KEY)
_API = "/api/v1"


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"code": status, "message": message, "details": []})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Unauthorized"),
        sc.BAD: (401, "Unauthorized"),
        sc.ECHO: (401, "Unauthorized: invalid X-Auth {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Service unavailable"),
    },
)


async def _auth(request: Request) -> set[str]:
    return await guard(KEY, STYLE, request, [request.headers.get("x-auth")])


@router.get(_API + "/me")
async def me(request: Request) -> Response:
    """The key's user; ``admin`` is the root account (``child_account: false``, ``su: true``)."""
    marks = await _auth(request)
    root = sc.ADMIN in marks
    return json_reply(
        200,
        {
            "user_id": "11111111-2222-3333-4444-555555555555",
            "email": "pmap@example.com",
            "first_name": "PMAP",
            "enabled": True,
            "child_account": not root,
            "su": root,
        },
    )


@router.get(_API + "/vulnerabilities")
async def vulnerabilities(request: Request) -> Response:
    """One page of vulnerabilities (one sample); 403 for a role that may not read them."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Forbidden"))
    item = {
        "vuln_id": "2640598393345655815",
        "vt_name": "Cross-site Scripting",
        "severity": 3,
        "criticality": 10,
        "confidence": 95,
        "status": "open",
        "affects_url": "https://shop.example.test/search",
        "affects_detail": "q",
        "target_id": "64496c9e-b340-4227-90d4-ac43e78d4a0d",
        "last_seen": "2024-01-02T03:04:05.000000+00:00",
    }
    return json_reply(200, {"vulnerabilities": [item]})


@router.get(_API + "/info")
async def info(request: Request) -> Response:
    """Product version and license."""
    marks = await _auth(request)
    expires = sc.license_expiry(marks)
    return json_reply(
        200,
        {
            "major_version": 24,
            "minor_version": 1,
            "build_number": "240111130",
            "product_code": "OVSWIN",
            "license": {
                "product_code": "OVSWIN",
                "expires": expires.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00"),
                "expired": sc.license_expired(marks),
                "max_targets": 500,
                "features": ["api", "scans"],
            },
        },
    )


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}/api/v1",
    "auth": "X-Auth: <key>",
    "valid_credentials": {"api_key": "acunetix-key-0001"},
    "notes": "license in /info; /me names no role (admin -> root account: child_account false); noperm -> 403 on "
    "/vulnerabilities",
}
