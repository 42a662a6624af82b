"""Burp Suite DAST (Enterprise) GraphQL API: ``POST /graphql/v1``.

Auth: ``Authorization: <api key>`` with no scheme (a value with a scheme word is refused).
Errors use the GraphQL ``{"errors": [{"message", "extensions": {"code"}}]}`` shape; the codes are
sandbox choices (PortSwigger documents the shape, not these numbers).

A seeded key sees one site whose latest succeeded scan holds ``count`` generated issues (paged by
``issues(start:, count:)``), behind a running scan and before an older succeeded one with three issues of its
own; ``unscanned`` adds a site whose only scan failed. Issue severities are high, medium, low and info; a
scan's issues carry no fixed state.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners import _graphql
from pmap_sandbox.scanners._common import (
    ErrorStyle,
    Reply,
    echo_text,
    guard,
    json_reply,
    seeded,
    store,
    vendor_router,
)

KEY = "burp_dast"
router = vendor_router(KEY)


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"errors": [{"message": message, "extensions": {"code": status}}]})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Unauthorized"),
        sc.BAD: (401, "Unauthorized"),
        sc.ECHO: (401, "Unauthorized: invalid API key {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Service unavailable"),
    },
)

_SITES = [
    {
        "id": "2",
        "name": "Example shop",
        "parent_id": "0",
        "scope": {"included_urls": ["https://shop.example.test/"], "excluded_urls": []},
    }
]
_ISSUES = [
    {
        "issue_type": {"name": "Cross-site scripting (reflected)", "type_index": "2097920"},
        "serial_number": "1001",
        "severity": "high",
        "confidence": "firm",
        "path": "/search",
        "origin": "https://shop.example.test",
        "novelty": "new",
    }
]
_SCANS = [
    {
        "id": "7",
        "status": "succeeded",
        "site_id": "2",
        "site_name": "Example shop",
        "start_time": "2024-01-02T03:04:05Z",
        "end_time": "2024-01-02T04:00:00Z",
        "issue_counts": {"high": {"total": 1}, "medium": {"total": 0}, "low": {"total": 0}},
        "issues": _ISSUES,
    }
]


def _scan(f: _graphql.Field) -> Any:
    return next((s for s in _SCANS if s["id"] == str(f.args.get("id"))), None)


_RESOLVERS = {
    "sites": lambda f: _SITES,
    "site_tree": lambda f: {"sites": _SITES, "folders": []},
    "scans": lambda f: _SCANS,
    "scan": _scan,
}


# --- a seeded key's sites, scans and issues: ``scans(site_id:, offset:, limit:, sort_column:, sort_order:)`` newest end
# first (a running scan, which has no end yet, first of all) and ``scan(id) { issues(start:, count:) }``, the paging
# PortSwigger's "common tasks" and community clients use

SEED_ORIGIN = "https://shop.example.test"
SEED_SITE, UNSCANNED_SITE = "10", "11"
LATEST_SCAN, OLDER_SCAN = "21", "20"
_SEVERITIES = ("high", "medium", "low", "info")


def seeded_issue(i: int) -> dict[str, Any]:
    """Generated issue ``i`` of the latest scan (deterministic), in the API's issue shape."""
    return {
        "serial_number": str(7000000000000000000 + i), "severity": _SEVERITIES[i % len(_SEVERITIES)],
        "confidence": ("certain", "firm", "tentative")[i % 3], "novelty": "new" if i % 2 else "repeated",
        "path": f"/page{i}", "origin": SEED_ORIGIN, "description_html": f"<p>Generated issue {i}.</p>",
        "remediation_html": None,
        "issue_type": {"type_index": str(1049088 + i % 25), "name": f"Generated issue type {i % 25}",
                       "description_html": "<p>A generated issue type.</p>",
                       "remediation_html": "<p>Fix it.</p>",
                       "vulnerability_classifications_html": '<li><a href="https://cwe.mitre.org/data/definitions/79.html">'
                                                             "CWE-79: Cross-site scripting</a></li>",
                       "references_html": '<li><a href="https://owasp.org/">OWASP</a></li>'},
    }


def _older_issue(i: int) -> dict[str, Any]:
    """An issue only the older scan reported (fixed since: the latest scan no longer lists it)."""
    return {**seeded_issue(i), "path": f"/old{i}", "serial_number": str(6000000000000000000 + i)}


def _window(f: _graphql.Field, first: str, size: str) -> tuple[int, int]:
    return int(f.args.get(first) or 0), int(f.args.get(size) or 0)


def _seeded_resolvers(data: dict[str, Any]) -> dict[str, _graphql.Resolver]:
    count = int(data["count"])
    sites = [{"id": SEED_SITE, "name": "Seeded shop", "parent_id": "0"}]
    if data.get("unscanned"):
        sites.append({"id": UNSCANNED_SITE, "name": "Never scanned", "parent_id": "0"})
    scans = {SEED_SITE: [{"id": "22", "status": "running"}, {"id": LATEST_SCAN, "status": "succeeded"},
                         {"id": OLDER_SCAN, "status": "succeeded"}],
             UNSCANNED_SITE: [{"id": "23", "status": "failed"}]}

    def site_scans(f: _graphql.Field) -> Any:
        offset, limit = _window(f, "offset", "limit")
        listed = scans.get(str(f.args.get("site_id")), [])
        return listed[offset:offset + limit] if limit else listed[offset:]

    def scan(f: _graphql.Field) -> Any:
        scan_id = str(f.args.get("id"))
        if scan_id not in (LATEST_SCAN, OLDER_SCAN):
            return None
        child = next((c for c in f.children or [] if c.name == "issues"), None)
        start, size = _window(child, "start", "count") if child else (0, 0)
        if scan_id == LATEST_SCAN:
            end = count if not size else min(start + size, count)
            issues = [seeded_issue(i) for i in range(start, end)]
        else:
            issues = [_older_issue(i) for i in range(3)][start:start + size if size else None]
        return {"id": scan_id, "status": "succeeded", "issues": issues}

    return {"site_tree": lambda f: {"sites": sites, "folders": []}, "sites": lambda f: sites, "scans": site_scans,
            "scan": scan}


# --- launches: ``create_schedule_item(input: {site_ids: [...]})`` with no schedule scans the sites now (PortSwigger's
# "Scheduling a new scan"; older clients send ``site_id``); the scan of a schedule item is
# ``scans(schedule_item_id:)``: queued, running, then succeeded, holding two issues of its own

POLL_FAILS = "pollfail"  # vendor-specific marker: the 2nd read of a launched scan answers 401, echoing the key


def _launch_issue(i: int) -> dict[str, Any]:
    return {**seeded_issue(i), "origin": "https://shop.example.test", "path": ("/search", "/login")[i % 2],
            "serial_number": str(8000000000000000000 + i), "severity": ("high", "info")[i % 2]}


#: the issues of a launched scan
LAUNCHED_ISSUES = [_launch_issue(i) for i in range(2)]
_LAUNCH_STATES = ("queued", "running")


class _Refused(Exception):
    """A launched scan's read the sandbox answers with an HTTP error."""


def _launches(request: Request, key: str | None) -> tuple[dict[str, _graphql.Resolver], dict[str, _graphql.Resolver]]:
    """Query resolvers over the launched scans (``scans(schedule_item_id:)``, ``scan(id)``) falling back to the
    sample's, and the ``create_schedule_item`` mutation."""
    state: dict[str, Any] = store(request, KEY).setdefault("launches", {"items": {}, "scans": {}})

    def create(f: _graphql.Field) -> Any:
        scan_input = f.args.get("input") or {}
        sites = scan_input.get("site_ids") or ([scan_input["site_id"]] if scan_input.get("site_id") else [])
        if [str(s) for s in sites] != [_SITES[0]["id"]]:
            raise _Refused(json_reply(200, {"data": None, "errors": [{"message": "Site not found",
                                                                       "extensions": {"code": 404}}]}))
        item, scan_id = str(100 + len(state["items"])), str(500 + len(state["scans"]))
        state["items"][item] = scan_id
        state["scans"][scan_id] = {"reads": 0, "key": key or ""}
        return {"schedule_item": {"id": item, "schedule": None, "scheduled_run_time": None}}

    def scans(f: _graphql.Field) -> Any:
        item = f.args.get("schedule_item_id")
        if item is None:
            return _SCANS
        scan_id = state["items"].get(str(item))
        if scan_id is None:
            return []
        scan = state["scans"][scan_id]
        scan["reads"] += 1
        if POLL_FAILS in scan["key"].lower() and scan["reads"] == 2:
            raise _Refused(STYLE.reply(sc.ECHO, echo_text(request, [scan["key"]])))
        reads = scan["reads"]
        status = _LAUNCH_STATES[reads - 1] if reads <= len(_LAUNCH_STATES) else "succeeded"
        return [{"id": scan_id, "status": status, "site_id": _SITES[0]["id"]}]

    def scan(f: _graphql.Field) -> Any:
        scan_id = str(f.args.get("id"))
        if scan_id not in state["scans"]:
            return _scan(f)
        child = next((c for c in f.children or [] if c.name == "issues"), None)
        start, size = _window(child, "start", "count") if child else (0, 0)
        return {"id": scan_id, "status": "succeeded",
                "issues": LAUNCHED_ISSUES[start:start + size if size else None]}

    return {**_RESOLVERS, "scans": scans, "scan": scan}, {"create_schedule_item": create}


@router.post("/graphql/v1")
async def graphql(request: Request) -> Response:
    """Run a minimal query (sites, site_tree, scans, scan(id))."""
    key = request.headers.get("authorization")
    if key and " " in key.strip():
        key = None  # "Bearer x" is not Burp's scheme-less API key
    marks = await guard(KEY, STYLE, request, [key])
    try:
        body = await request.json()
    except ValueError:
        raise Reply(_error(400, "Invalid JSON body")) from None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise Reply(_error(400, "Missing query"))
    if sc.NOPERM in marks:
        return json_reply(
            200,
            {
                "data": None,
                "errors": [
                    {"message": "You do not have permission to perform this action", "extensions": {"code": 403}}
                ],
            },
        )
    data = seeded(request, KEY, key, STYLE)
    if data is not None:
        return json_reply(200, _graphql.execute(body["query"], body.get("variables"), _seeded_resolvers(data)))
    resolvers, mutations = _launches(request, key)
    try:
        return json_reply(200, _graphql.execute(body["query"], body.get("variables"), resolvers,
                                                mutations=mutations))
    except _Refused as refused:
        return refused.args[0]


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}",
    "auth": "Authorization: <api key> (no scheme)",
    "valid_credentials": {"api_key": "burp-api-key-0001"},
    "notes": "GraphQL subset: sites, site_tree, scans, scan(id), the create_schedule_item mutation (site 2: a scan "
    "read queued, running, then succeeded, with 2 issues); noperm -> 200 with errors; 'pollfail' -> the 2nd read of "
    "a launched scan is a 401 echoing the key",
}
