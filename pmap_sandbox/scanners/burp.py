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
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, seeded, vendor_router

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
    resolvers = _RESOLVERS if data is None else _seeded_resolvers(data)
    return json_reply(200, _graphql.execute(body["query"], body.get("variables"), resolvers))


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}",
    "auth": "Authorization: <api key> (no scheme)",
    "valid_credentials": {"api_key": "burp-api-key-0001"},
    "notes": "GraphQL subset: sites, site_tree, scans, scan(id); noperm -> 200 with errors",
}
