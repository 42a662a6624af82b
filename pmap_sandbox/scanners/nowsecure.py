"""NowSecure Platform GraphQL (``https://api.nowsecure.com/graphql``), Bearer token.

Supports the minimal ``auto { applications { ... } }`` query. Error bodies use the GraphQL
``{"errors": [{"message"}]}`` shape (only client/community sources are public).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners import _graphql
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_scheme, vendor_router

KEY = "nowsecure"
router = vendor_router(KEY)


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"errors": [{"message": message}]})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Unauthorized"),
        sc.BAD: (401, "Unauthorized"),
        sc.ECHO: (401, "Unauthorized: invalid token {echo}"),
        sc.RATELIMIT: (429, "Too Many Requests"),
        sc.DOWN: (503, "Service Unavailable"),
    },
)

_APPS = [
    {
        "ref": "5c4f0a2e-sandbox-app",
        "title": "Shop",
        "platformType": "android",
        "packageKey": "com.example.shop",
        "group": {"ref": "g-0001", "name": "Default"},
    }
]


@router.post("/graphql")
async def graphql(request: Request) -> Response:
    """Run a minimal query against ``auto``."""
    marks = await guard(KEY, STYLE, request, [parse_scheme(request.headers.get("authorization"), "Bearer")])
    try:
        body = await request.json()
    except ValueError:
        raise Reply(_error(400, "Invalid JSON body")) from None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise Reply(_error(400, "Must provide query string."))
    if sc.NOPERM in marks:
        return json_reply(200, {"data": None, "errors": [{"message": "Forbidden", "path": ["auto"]}]})
    return json_reply(
        200, _graphql.execute(body["query"], body.get("variables"), {"auto": lambda f: {"applications": _APPS}})
    )


VENDOR = {
    "category": "mobile",
    "base_path": f"/{KEY}",
    "auth": "Authorization: Bearer <token>",
    "valid_credentials": {"token": "nowsecure-token-0001"},
    "notes": "GraphQL endpoint at <base>/graphql; noperm -> 200 with errors",
}
