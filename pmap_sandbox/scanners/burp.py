"""Burp Suite DAST (Enterprise) GraphQL API: ``POST /graphql/v1``.

Auth: ``Authorization: <api key>`` with no scheme (a value with a scheme word is refused).
Errors use the GraphQL ``{"errors": [{"message", "extensions": {"code"}}]}`` shape; the codes are
sandbox choices (PortSwigger documents the shape, not these numbers).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners import _graphql
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, vendor_router

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
    return json_reply(200, _graphql.execute(body["query"], body.get("variables"), _RESOLVERS))


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}",
    "auth": "Authorization: <api key> (no scheme)",
    "valid_credentials": {"api_key": "burp-api-key-0001"},
    "notes": "GraphQL subset: sites, site_tree, scans, scan(id); noperm -> 200 with errors",
}
