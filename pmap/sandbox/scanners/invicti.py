"""Invicti Enterprise (formerly Netsparker Enterprise) API 1.0: account/me and account/license.

Auth: HTTP Basic ``USERID:API-TOKEN``. Errors are ASP.NET Web API's ``{"Message": "..."}``.
License field names follow the public generated API clients (not confirmed on a live account).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import Response

from pmap.sandbox import scenarios as sc
from pmap.sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_basic, vendor_router

KEY = "invicti"
router = vendor_router(KEY)
_API = "/api/1.0"


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"Message": message})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Authorization has been denied for this request."),
        sc.BAD: (401, "Authorization has been denied for this request."),
        sc.ECHO: (401, "Authorization has been denied for this request. Credentials: {echo}"),
        sc.RATELIMIT: (429, "API rate limit exceeded."),
        sc.DOWN: (503, "The service is unavailable."),
    },
)


async def _auth(request: Request) -> set[str]:
    creds = parse_basic(request.headers.get("authorization"))
    return await guard(KEY, STYLE, request, list(creds) if creds else [None])


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


@router.get(_API + "/account/me")
async def me(request: Request) -> Response:
    """The API user."""
    marks = await _auth(request)
    role = "Administrator" if sc.ADMIN in marks else "Scan Viewer" if sc.NOPERM in marks else "Scan Manager"
    return json_reply(
        200,
        {
            "DisplayName": "PMAP integration",
            "Email": "pmap@example.com",
            "TimeZoneInfo": "UTC",
            "Role": role,
            "IsApiAccessEnabled": True,
        },
    )


@router.get(_API + "/account/license")
async def license_(request: Request) -> Response:
    """Subscription dates and licenses."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to view the license."))
    end = sc.license_expiry(marks)
    start = end - timedelta(days=365)
    active = end > datetime.now(UTC)
    return json_reply(
        200,
        {
            "SubscriptionStartDate": _iso(start),
            "SubscriptionEndDate": _iso(end),
            "IsSubscriptionEnabled": active,
            "SubscriptionMaximumSiteLimit": 50,
            "SubscriptionSiteCount": 3,
            "Licenses": [
                {
                    "Id": "c0ffee00-sandbox",
                    "ProductDefinition": "Invicti Enterprise",
                    "Edition": "Enterprise",
                    "StartDate": _iso(start),
                    "EndDate": _iso(end),
                    "IsActive": active,
                    "Quantity": 50,
                }
            ],
        },
    )


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}/api/1.0",
    "auth": "HTTP Basic USERID:API-TOKEN",
    "valid_credentials": {"user_id": "0a1b2c3d4e5f", "api_token": "invicti-token-0001"},
    "notes": "license field names from public clients; noperm -> license 403",
}
