"""MobSF REST API (``https://HOST/api/v1``): recent scans and the JSON report.

Auth: ``X-Mobsf-Api-Key`` (checked first) or ``Authorization: <key>`` with no scheme, as MobSF's
middleware reads them; failures answer 401 ``{"error": "You are unauthorized to make this request."}``.
``/scans`` answers ``{"content", "count", "num_pages"}`` (``page``, ``page_size``). Source:
MobSF/Mobile-Security-Framework-MobSF ``mobsf/MobSF/views/api/api_middleware.py``,
``mobsf/MobSF/views/api/api_static_analysis.py``, ``mobsf/MobSF/views/home.py`` (``RecentScans``).
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, vendor_router

KEY = "mobsf"
router = vendor_router(KEY)
_API = "/api/v1"
HASH = "3a552566097a8de588b8184b059b0158"
_UNAUTHORIZED = "You are unauthorized to make this request."


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"error": message})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, _UNAUTHORIZED),
        sc.BAD: (401, _UNAUTHORIZED),
        sc.ECHO: (401, _UNAUTHORIZED + " Key: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Service unavailable"),
    },
)


async def _auth(request: Request) -> set[str]:
    key = request.headers.get("x-mobsf-api-key")
    if key is None:
        key = request.headers.get("authorization")
    return await guard(KEY, STYLE, request, [key])


@router.get(_API + "/scans")
async def scans(request: Request, page: int = 1, page_size: int = 10) -> Response:
    """Recent scans, paginated."""
    await _auth(request)
    item = {
        "ANALYZER": "static_analyzer",
        "SCAN_TYPE": "apk",
        "FILE_NAME": "shop.apk",
        "APP_NAME": "Shop",
        "PACKAGE_NAME": "com.example.shop",
        "VERSION_NAME": "1.0.0",
        "MD5": HASH,
        "TIMESTAMP": "2024-01-02T03:04:05.000Z",
    }
    if page != 1:  # Django's paginator: EmptyPage, which MobSF answers 500 {"error": ...}
        raise Reply(_error(500, "That page number is less than 1" if page < 1 else "That page contains no results"))
    return json_reply(200, {"content": [item], "count": 1, "num_pages": 1})


@router.post(_API + "/report_json")
async def report_json(request: Request) -> Response:
    """The static-analysis report of one scan (form field ``hash``).

    As MobSF's ``api_json_report``: no ``hash`` -> 422 ``{"error": "Missing Parameters"}``; not an MD5 ->
    400 ``{"error": "Invalid scan hash"}``; no such scan -> 404 ``{"report": "Report not Found"}``."""
    await _auth(request)
    form = await request.form()
    if "hash" not in form:
        raise Reply(_error(422, "Missing Parameters"))
    digest = str(form.get("hash"))
    if not re.fullmatch(r"[0-9a-f]{32}", digest):
        raise Reply(_error(400, "Invalid scan hash"))
    if digest != HASH:
        raise Reply(json_reply(404, {"report": "Report not Found"}))
    return json_reply(
        200,
        {
            "file_name": "shop.apk",
            "app_name": "Shop",
            "package_name": "com.example.shop",
            "md5": HASH,
            "version_name": "1.0.0",
            "security_score": 42,
            "code_analysis": {
                "findings": {
                    "android_insecure_random": {
                        "files": {"com/example/shop/Token.java": "12"},
                        "metadata": {
                            "cwe": "CWE-330: Use of Insufficiently Random Values",
                            "severity": "warning",
                            "description": "The App uses an insecure Random Number Generator.",
                        },
                    }
                }
            },
        },
    )


VENDOR = {
    "category": "mobile",
    "base_path": f"/{KEY}/api/v1",
    "auth": "X-Mobsf-Api-Key or Authorization: <key>",
    "valid_credentials": {"api_key": "mobsf-api-key-0001"},
    "notes": "no license or roles: expired/expiring/noperm/admin change nothing",
}
