"""Acunetix API v1 (``https://HOST:3443/api/v1``): ``/me``, ``/info`` (version and license) and a
one-page ``/vulnerabilities`` read.

Auth: ``X-Auth: <key>``. Errors are ``{"code", "message", "details"}`` (field names from the
community API documentation, not confirmed on a live install). ``/me`` carries the fields the
community documentation lists (h4rdy/Acunetix11-API-Documentation ``Document/Dashboard.md``:
``user_id``, ``email``, ``first_name``, ``enabled``, ``child_account``, ``su``): no role. Acunetix's
roles (System/Platform Administrator, AppSec Admin/User, Report Viewer; Tech Admin, Tester, Auditor
before 15.4) are not named by ``/me``; the root account (``child_account: false``) is the System
Administrator. ``noperm`` is a user whose role may not read vulnerabilities (403).

A seeded key's account holds ``count`` generated vulnerabilities, listed by ``GET /vulnerabilities`` with cursor
paging: ``c`` (the cursor), ``l`` (the limit), ``pagination.next_cursor`` (community clients page on it; the
shape is not confirmed against Acunetix's own reference), and ``q=status:<s>`` (or ``status:!<s>``) over the
statuses open, fixed, ignored and false_positive (h4rdy/Acunetix11-API-Documentation
``Document/Vulnerabilities/main.md``); with no status in ``q`` every status is listed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, seeded, vendor_router

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


#: the first generated vulnerability's last sighting; vulnerability ``i`` was seen ``i`` hours later
SEED_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)
_STATUSES = ("open", "fixed", "ignored", "false_positive")
#: Acunetix answers at most 100 vulnerabilities a page
MAX_LIMIT = 100


def seeded_vulnerability(i: int, data: dict[str, Any]) -> dict[str, Any]:
    """Generated vulnerability ``i`` (deterministic): every ``fixed_every``-th fixed, else every ``ignored_every``-th
    ignored (a false positive when its number is even)."""
    fixed_every, ignored_every = int(data.get("fixed_every", 0)), int(data.get("ignored_every", 0))
    fixed = fixed_every > 0 and i % fixed_every == fixed_every - 1
    ignored = not fixed and ignored_every > 0 and i % ignored_every == ignored_every - 1
    status = "fixed" if fixed else ("false_positive" if i % 2 == 0 else "ignored") if ignored else "open"
    return {
        "vuln_id": str(2640598393345600000 + i), "vt_id": f"00000000-0000-4000-8000-{i % 40:012d}",
        "vt_name": f"Generated vulnerability {i % 40}", "severity": i % 5, "criticality": 10, "confidence": 95,
        "status": status, "affects_url": f"https://shop.example.test/page{i}", "affects_detail": f"p{i % 3}",
        "target_id": "64496c9e-b340-4227-90d4-ac43e78d4a0d", "loc_id": i + 1, "tags": [],
        "last_seen": (SEED_EPOCH + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S.000000+00:00"),
    }


def _status_filter(query: str) -> tuple[set[str], set[str]]:
    """The statuses a ``q`` names (``status:open;severity:3``) and those it excludes (``status:!fixed``)."""
    wanted: set[str] = set()
    excluded: set[str] = set()
    for part in query.split(";"):
        name, _, value = part.partition(":")
        if name.strip() == "status" and value.strip():
            value = value.strip()
            (excluded if value.startswith("!") else wanted).add(value.lstrip("!"))
    return wanted, excluded


def _seeded_page(request: Request, data: dict[str, Any]) -> Response:
    """A cursor page of the seeded set: ``c`` is where it starts, ``l`` how many (1 to 100);
    ``pagination.next_cursor`` is where the next starts, None on the last."""
    try:
        start = int(request.query_params.get("c") or 0)
        limit = int(request.query_params.get("l") or MAX_LIMIT)
    except ValueError:
        raise Reply(_error(400, "Invalid cursor or limit")) from None
    if start < 0 or not 1 <= limit <= MAX_LIMIT:
        raise Reply(_error(400, f"l must be between 1 and {MAX_LIMIT}"))
    wanted, excluded = _status_filter(request.query_params.get("q") or "")
    items = [seeded_vulnerability(i, data) for i in range(int(data["count"]))]
    items = [v for v in items if (not wanted or v["status"] in wanted) and v["status"] not in excluded]
    page = items[start:start + limit]
    following = str(start + limit) if start + limit < len(items) else None
    if data.get("no_next_cursor"):  # an answer naming only the count (not every version is known to send next_cursor)
        return json_reply(200, {"vulnerabilities": page, "pagination": {"count": len(items)}})
    return json_reply(200, {"vulnerabilities": page, "pagination": {
        "count": len(items), "next_cursor": following, "previous_cursor": str(max(start - limit, 0))}})


@router.get(_API + "/vulnerabilities")
async def vulnerabilities(request: Request) -> Response:
    """One page of vulnerabilities (one sample; a seeded key's generated set, cursor-paged); 403 for a role that
    may not read them."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Forbidden"))
    data = seeded(request, KEY, request.headers.get("x-auth"), STYLE)
    if data is not None:
        return _seeded_page(request, data)
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
    return json_reply(200, {"vulnerabilities": [item], "pagination": {"count": 1, "next_cursor": None,
                                                                     "previous_cursor": "0"}})


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
