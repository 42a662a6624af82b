"""Veracode REST API with ``VERACODE-HMAC-SHA-256`` request signing, verified for real.

The signature is HMAC-SHA256 over ``id={id}&host={host}&url={path?query}&method={METHOD}`` with a key
derived from the hex API secret: ``HMAC(HMAC(HMAC(secret, nonce), ts), "vcode_request_version_1")``
(Veracode's published algorithm). The sandbox knows every id's secret because it derives it:
:func:`secret_for` (tests and users get a valid pair from ``SANDBOX_VENDORS["veracode"]``). Markers are
read from the API id (the secret must stay hex). Timestamps must be within 5 minutes.

A seeded API id sees ``count`` generated findings over applications of ``per_app`` (default: all in one), listed
by ``GET /appsec/v1/applications``; ``GET /appsec/v2/applications/{guid}/findings`` answers the application's SCA
findings for ``scan_type=SCA`` and the others without it (every ``sca_every``-th finding is SCA). Both page by
``page`` (from 0) and ``size`` in HAL (``_embedded``, absent on an empty page, and ``page.total_pages``). Every
``fixed_every``-th finding is CLOSED, every ``mitigated_every``-th one has an approved mitigation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, seeded, vendor_router

KEY = "veracode"
router = vendor_router(KEY)
SCHEME = "VERACODE-HMAC-SHA-256"
MAX_SKEW_MS = 5 * 60 * 1000
_SEED = b"pmap-sandbox-veracode"
_PARAMS = re.compile(r"(\w+)=([^,]*)")
_REASONS = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests", 503: "Service Unavailable"}


def secret_for(api_id: str) -> str:
    """The 128-hex-digit API secret the sandbox accepts for ``api_id``."""
    # 128 hex characters, like a real Veracode API key secret
    return hmac.new(_SEED, api_id.encode(), hashlib.sha512).hexdigest()


def signature(api_id: str, secret_hex: str, host: str, url: str, method: str, ts: str, nonce_hex: str) -> str:
    """Veracode's request signature (hex)."""
    data = f"id={api_id}&host={host}&url={url}&method={method.upper()}".encode()
    k_nonce = hmac.new(bytes.fromhex(secret_hex), bytes.fromhex(nonce_hex), hashlib.sha256).digest()
    k_date = hmac.new(k_nonce, ts.encode(), hashlib.sha256).digest()
    k_sig = hmac.new(k_date, b"vcode_request_version_1", hashlib.sha256).digest()
    return hmac.new(k_sig, data, hashlib.sha256).hexdigest()


def authorization_header(
    api_id: str, secret_hex: str, host: str, url: str, method: str, ts: int | None = None, nonce_hex: str | None = None
) -> str:
    """A signed ``Authorization`` value (used by tests; mirrors Veracode's client libraries)."""
    ts_s = str(ts if ts is not None else int(time.time() * 1000))
    nonce = nonce_hex or secrets.token_hex(16)
    sig = signature(api_id, secret_hex, host, url, method, ts_s, nonce)
    return f"{SCHEME} id={api_id},ts={ts_s},nonce={nonce},sig={sig}"


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"http_code": status, "http_status": _REASONS.get(status, "Error"), "message": message})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Missing or invalid Authorization header"),
        sc.BAD: (401, "Invalid credentials"),
        sc.ECHO: (401, "Invalid credentials: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Service unavailable"),
    },
)


def _verify(request: Request) -> str | None:
    """The API id when the signature, timestamp and id/secret pair check out, else None."""
    header = request.headers.get("authorization") or ""
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        return None
    params: dict[str, str] = dict(_PARAMS.findall(rest))
    api_id, ts, nonce, sig = (params.get(k, "") for k in ("id", "ts", "nonce", "sig"))
    if not (api_id and ts.isdigit() and nonce and sig):
        return None
    if abs(int(ts) - int(time.time() * 1000)) > MAX_SKEW_MS:
        return None
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    url = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    host_header = request.headers.get("host", "")
    hosts = {host_header, host_header.rsplit(":", 1)[0]} if host_header else set()
    try:
        candidates = [signature(api_id, secret_for(api_id), h, url, request.method, ts, nonce) for h in hosts]
    except ValueError:  # a nonce that is not hex
        return None
    if any(hmac.compare_digest(c.lower(), sig.lower()) for c in candidates):
        return api_id
    return None


async def _auth(request: Request) -> set[str]:
    api_id = _verify(request)
    marks = await guard(KEY, STYLE, request, [api_id])
    if sc.EXPIRED in marks:
        # an expired Veracode API credential no longer authenticates
        raise Reply(_error(401, "API credentials expired"))
    return marks


@router.get("/api/authn/v2/users/self")
async def users_self(request: Request) -> Response:
    """The API user, its roles and its API credential expiry."""
    marks = await _auth(request)
    api_id = _verify(request) or ""
    # role_name values as the Identity API lists them (extreviewer = "Reviewer", extadmin = "Administrator")
    roles = [] if sc.NOPERM in marks else [{"role_name": "extreviewer", "role_description": "Reviewer"}]
    if sc.ADMIN in marks:
        roles.append({"role_name": "extadmin", "role_description": "Administrator"})
    expiry = sc.license_expiry(marks) if sc.EXPIRING in marks else sc.license_expiry(set())
    return json_reply(
        200,
        {
            "user_id": "00000000-sandbox-veracode-user",
            "user_legacy_id": 1001,
            "user_name": "pmap_api",
            "email_address": "pmap@example.com",
            "first_name": "PMAP",
            "last_name": "Integration",
            "login_enabled": True,
            "saml_user": False,
            "roles": roles,
            "api_credentials": {
                "api_id": api_id,
                "expiration_ts": expiry.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            },
            "organization": {"org_id": "sandbox-org", "org_name": "Sandbox Org"},
        },
    )


#: the first generated finding's first-found time; finding ``i`` was found ``i`` hours later
SEED_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)


def _window(request: Request) -> tuple[int, int]:
    try:
        page, size = int(request.query_params.get("page", "0")), int(request.query_params.get("size", "50"))
    except ValueError:
        raise Reply(_error(400, "page and size must be integers")) from None
    if page < 0 or size < 1:
        raise Reply(_error(400, "page must be at least 0 and size at least 1"))
    return page, size


def _hal(request: Request, key: str, items: Sequence[Any],
         render: Callable[[Any], dict[str, Any]] = lambda item: dict(item)) -> Response:
    """One HAL page of ``items`` (only the page's items are rendered)."""
    page, size = _window(request)
    listed = [render(item) for item in items[page * size:(page + 1) * size]]
    body: dict[str, Any] = {"page": {"size": size, "total_elements": len(items),
                                     "total_pages": -(-len(items) // size), "number": page}}
    if listed:
        body["_embedded"] = {key: listed}
    return json_reply(200, body)


def _per_app(data: dict[str, Any]) -> int:
    return max(1, int(data.get("per_app") or int(data["count"]) or 1))


def _every(data: dict[str, Any], name: str, i: int) -> bool:
    every = int(data.get(name, 0))
    return every > 0 and i % every == every - 1


def seeded_finding(i: int, data: dict[str, Any]) -> dict[str, Any]:
    """Generated finding ``i`` (deterministic) in the Findings API's shape: STATIC, or SCA every ``sca_every``-th."""
    fixed, mitigated = _every(data, "fixed_every", i), _every(data, "mitigated_every", i)
    found = SEED_EPOCH + timedelta(hours=i)
    status = {
        "status": "CLOSED" if fixed else "OPEN", "new": False,
        "first_found_date": found.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "last_seen_date": (found + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "resolution": "MITIGATED" if mitigated else "UNRESOLVED",
        "resolution_status": "APPROVED" if mitigated else "NONE",
    }
    base = {"issue_id": 1000 + i, "count": 1, "context_type": "APPLICATION", "violates_policy": i % 2 == 0,
            "description": f"Generated finding {i}", "finding_status": status}
    severity = (5, 4, 3, 2, 1, 0)[i % 6]
    if _every(data, "sca_every", i):
        return {**base, "scan_type": "SCA", "finding_details": {
            "severity": severity, "component_id": f"comp-{i}", "component_filename": f"lib{i}-1.0.{i}.jar",
            "version": f"1.0.{i}", "cwe": {"id": 502, "name": "Deserialization of Untrusted Data"},
            "cve": {"name": f"CVE-2024-{30000 + i}", "cvss": 7.5, "severity": severity,
                    "cvss3": {"score": 7.5, "severity": severity, "vector": "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}},
            "component_path": [{"path": f"lib/lib{i}-1.0.{i}.jar"}]}}
    return {**base, "scan_type": "STATIC", "finding_details": {
        "severity": severity, "cwe": {"id": 89, "name": "SQL Injection"},
        "finding_category": {"id": 19, "name": "SQL Injection"}, "module": "shop.war", "procedure": f"handler{i}",
        "file_path": f"src/main/java/Handler{i}.java", "file_line_number": i % 300 + 1}}


@router.get("/appsec/v1/applications")
async def applications(request: Request) -> Response:
    """Application profiles (a seeded API id's generated ones; otherwise one sample), HAL-paged."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Access denied"))
    data = seeded(request, KEY, _verify(request), STYLE)
    total = -(-int(data["count"]) // _per_app(data)) if data is not None else 1
    apps = [{"guid": f"app-{a}", "id": 500 + a, "profile": {"name": f"app{a}", "business_criticality": "HIGH"},
             "created": "2024-01-01T00:00:00.000Z", "modified": "2024-03-01T00:00:00.000Z"} for a in range(total)]
    return _hal(request, "applications", apps)


@router.get("/appsec/v2/applications/{guid}/findings")
async def findings(guid: str, request: Request) -> Response:
    """Findings of one application (403 without a results role); SCA findings only for ``scan_type=SCA``."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Access denied"))
    data = seeded(request, KEY, _verify(request), STYLE)
    if data is not None:
        number = guid.removeprefix("app-")
        per = _per_app(data)
        if not number.isdigit() or int(number) * per >= max(int(data["count"]), 1):
            raise Reply(_error(404, "Application not found"))
        sca = request.query_params.get("scan_type", "").upper() == "SCA"
        first, end = int(number) * per, min((int(number) + 1) * per, int(data["count"]))
        chosen = [i for i in range(first, end) if _every(data, "sca_every", i) == sca]
        return _hal(request, "findings", chosen, lambda i: seeded_finding(i, data))
    if request.query_params.get("scan_type", "").upper() == "SCA":
        return _hal(request, "findings", [])
    item = {
        "issue_id": 1,
        "scan_type": "STATIC",
        "description": "SQL injection",
        "count": 1,
        "context_type": "APPLICATION",
        "context_guid": guid,
        "violates_policy": True,
        "finding_status": {
            "status": "OPEN",
            "first_found_date": datetime(2024, 1, 2, tzinfo=UTC).isoformat(),
            "resolution": "UNRESOLVED",
            "new": True,
        },
        "finding_details": {
            "severity": 4,
            "cwe": {"id": 89, "name": "SQL Injection"},
            "file_path": "src/Main.java",
            "file_line_number": 42,
        },
    }
    return json_reply(
        200,
        {"_embedded": {"findings": [item]}, "page": {"size": 100, "total_elements": 1, "total_pages": 1, "number": 0}},
    )


_EXAMPLE_ID = "vera01-sandbox-id-0001"
VENDOR = {
    "category": "SAST",
    "base_path": f"/{KEY}",
    "auth": "Authorization: VERACODE-HMAC-SHA-256 id=..,ts=..,nonce=..,sig=..",
    "valid_credentials": {"api_id": _EXAMPLE_ID, "api_key": secret_for(_EXAMPLE_ID)},
    "notes": "any api_id works with api_key = pmap_sandbox.scanners.veracode.secret_for(api_id); markers read from "
    "api_id; host signed may include or omit the port; 'expired' -> 401 (expired credentials), 'expiring' -> "
    "api_credentials.expiration_ts in 10 days; error body shape {http_code, http_status, message} unconfirmed",
}
