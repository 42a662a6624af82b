"""Rapid7 InsightVM console API v3 (``https://HOST:3780/api/3``): info, license, assets.

Shapes follow the console's OpenAPI 2 spec (``/api/3/json``), as generated into Rapid7's own
rapid7/vm-console-client-ruby (models ``Info``, ``VersionInfo``, ``License``, ``UnauthorizedError``).
Auth: HTTP Basic. Errors: ``{"status", "message", "links"}``. ``info.superuser`` and ``info.user`` describe
the OS account running the console service ("Whether the service is running a super-user", "The user
running the service"), not the API caller. ``GET /administration/license`` is marked Global Administrator
and declares no 403: other users get the 401 UnauthorizedError (the spec's 401 also covers "does not
maintain permissions to perform the operation"). ``GET /assets`` returns the assets the user has access to,
so a user without site access gets an empty page, not an error. Global Administrator here: ``admin`` (or a
license marker, so the license scenario is observable).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_basic, vendor_router

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
    await _auth(request)
    return json_reply(
        200,
        {
            "version": {
                "semantic": "6.6.230",
                "build": "6.6.230-1",
                "changeset": "a1b2c3d",
                "platform": "Linux64",
                "update": {"content": "3192129162", "id": {"productId": "281474976711146", "versionId": "490"}},
            },
            "distinguishedName": "CN=Rapid7 Security Console/ O=Rapid7",
            "fqdn": "insightvm.example.test",
            "host": "insightvm",
            "ip": "10.0.0.5",
            "operatingSystem": "Ubuntu Linux 22.04",
            "serial": "SANDBOX-0001",
            # the OS account of the console service, whoever calls the API
            "superuser": True,
            "user": "root",
            "links": [{"href": "/api/3/administration/info", "rel": "self"}],
        },
    )


@router.get(_API + "/administration/license")
async def license_(request: Request) -> Response:
    """Edition, expiry and limits (Global Administrator only)."""
    marks = await _auth(request)
    if not _global_admin(marks):
        raise Reply(_error(401, "You do not have permission to access the license."))
    expires = sc.license_expiry(marks)
    return json_reply(
        200,
        {
            "edition": "InsightVM",
            "evaluation": False,
            "perpetual": False,
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "status": "Expired" if sc.license_expired(marks) else "Activated",
            "limits": {"assets": 1000, "assetsWithHostedEngine": 100, "scanEngines": 5, "users": 50},
            "features": {"adaptiveSecurity": True, "agents": True, "dynamicDiscovery": True},
            "links": [{"href": "/api/3/administration/license", "rel": "self"}],
        },
    )


@router.get(_API + "/assets")
async def assets(request: Request, page: int = 0, size: int = 10) -> Response:
    """One page of the assets the user has access to (none for ``noperm``: no site or asset group granted)."""
    marks = await _auth(request)
    resources = [
        {
            "id": 1,
            "ip": "10.0.0.11",
            "hostName": "web01.example.test",
            "os": "Ubuntu Linux 22.04",
            "vulnerabilities": {"critical": 0, "severe": 1, "moderate": 1, "total": 2},
        }
    ]
    if sc.NOPERM in marks:
        resources = []
    return json_reply(
        200,
        {
            "resources": resources[: max(size, 0)],
            "page": {"number": page, "size": size, "totalResources": len(resources),
                     "totalPages": min(len(resources), 1)},
            "links": [{"href": "/api/3/assets", "rel": "self"}],
        },
    )


VENDOR = {
    "category": "VM",
    "base_path": f"/{KEY}/api/3",
    "auth": "HTTP Basic",
    "valid_credentials": {"username": "pmap", "password": "r7-pass-0001"},
    "notes": "license answers 401 unless Global Administrator ('admin', or an 'expired'/'expiring' credential); "
    "'noperm' sees no assets (empty page); info.superuser/user describe the console service, not the caller",
}
