"""Invicti Enterprise (formerly Netsparker Enterprise) API 1.0: account/me and account/license.

Auth: HTTP Basic ``USERID:API-TOKEN``. Errors are ASP.NET Web API's ``{"Message": "..."}``.
``/account/license`` follows Netsparker's API reference sample for ``GET /api/1.0/account/license``
("SubscriptionEndDate: the date in which your account will expire ... the date format defined in your
account"), the ``AccountLicenseApiModel``/``LicenseBaseModel`` of the netsparker-cloud npm client generated
from Invicti's OpenAPI document, and a live answer logged in niaid/moleculer-netsparker-cloud's README:
``SubscriptionStartDate``/``SubscriptionEndDate`` are in the account's own date format
(``12/30/2022 04:00 PM``; ``dd/MM/yyyy`` accounts exist), never ISO-8601, while each entry of ``Licenses``
carries ISO-8601 ``StartDate``/``EndDate`` (with offset) and ``ProductDefinition``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_basic, vendor_router

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
    """A license entry's date: ISO-8601 with offset (``2022-12-30T21:00:00+00:00``)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _account_date(dt: datetime) -> str:
    """A subscription date in the account's date format (the default ``MM/dd/yyyy hh:mm tt``)."""
    return dt.astimezone(UTC).strftime("%m/%d/%Y %I:%M %p")


@router.get(_API + "/account/me")
async def me(request: Request) -> Response:
    """The API user."""
    await _auth(request)
    # the fields of the API's UserHealthCheckApiModel (the generated netsparker-cloud client): no role
    return json_reply(
        200,
        {
            "DisplayName": "PMAP integration",
            "Email": "pmap@example.com",
            "TimeZoneInfo": "UTC",
            "DateFormat": "MM/dd/yyyy",
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
            "SubscriptionMaximumSiteLimit": 50,
            "SubscriptionSiteCount": 3,
            "SubscriptionEndDate": _account_date(end),
            "SubscriptionStartDate": _account_date(start),
            "IsAccountWhitelisted": False,
            "UsedScanCreditCount": 0,
            "ScanCreditCount": 0,
            "IsCreditScanEnabled": False,
            "IsSubscriptionEnabled": active,
            "PreVerifiedWebsites": [],
            "Licenses": [
                {
                    "EndDate": _iso(end),
                    "MaximumSiteLimit": 50,
                    "ProductDefinition": "Enterprise",
                    "StartDate": _iso(start),
                    "ValidForDays": max((end - datetime.now(UTC)).days, 0),
                    "Id": "c0ffee00-0000-4000-8000-000000000001",
                    "IsActive": active,
                    "Key": "SANDBOXLICENSEKEY0000000000000000",
                    "AccountCanCreateSharkScanTask": False,
                }
            ],
        },
    )


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}/api/1.0",
    "auth": "HTTP Basic USERID:API-TOKEN",
    "valid_credentials": {"user_id": "0a1b2c3d4e5f", "api_token": "invicti-token-0001"},
    "notes": "license as in Netsparker's published sample: subscription dates in the account's date format "
    "(MM/dd/yyyy hh:mm AM), ISO dates per entry of Licenses; noperm -> license 403",
}
