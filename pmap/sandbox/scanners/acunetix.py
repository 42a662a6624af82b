"""Acunetix API v1 (``https://HOST:3443/api/v1``): ``/me`` and ``/info`` (version and license).

Auth: ``X-Auth: <key>``. Errors are ``{"code", "message", "details"}`` (field names from the
community API documentation, not confirmed on a live install).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pmap.sandbox import scenarios as sc
from pmap.sandbox.scanners._common import ErrorStyle, guard, json_reply, vendor_router

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
    """The key's user and role (master > tech_admin > tester > auditor)."""
    marks = await _auth(request)
    role = "master" if sc.ADMIN in marks else "auditor" if sc.NOPERM in marks else "tester"
    return json_reply(
        200,
        {
            "user_id": "11111111-2222-3333-4444-555555555555",
            "email": "pmap@example.com",
            "first_name": "PMAP",
            "last_name": "Integration",
            "role": role,
            "enabled": True,
            "access_all_groups": role == "master",
        },
    )


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
    "notes": "license in /info; role from /me",
}
