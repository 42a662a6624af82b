"""OWASP ZAP API (``http://HOST:8080``): core version and alerts.

Auth: ``X-ZAP-API-Key`` header or ``apikey`` query parameter. By default ZAP answers a bad or missing
key with no HTTP answer at all: it closes the connection ("fail silently", zaproxy
``zap/src/main/java/org/zaproxy/zap/extension/api/API.java``; zaproxy/zaproxy#8300, "Empty reply from
server"). With "Report permission errors via API" (``api.reportpermerrors=true``) it answers HTTP 400
with ``{"code": "bad_api_key", "message": "Invalid or missing API key"}`` (``API.handleException``,
``ApiException.toJSON``). The sandbox plays the reporting mode so the refusal is visible; it never
answers 401 or 403 for a key. ZAP has no license, roles or rate limit: those markers use the same
error shape (``internal_error`` is ZAP's code for a 500).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, guard, json_reply, vendor_router

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


@router.get("/JSON/alert/view/alerts/")
async def alerts(request: Request) -> Response:
    """Alerts recorded by ZAP (one sample)."""
    await _auth(request)
    return json_reply(
        200,
        {
            "alerts": [
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
                }
            ]
        },
    )


VENDOR = {
    "category": "DAST",
    "base_path": f"/{KEY}",
    "auth": "X-ZAP-API-Key (or ?apikey=)",
    "valid_credentials": {"api_key": "zap-api-key-0001"},
    "notes": "bad/missing key -> 400 bad_api_key (ZAP with api.reportpermerrors=true; by default ZAP closes the "
    "connection without an answer); no license or roles",
}
