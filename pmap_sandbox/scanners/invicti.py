"""Invicti Enterprise (formerly Netsparker Enterprise) API 1.0: account/me and account/license.

Auth: HTTP Basic ``USERID:API-TOKEN``. Errors are ASP.NET Web API's ``{"Message": "..."}``.
``/account/license`` follows Netsparker's API reference sample for ``GET /api/1.0/account/license``
("SubscriptionEndDate: the date in which your account will expire ... the date format defined in your
account"), the ``AccountLicenseApiModel``/``LicenseBaseModel`` of the netsparker-cloud npm client generated
from Invicti's OpenAPI document, and a live answer logged in niaid/moleculer-netsparker-cloud's README:
``SubscriptionStartDate``/``SubscriptionEndDate`` are in the account's own date format
(``12/30/2022 04:00 PM``; ``dd/MM/yyyy`` accounts exist), never ISO-8601, while each entry of ``Licenses``
carries ISO-8601 ``StartDate``/``EndDate`` (with offset) and ``ProductDefinition``.

``GET /issues/allissues`` follows Netsparker's API reference ("Retrieve all issues identified by Netsparker":
``page``, ``pageSize`` 1 to 200, ``sortType``/``lastSeenDate`` on the last sighting; the answer's ``List``,
``IsLastPage``, ``HasNextPage``): a seeded account holds ``count`` generated issues in Invicti's states
(Present, Revived, FixedConfirmed, FixedUnconfirmed, AcceptedRisk, FalsePositive), dated in the account's format.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import (
    ErrorStyle,
    Reply,
    echo_text,
    guard,
    json_reply,
    parse_basic,
    seeded,
    store,
    vendor_router,
)

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


# --- scans (Scans API: POST /scans/newfromscan with the base scan's id as a JSON string, GET /scans/status/{id},
# GET /scans/report/?id=&format=Json&type=Vulnerabilities): a new scan reads Queued, Scanning, then Complete

BASE_SCAN_ID = "5e4b8f0a-0000-4000-8000-00000000000a"  # the sandbox's one earlier scan
_STATES = ("Queued", "Scanning")
POLL_FAILS = "pollfail"  # vendor-specific marker (in the user id): the 2nd status read answers 401 echoing the creds


def _tasks(request: Request) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = store(request, KEY).setdefault("tasks", {})
    return found


@router.post(_API + "/scans/newfromscan")
async def new_from_scan(request: Request) -> Response:
    """Launch a new scan with the configuration of an earlier one -> 201 and the scan task (``Id``, ``State``)."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to start scans."))
    try:
        base = await request.json()
    except ValueError:
        base = None
    if base != BASE_SCAN_ID:
        raise Reply(_error(404, "Scan not found."))
    creds = parse_basic(request.headers.get("authorization"))
    task_id = str(uuid.uuid4())
    _tasks(request)[task_id] = {"reads": 0, "user": creds[0] if creds else ""}
    return json_reply(201, {"Id": task_id, "State": "Queued", "TargetUrl": "http://php.testsparker.com/",
                            "Initiated": _iso(datetime.now(UTC))})


@router.get(_API + "/scans/status/{task_id}")
async def scan_status(task_id: str, request: Request) -> Response:
    """The scan task's state and steps."""
    await _auth(request)
    task = _tasks(request).get(task_id)
    if task is None:
        raise Reply(_error(404, "Scan not found."))
    task["reads"] += 1
    if POLL_FAILS in task["user"].lower() and task["reads"] == 2:
        creds = parse_basic(request.headers.get("authorization"))
        raise Reply(STYLE.reply(sc.ECHO, echo_text(request, list(creds or ()))))
    reads = task["reads"]
    state = _STATES[reads - 1] if reads <= len(_STATES) else "Complete"
    return json_reply(200, {"State": state, "CompletedSteps": min(reads, 3), "EstimatedSteps": 3,
                            "EstimatedLaunchTime": None})


@router.get(_API + "/scans/report/")
async def scan_report(request: Request) -> Response:
    """The vulnerabilities report of a finished scan (``format=Json&type=Vulnerabilities``)."""
    await _auth(request)
    task = _tasks(request).get(request.query_params.get("id") or "")
    if task is None:
        raise Reply(_error(404, "Scan not found."))
    if request.query_params.get("format") != "Json" or request.query_params.get("type") != "Vulnerabilities":
        raise Reply(_error(400, "The report type and format are not supported by the sandbox."))
    return json_reply(200, REPORT)


def _vulnerability(name: str, kind: str, severity: str, url: str, cwe: str) -> dict[str, Any]:
    return {"Name": name, "Type": kind, "Severity": severity, "Url": url, "State": "Present", "Certainty": 100,
            "Confirmed": True, "LookupId": str(uuid.uuid5(uuid.NAMESPACE_URL, url + kind)),
            "Classification": {"Cwe": cwe}, "Description": f"<p>{name}.</p>", "RemedialProcedure": "<p>Fix it.</p>",
            "FirstSeenDate": "25/06/2021 01:52 PM", "LastSeenDate": "25/06/2021 01:52 PM",
            "HttpRequest": {"Method": "GET", "Parameters": []}, "KnownVulnerabilities": []}


REPORT: dict[str, Any] = {
    "Generated": "25/06/2021 01:52 PM",
    "Target": {"ScanId": BASE_SCAN_ID, "Url": "http://php.testsparker.com/", "Initiated": "25/06/2021 01:40 PM",
               "Duration": "00:12:00"},
    "Vulnerabilities": [
        _vulnerability("Boolean Based SQL Injection", "BooleanSqlInjection", "Critical",
                       "http://php.testsparker.com/artist.php?id=-1%20OR%2017-7=10", "89"),
        _vulnerability("Cookie Not Marked as HttpOnly", "CookieNotMarkedAsHttpOnly", "Low",
                       "http://php.testsparker.com/auth/login.php", "16"),
    ],
}


# --- issues (Issues API: GET /issues/allissues?page=&pageSize=, pages from 1, pageSize 1 to 200; the answer's
# List with IsFirstPage/IsLastPage/HasNextPage/PageNumber/PageCount/TotalItemCount; dates in the account's format)

#: the first generated issue's last sighting; issue ``i`` was seen ``i`` hours later (the 13th: a date in the
#: account's MM/dd/yyyy that reads one way only, for a few hundred hours)
SEED_EPOCH = datetime(2024, 3, 13, tzinfo=UTC)
MAX_PAGE_SIZE = 200
_SEVERITIES = ("Critical", "High", "Medium", "Low", "Information", "BestPractice")


def seeded_issue(i: int, data: dict[str, Any]) -> dict[str, Any]:
    """Generated issue ``i`` (deterministic): every ``fixed_every``-th fixed (FixedConfirmed when its number is even,
    else FixedUnconfirmed), else every ``accepted_every``-th AcceptedRisk (FalsePositive when even), else Present
    (Revived when ``revived_every`` says so)."""
    fixed_every, accepted_every = int(data.get("fixed_every", 0)), int(data.get("accepted_every", 0))
    revived_every = int(data.get("revived_every", 0))
    if fixed_every > 0 and i % fixed_every == fixed_every - 1:
        state = "FixedConfirmed" if i % 2 == 0 else "FixedUnconfirmed"
    elif accepted_every > 0 and i % accepted_every == accepted_every - 1:
        state = "FalsePositive" if i % 2 == 0 else "AcceptedRisk"
    elif revived_every > 0 and i % revived_every == revived_every - 1:
        state = "Revived"
    else:
        state = "Present"
    seen = _account_date(SEED_EPOCH + timedelta(hours=i))
    return {
        "Id": str(uuid.UUID(int=0x1000_0000_0000_4000_8000_0000_0000_0000 + i)), "Title": f"Generated issue {i % 30}",
        "Type": f"GeneratedType{i % 30}", "Url": f"http://php.testsparker.com/page{i}.php",
        "Severity": _SEVERITIES[i % len(_SEVERITIES)], "State": state, "Certainty": 90,
        "IsPresent": not state.startswith("Fixed"), "IsAddressed": state != "Present", "IsDetectedByShark": False,
        "FirstSeenDate": seen, "LastSeenDate": seen, "UpdatedDate": seen,
        "StateFixedConfirmedDate": seen if state == "FixedConfirmed" else None,
        "WebsiteId": "294444f4-270a-42e1-5f54-abd4016a1e55", "WebsiteName": "PHP testsparker",
        "WebsiteRootUrl": "http://php.testsparker.com/", "LatestVulnerabilityIsConfirmed": i % 2 == 0,
        "Parameters": [{"Name": f"id{i % 3}"}], "Classification": {"Cwe": "89", "Owasp2017": "A1"},
        "VulnerabilityDetail": "<p>Generated.</p>", "Impact": "<p>Impact.</p>", "Actions": "<p>Fix it.</p>",
        "Remedy": "", "RemedyReferences": "", "ExternalReferences": "", "ProofOfConcept": "",
        "Cvss31VectorString": "", "LatestScanId": BASE_SCAN_ID, "Tags": [],
    }


@router.get(_API + "/issues/allissues")
async def all_issues(request: Request) -> Response:
    """A page of the account's issues (one sample; a seeded account's generated set)."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to view issues."))
    try:
        page = int(request.query_params.get("page") or 1)
        size = int(request.query_params.get("pageSize") or 20)
    except ValueError:
        raise Reply(_error(400, "The request is invalid.")) from None
    if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        raise Reply(_error(400, f"Page size can be any value between 1 and {MAX_PAGE_SIZE}."))
    creds = parse_basic(request.headers.get("authorization"))
    data = seeded(request, KEY, creds[1] if creds else None, STYLE)
    total = int(data["count"]) if data is not None else 1
    first = (page - 1) * size
    indices = range(first, min(first + size, total))
    items = [seeded_issue(i, data) for i in indices] if data is not None else (
        [seeded_issue(0, {})] if page == 1 else [])
    pages = max(-(-total // size), 1)
    return json_reply(200, {
        "FirstItemOnPage": first + 1 if items else 0, "LastItemOnPage": first + len(items),
        "HasNextPage": page < pages, "HasPreviousPage": page > 1, "IsFirstPage": page == 1,
        "IsLastPage": page >= pages, "PageCount": pages, "PageNumber": page, "PageSize": size,
        "TotalItemCount": total, "List": items,
    })


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}/api/1.0",
    "auth": "HTTP Basic USERID:API-TOKEN",
    "valid_credentials": {"user_id": "0a1b2c3d4e5f", "api_token": "invicti-token-0001"},
    "notes": "license as in Netsparker's published sample: subscription dates in the account's date format "
    "(MM/dd/yyyy hh:mm AM), ISO dates per entry of Licenses; noperm -> license 403; scans/newfromscan of scan "
    f"{BASE_SCAN_ID} launches (Queued, Scanning, Complete) and reports 2 vulnerabilities; 'pollfail' in the user "
    "id -> the 2nd status read is a 401 echoing the credentials",
}
