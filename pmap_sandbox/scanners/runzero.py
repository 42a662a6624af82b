"""runZero API v1.0 (``https://console.runzero.com/api/v1.0``): organization and asset export.

Auth: ``Authorization: Bearer <key>``; the key prefix is its scope: ``ET`` export token (export
routes only), ``OT`` organization key, ``CT`` account key (picks the org with ``_oid``). A key
without one of these prefixes is refused. Errors are ``{"error": "..."}`` (shape not confirmed: runZero's
OpenAPI document, runZeroInc/runzero-api, describes the 401 only as "Access token is missing or invalid",
with no body schema).
"""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_scheme, vendor_router

KEY = "runzero"
router = vendor_router(KEY)
_API = "/api/v1.0"
ORG_ID = "f1e2d3c4-0000-4000-8000-00000000r0z0"
PREFIXES = ("CT", "OT", "ET")


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"error": message})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "authentication required"),
        sc.BAD: (401, "invalid api key"),
        sc.ECHO: (401, "invalid api key: {echo}"),
        sc.RATELIMIT: (429, "rate limit exceeded"),
        sc.DOWN: (503, "service unavailable"),
    },
)


async def _auth(request: Request) -> str:
    token = parse_scheme(request.headers.get("authorization"), "Bearer")
    if token and not token.startswith(PREFIXES):
        token = None  # not a runZero key
    marks = await guard(KEY, STYLE, request, [token])
    if sc.NOPERM in marks:
        raise Reply(_error(403, "access denied"))
    return (token or "")[:2]


@router.get(_API + "/org")
async def org(request: Request) -> Response:
    """The key's organization (organization or account keys only)."""
    kind = await _auth(request)
    if kind == "ET":
        raise Reply(_error(403, "export tokens can only access export endpoints"))
    now = int(time.time())
    return json_reply(
        200,
        {
            "id": request.query_params.get("_oid") or ORG_ID,
            "name": "Sandbox Org",
            "description": "",
            "created_at": now - 86400 * 100,
            "updated_at": now,
            "inactive": False,
            "deactivated_at": 0,
            "asset_count": 1,
            "service_count": 3,
            "project": False,
            "parent_id": "",
            "expiration_assets_stale": 365,
            "expiration_assets_offline": 365,
            "expiration_scans": 365,
        },
    )


@router.get(_API + "/export/org/assets.json")
async def export_assets(request: Request, page_size: int = 100) -> Response:
    """Asset export (any key type)."""
    await _auth(request)
    asset = {
        "id": "a0000000-sandbox-asset",
        "organization_id": ORG_ID,
        "addresses": ["10.0.0.11"],
        "names": ["WEB01"],
        "os": "Ubuntu Linux",
        "type": "Server",
        "alive": True,
        "first_seen": 1704164645,
        "last_seen": 1704769445,
        "service_count": 3,
    }
    return json_reply(200, [asset][: max(page_size, 0)])


VENDOR = {
    "category": "discovery",
    "base_path": f"/{KEY}/api/v1.0",
    "auth": "Authorization: Bearer <CT|OT|ET key>",
    "valid_credentials": {"api_key": "OT0123456789abcdef0123456789abcdef"},
    "notes": "prefix is the scope: ET export-only (org -> 403), OT organization, CT account (over-privileged)",
}
