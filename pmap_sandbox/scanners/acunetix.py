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

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, echo_text, guard, json_reply, seeded, store, vendor_router

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


# --- scans (h4rdy/Acunetix11-API-Documentation ``Document/Scans/main.md``: ``POST /scans`` with ``target_id``,
# ``profile_id`` and ``schedule``; ``GET /scans/{scan_id}`` with ``current_session.status`` and
# ``scan_session_id``; ``GET /scans/{scan_id}/results/{result_id}/vulnerabilities`` cursor-paged like
# ``/vulnerabilities``): a launched scan reads queued, processing, then completed

TARGET_ID = "64496c9e-b340-4227-90d4-ac43e78d4a0d"  # the sandbox's one target
PROFILES = {f"11111111-1111-1111-1111-11111111111{n}" for n in "1234567"}  # the built-in scan profiles
_SESSION_STATES = ("queued", "processing")
POLL_FAILS = "pollfail"  # vendor-specific marker: the 2nd status read answers 401, echoing the key
NO_LICENSE = "nolicense"  # vendor-specific marker: a license without scanning; POST /scans answers 403


def _scans(request: Request) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = store(request, KEY).setdefault("scans", {})
    return found


def _result(i: int) -> dict[str, Any]:
    return {
        "vuln_id": str(2640598393345700000 + i), "vt_id": f"00000000-0000-4000-9000-{i:012d}",
        "vt_name": ("Cross-site Scripting", "SQL injection")[i % 2], "severity": (3, 4)[i % 2], "criticality": 10,
        "confidence": 95, "status": "open", "affects_url": f"https://shop.example.test/{('search', 'item')[i % 2]}",
        "affects_detail": ("q", "id")[i % 2], "target_id": TARGET_ID, "loc_id": i + 1, "tags": [],
        "last_seen": None,
    }


#: the vulnerabilities of a launched scan's session
RESULT = [_result(i) for i in range(2)]


@router.post(_API + "/scans")
async def launch(request: Request) -> Response:
    """Start a scan of a target now -> 201, ``Location: /api/v1/scans/{scan_id}`` and the scan."""
    marks = await _auth(request)
    key = request.headers.get("x-auth") or ""
    if NO_LICENSE in key.lower():
        raise Reply(_error(403, "Feature not allowed by the license: scanning"))
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Forbidden"))
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("schedule"), dict):
        raise Reply(_error(400, "Invalid request body"))
    if body.get("target_id") != TARGET_ID:
        raise Reply(_error(404, "Target not found"))
    if body.get("profile_id") not in PROFILES:
        raise Reply(_error(404, "Scanning profile not found"))
    scan_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    _scans(request)[scan_id] = {"reads": 0, "key": key, "session": session_id}
    return json_reply(201, {"scan_id": scan_id, "target_id": TARGET_ID, "profile_id": body["profile_id"],
                            "schedule": body["schedule"], "incremental": False},
                      headers={"Location": f"{_API}/scans/{scan_id}"})


@router.get(_API + "/scans/{scan_id}")
async def scan(scan_id: str, request: Request) -> Response:
    """A launched scan with its current session: queued, processing, then completed."""
    await _auth(request)
    found = _scans(request).get(scan_id)
    if found is None:
        raise Reply(_error(404, "Scan not found"))
    found["reads"] += 1
    if POLL_FAILS in found["key"].lower() and found["reads"] == 2:
        raise Reply(STYLE.reply(sc.ECHO, echo_text(request, [found["key"]])))
    reads = found["reads"]
    status = _SESSION_STATES[reads - 1] if reads <= len(_SESSION_STATES) else "completed"
    return json_reply(200, {"scan_id": scan_id, "target_id": TARGET_ID, "profile_id": sorted(PROFILES)[0],
                            "current_session": {"scan_session_id": found["session"], "status": status,
                                                "progress": 100 if status == "completed" else 10,
                                                "severity_counts": {"high": 1, "medium": 0, "low": 0, "info": 0}}})


@router.get(_API + "/scans/{scan_id}/results/{result_id}/vulnerabilities")
async def result_vulnerabilities(scan_id: str, result_id: str, request: Request) -> Response:
    """The vulnerabilities of a launched scan's session, cursor-paged (``c``, ``l``)."""
    await _auth(request)
    found = _scans(request).get(scan_id)
    if found is None or found["session"] != result_id:
        raise Reply(_error(404, "Scan result not found"))
    try:
        start = int(request.query_params.get("c") or 0)
        limit = int(request.query_params.get("l") or MAX_LIMIT)
    except ValueError:
        raise Reply(_error(400, "Invalid cursor or limit")) from None
    page = RESULT[start:start + limit]
    following = str(start + limit) if start + limit < len(RESULT) else None
    return json_reply(200, {"vulnerabilities": page, "pagination": {"count": len(RESULT), "next_cursor": following,
                                                                     "previous_cursor": str(max(start - limit, 0))}})


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}/api/v1",
    "auth": "X-Auth: <key>",
    "valid_credentials": {"api_key": "acunetix-key-0001"},
    "notes": "license in /info; /me names no role (admin -> root account: child_account false); noperm -> 403 on "
    f"/vulnerabilities and POST /scans; POST /scans of target {TARGET_ID} launches (queued, processing, completed) and "
    "its session holds 2 vulnerabilities; 'nolicense' in the key -> POST /scans 403 naming the license; 'pollfail' "
    "-> the 2nd status read is a 401 echoing the key",
}
