"""OWASP ZAP API (``http://HOST:8080``): core version and alerts.

Auth: ``X-ZAP-API-Key`` header or ``apikey`` query parameter. By default ZAP answers a bad or missing
key with no HTTP answer at all: it closes the connection ("fail silently", zaproxy
``zap/src/main/java/org/zaproxy/zap/extension/api/API.java``; zaproxy/zaproxy#8300, "Empty reply from
server"). With "Report permission errors via API" (``api.reportpermerrors=true``) it answers HTTP 400
with ``{"code": "bad_api_key", "message": "Invalid or missing API key"}`` (``API.handleException``,
``ApiException.toJSON``). The sandbox plays the reporting mode so the refusal is visible; it never
answers 401 or 403 for a key. ZAP has no license, roles or rate limit: those markers use the same
error shape (``internal_error`` is ZAP's code for a 500).

A seeded key's session holds ``count`` generated alerts (``/JSON/alert/view/alerts/``, paged by ``start`` and
``count`` as the API documents: "paginating with 'start' position and 'count' of alerts"). ZAP keeps no fixed
state; ``false_positive_every`` marks alerts "False Positive" (ZAP's confidence for a false positive).
"""

from __future__ import annotations

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
    seeded,
    store,
    vendor_router,
)

KEY = "zap"
router = vendor_router(KEY)
_CODES = {400: "bad_api_key", 429: "rate_limited", 503: "internal_error"}


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"code": _CODES.get(status, "internal_error"), "message": message})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (400, "Invalid or missing API key"),
        sc.BAD: (400, "Invalid or missing API key"),
        sc.ECHO: (400, "Invalid or missing API key: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "ZAP is not available"),
    },
)


async def _auth(request: Request) -> set[str]:
    key = request.headers.get("x-zap-api-key") or request.query_params.get("apikey")
    return await guard(KEY, STYLE, request, [key])


@router.get("/JSON/core/view/version/")
async def version(request: Request) -> Response:
    """ZAP's version."""
    await _auth(request)
    return json_reply(200, {"version": "2.15.0"})


# --- spider and active scan (zaproxy.org/docs/api: spider/action/scan, spider/view/status, ascan/action/scan,
# ascan/view/status): each returns a scan id; its status is a percentage that reaches "100"

POLL_FAILS = "pollfail"  # vendor-specific marker: the 2nd active-scan status read answers bad_api_key, echoing the key
_PROGRESS = ("40", "100")  # a spider's status reads; an active scan adds a "0" read first


def _state(request: Request) -> dict[str, Any]:
    account = request.headers.get("x-zap-api-key") or request.query_params.get("apikey") or ""
    state: dict[str, Any] = store(request, KEY).setdefault(account, {"spiders": [], "scans": [], "crawled": set()})
    return state


def _url(request: Request) -> str:
    url = request.query_params.get("url") or ""
    if not url.startswith(("http://", "https://")):
        raise Reply(json_reply(400, {"code": "illegal_parameter", "message": "Provided parameter has illegal or "
                                                                             "unrecognized value: url"}))
    return url


def _scan_of(runs: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    scan_id = request.query_params.get("scanId") or ""
    if not scan_id.isdigit() or int(scan_id) >= len(runs):
        raise Reply(json_reply(400, {"code": "does_not_exist", "message": "Does Not Exist: scanId"}))
    return runs[int(scan_id)]


@router.get("/JSON/spider/action/scan/")
async def spider_scan(request: Request) -> Response:
    """Start the spider on ``url`` -> ``{"scan": "<id>"}``."""
    await _auth(request)
    state, url = _state(request), _url(request)
    state["spiders"].append({"url": url, "reads": 0})
    return json_reply(200, {"scan": str(len(state["spiders"]) - 1)})


@router.get("/JSON/spider/view/status/")
async def spider_status(request: Request) -> Response:
    """The spider's progress in percent; at 100 its URL is in the sites tree."""
    await _auth(request)
    state = _state(request)
    run = _scan_of(state["spiders"], request)
    run["reads"] += 1
    status = _PROGRESS[min(run["reads"], len(_PROGRESS)) - 1]
    if status == "100":
        state["crawled"].add(run["url"])
    return json_reply(200, {"status": status})


@router.get("/JSON/ascan/action/scan/")
async def ascan_scan(request: Request) -> Response:
    """Start the active scan of ``url`` (crawled first, else 400 url_not_found) -> ``{"scan": "<id>"}``."""
    await _auth(request)
    state, url = _state(request), _url(request)
    if url not in state["crawled"]:
        raise Reply(json_reply(400, {"code": "url_not_found", "message": "URL Not Found in the Scan Tree"}))
    state["scans"].append({"url": url, "reads": 0})
    return json_reply(200, {"scan": str(len(state["scans"]) - 1)})


@router.get("/JSON/ascan/view/status/")
async def ascan_status(request: Request) -> Response:
    """The active scan's progress in percent: 0, 40, then 100."""
    await _auth(request)
    run = _scan_of(_state(request)["scans"], request)
    run["reads"] += 1
    key = request.headers.get("x-zap-api-key") or ""
    if POLL_FAILS in key.lower() and run["reads"] == 2:
        raise Reply(STYLE.reply(sc.ECHO, echo_text(request, [])))
    progress = ("0", *_PROGRESS)
    return json_reply(200, {"status": progress[min(run["reads"], len(progress)) - 1]})


#: the first generated alert's host; alert ``i`` is on its own path (``/page{i}``)
SEED_SITE = "https://app.example.test"
_RISKS = ("High", "Medium", "Low", "Informational")


def seeded_alert(i: int, data: dict[str, Any]) -> dict[str, Any]:
    """Generated alert ``i`` (deterministic), in the API's alert shape; every ``false_positive_every``-th has
    the confidence "False Positive" (ZAP keeps no fixed state: ``fixed_every`` is ignored)."""
    every = int(data.get("false_positive_every", 0))
    false_positive = every > 0 and i % every == every - 1
    return {
        "id": str(i), "pluginId": str(10000 + i % 50), "alertRef": f"{10000 + i % 50}-1",
        "alert": f"Generated alert {i % 50}", "name": f"Generated alert {i % 50}",
        "risk": _RISKS[i % len(_RISKS)], "confidence": "False Positive" if false_positive else "Medium",
        "url": f"{SEED_SITE}/page{i}", "method": "GET", "param": f"q{i % 3}", "attack": "", "evidence": "",
        "cweid": "79", "wascid": "8", "sourceid": "1", "messageId": str(i + 1),
        "description": "A generated alert.", "solution": "Fix it.", "reference": "https://owasp.org/",
        "tags": {}, "other": "",
    }


def _window(request: Request) -> tuple[str, int, int | None]:
    """``baseurl``, ``start`` and ``count`` (0 or absent: no limit); a bad number is ZAP's illegal_parameter."""
    try:
        start = int(request.query_params.get("start") or 0)
        count = int(request.query_params.get("count") or 0) or None
    except ValueError:
        raise Reply(json_reply(400, {"code": "illegal_parameter",
                                     "message": "Provided parameter has illegal or unrecognized value"})) from None
    return request.query_params.get("baseurl") or "", max(start, 0), count


@router.get("/JSON/alert/view/alerts/")
async def alerts(request: Request) -> Response:
    """Alerts recorded by ZAP (two samples; a seeded key's generated set), those under ``baseurl`` when given,
    paged by ``start``/``count`` (the alert component's view; ``core/view/alerts`` is its older twin)."""
    await _auth(request)
    base, start, count = _window(request)
    data = seeded(request, KEY, request.headers.get("x-zap-api-key") or request.query_params.get("apikey"), STYLE)
    if data is not None:
        under = [i for i in range(int(data["count"])) if f"{SEED_SITE}/page{i}".startswith(base)]
        window = under[start:] if count is None else under[start:start + count]
        return json_reply(200, {"alerts": [seeded_alert(i, data) for i in window]})
    found = [a for a in _ALERTS if a["url"].startswith(base)]
    return json_reply(200, {"alerts": found[start:start + count if count else None]})


_ALERTS: list[dict[str, Any]] = [
                {
                    "id": "0",
                    "pluginId": "10038",
                    "alertRef": "10038-1",
                    "alert": "Content Security Policy (CSP) Header Not Set",
                    "name": "Content Security Policy (CSP) Header Not Set",
                    "risk": "Medium",
                    "confidence": "High",
                    "url": "https://shop.example.test/",
                    "method": "GET",
                    "param": "",
                    "evidence": "",
                    "cweid": "693",
                    "wascid": "15",
                    "sourceid": "3",
                    "messageId": "1",
                    "description": "Content Security Policy (CSP) is an added layer of security.",
                    "solution": "Ensure that your web server sets the Content-Security-Policy header.",
                    "reference": "https://developer.mozilla.org/en-US/docs/Web/Security/CSP",
                    "tags": {},
                    "other": "",
                },
                {
                    "id": "1",
                    "pluginId": "10020",
                    "alertRef": "10020-1",
                    "alert": "Missing Anti-clickjacking Header",
                    "name": "Missing Anti-clickjacking Header",
                    "risk": "Medium",
                    "confidence": "Medium",
                    "url": "https://shop.example.test/cart",
                    "method": "GET",
                    "param": "x-frame-options",
                    "evidence": "",
                    "cweid": "1021",
                    "wascid": "15",
                    "sourceid": "3",
                    "messageId": "7",
                    "description": "The response does not protect against 'ClickJacking' attacks.",
                    "solution": "Set the X-Frame-Options or Content-Security-Policy frame-ancestors header.",
                    "reference": "https://owasp.org/www-community/attacks/Clickjacking",
                    "tags": {},
                    "other": "",
                },
]


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}",
    "auth": "X-ZAP-API-Key (or ?apikey=)",
    "valid_credentials": {"api_key": "zap-api-key-0001"},
    "notes": "bad/missing key -> 400 bad_api_key (ZAP with api.reportpermerrors=true; by default ZAP closes the "
    "connection without an answer); no license or roles; spider and active scan of a URL (status percentages to "
    "100); 'pollfail' -> the 2nd active-scan status read is a bad_api_key echoing the key",
}
