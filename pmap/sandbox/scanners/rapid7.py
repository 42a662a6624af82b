"""Rapid7 InsightVM console API v3 (``https://HOST:3780/api/3``): info, license, assets.

Auth: HTTP Basic. Errors: ``{"status", "message", "links"}``. The license call needs Global
Administrator: users with ``admin`` (or a license marker, so the license scenario is observable) get it.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pmap.sandbox import scenarios as sc
from pmap.sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_basic, vendor_router

KEY = "rapid7_insightvm"
router = vendor_router(KEY)
_API = "/api/3"


def _error(status: int, message: str) -> Response:
    # the console's error schema carries the status as a string (its Swagger examples show "401")
    return json_reply(
        status,
        {
            "status": str(status),
            "message": message,
            "links": [{"href": "https://help.rapid7.com/insightvm/en-us/api/index.html", "rel": "self"}],
        },
    )


STYLE = ErrorStyle(
    make=_error,
    messages={
        sc.BAD: (401, "The user name or password is incorrect."),
        sc.ECHO: (401, "Authentication failed for {echo}"),
        sc.RATELIMIT: (429, "Too many requests."),
        sc.DOWN: (503, "The security console is unavailable."),
    },
)


async def _auth(request: Request) -> set[str]:
    creds = parse_basic(request.headers.get("authorization"))
    return await guard(KEY, STYLE, request, list(creds) if creds else [None])


def _global_admin(marks: set[str]) -> bool:
    return bool(marks & {sc.ADMIN, sc.EXPIRED, sc.EXPIRING}) and sc.NOPERM not in marks


@router.get(_API + "/administration/info")
async def info(request: Request) -> Response:
    """Console version and host information."""
    marks = await _auth(request)
    return json_reply(
        200,
        {
            "version": {"semantic": "6.6.230", "build": "6.6.230-1", "changeset": "a1b2c3d", "update": {"id": "1234"}},
            "fqdn": "insightvm.example.test",
            "host": "insightvm",
            "ip": "10.0.0.5",
            "serial": "SANDBOX-0001",
            "superuser": _global_admin(marks),
            "user": "pmap",
            "links": [{"href": "/api/3/administration/info", "rel": "self"}],
        },
    )


@router.get(_API + "/administration/license")
async def license_(request: Request) -> Response:
    """Edition, expiry and limits (Global Administrator only)."""
    marks = await _auth(request)
    if not _global_admin(marks):
        raise Reply(_error(403, "You do not have permission to access the license."))
    expires = sc.license_expiry(marks)
    return json_reply(
        200,
        {
            "edition": "InsightVM",
            "evaluation": False,
            "perpetual": False,
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "status": "Expired" if sc.license_expired(marks) else "Activated",
            "limits": {"maximumAssets": 1000, "maximumScanEngines": 5},
            "features": {"adaptiveSecurity": True, "agents": True, "dynamicDiscovery": True},
            "links": [{"href": "/api/3/administration/license", "rel": "self"}],
        },
    )


@router.get(_API + "/assets")
async def assets(request: Request, page: int = 0, size: int = 10) -> Response:
    """One page of assets (403 for ``noperm``)."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to view assets."))
    resources = [
        {
            "id": 1,
            "ip": "10.0.0.11",
            "hostName": "web01.example.test",
            "os": "Ubuntu Linux 22.04",
            "vulnerabilities": {"critical": 0, "severe": 1, "moderate": 1, "total": 2},
        }
    ]
    return json_reply(
        200,
        {
            "resources": resources[: max(size, 0)],
            "page": {"number": page, "size": size, "totalResources": 1, "totalPages": 1},
            "links": [{"href": "/api/3/assets", "rel": "self"}],
        },
    )


VENDOR = {
    "category": "VM",
    "base_path": f"/{KEY}/api/3",
    "auth": "HTTP Basic",
    "valid_credentials": {"username": "pmap", "password": "r7-pass-0001"},
    "notes": "license answers 403 unless Global Administrator ('admin', or an 'expired'/'expiring' credential)",
}
