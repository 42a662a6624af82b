"""MobSF REST API (``https://HOST/api/v1``): recent scans and the JSON report.

Auth: ``X-Mobsf-Api-Key`` (checked first) or ``Authorization: <key>`` with no scheme, as MobSF's
middleware reads them; failures answer 401 ``{"error": "You are unauthorized to make this request."}``.
``/scans`` answers ``{"content", "count", "num_pages"}`` (``page``, ``page_size``). Source:
MobSF/Mobile-Security-Framework-MobSF ``mobsf/MobSF/views/api/api_middleware.py``,
``mobsf/MobSF/views/api/api_static_analysis.py``, ``mobsf/MobSF/views/home.py`` (``RecentScans``: ordered by
``-TIMESTAMP``, Django's paginator).

A seeded key sees ``count`` generated findings over apps of ``per_app`` (default 100) code-analysis rules, one
latest scan per app listed newest first; with ``rescanned`` every app also has an older scan (listed after all the
latest ones) whose report holds a rule the latest one no longer does. Both the scan list and each report are
counted requests.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, seeded, vendor_router

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


def _key(request: Request) -> str | None:
    key = request.headers.get("x-mobsf-api-key")
    return request.headers.get("authorization") if key is None else key


async def _auth(request: Request) -> set[str]:
    return await guard(KEY, STYLE, request, [_key(request)])


_LEVELS = ("high", "warning", "info", "hotspot")


def _per_app(data: dict[str, Any]) -> int:
    return max(1, int(data.get("per_app") or 100))


def _apps(data: dict[str, Any]) -> int:
    return -(-int(data["count"]) // _per_app(data))


def scan_hash(app: int, older: bool = False) -> str:
    """The MD5 of seeded app ``app``'s latest (or older) scan."""
    return hashlib.md5(f"app{app}-{'older' if older else 'latest'}".encode()).hexdigest()  # noqa: S324 (an id)


def _seeded_scans(data: dict[str, Any]) -> list[dict[str, Any]]:
    apps = _apps(data)
    listed = [(a, False) for a in range(apps)] + ([(a, True) for a in range(apps)] if data.get("rescanned") else [])
    return [{"ANALYZER": "static_analyzer", "SCAN_TYPE": "apk", "FILE_NAME": f"app{a}.apk", "APP_NAME": f"App {a}",
             "PACKAGE_NAME": f"com.example.app{a}", "VERSION_NAME": "1.0.0" if older else "2.0.0",
             "MD5": scan_hash(a, older), "TIMESTAMP": f"2024-0{2 if older else 3}-01T00:{a % 60:02d}:00.000Z"}
            for a, older in listed]


def _seeded_report(data: dict[str, Any], app: int, older: bool) -> dict[str, Any]:
    per = _per_app(data)
    numbers = range(app * per, min((app + 1) * per, int(data["count"])))
    rules = {f"generated_rule_{i}": {
        "files": {f"com/example/app{app}/Class{i}.java": str(i % 300 + 1)},
        "metadata": {"cwe": "CWE-330: Use of Insufficiently Random Values", "severity": _LEVELS[i % len(_LEVELS)],
                     "description": f"Generated finding {i}", "masvs": "MSTG-CRYPTO-6"}} for i in numbers}
    # a rule that holds, as MobSF lists it among the findings: the reader skips it (a "secure check")
    rules["generated_secure_check"] = {"files": {f"com/example/app{app}/Pinning.java": "1"}, "metadata": {
        "severity": "secure", "description": "This App uses SSL certificate pinning."}}
    if older:
        rules["generated_rule_gone"] = {"files": {}, "metadata": {"severity": "high", "description": "Fixed since"}}
    return {"file_name": f"app{app}.apk", "app_name": f"App {app}", "package_name": f"com.example.app{app}",
            "md5": scan_hash(app, older), "version_name": "1.0.0" if older else "2.0.0", "security_score": 50,
            "code_analysis": {"findings": rules}}


@router.get(_API + "/scans")
async def scans(request: Request, page: int = 1, page_size: int = 10) -> Response:
    """Recent scans, paginated."""
    await _auth(request)
    data = seeded(request, KEY, _key(request), STYLE)
    if data is not None:
        listed = _seeded_scans(data)
        pages = max(1, -(-len(listed) // max(page_size, 1)))
        if page_size < 1 or not 1 <= page <= pages:  # Django's paginator: EmptyPage / an invalid page size
            raise Reply(_error(500, "That page contains no results"))
        return json_reply(200, {"content": listed[(page - 1) * page_size:page * page_size], "count": len(listed),
                                "num_pages": pages})
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
    data = seeded(request, KEY, _key(request), STYLE)
    if data is not None:
        for app in range(_apps(data)):
            for older in (False, True) if data.get("rescanned") else (False,):
                if digest == scan_hash(app, older):
                    return json_reply(200, _seeded_report(data, app, older))
        raise Reply(json_reply(404, {"report": "Report not Found"}))
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
