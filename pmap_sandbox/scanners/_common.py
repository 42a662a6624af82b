"""Plumbing shared by the simulated scanner APIs: vendor routers, credential parsing, scenario guard.

A vendor handler raises :class:`Reply` with a ready response (the vendor's own error shape) from
anywhere, including dependencies; :class:`VendorRoute` turns it into that response, so error bodies
never take FastAPI's ``{"detail": ...}`` shape.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from pmap_sandbox import scenarios

MISSING = "missing"


class Reply(Exception):
    """Carries a finished response out of a handler or dependency."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class VendorRoute(APIRoute):
    """An APIRoute that answers a raised :class:`Reply` with its response."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except Reply as reply:
                return reply.response

        return handler


def vendor_router(vendor_key: str) -> APIRouter:
    """The router for one vendor, mounted under ``/<vendor_key>``."""
    return APIRouter(prefix=f"/{vendor_key}", tags=[vendor_key], route_class=VendorRoute)


def json_reply(
    status: int, body: Any, headers: Mapping[str, str] | None = None, media_type: str | None = None
) -> JSONResponse:
    """A JSON response (helper to keep vendor modules short)."""
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=media_type)


# ---- credential parsing -------------------------------------------------------------------------


def parse_x_apikeys(
    value: str | None, access_field: str = "accessKey", key_field: str = "secretKey"
) -> tuple[str, str] | None:
    """``accessKey=A; secretKey=S;`` (spaces and the trailing ``;`` optional) -> ``(A, S)``."""
    if not value:
        return None
    parts: dict[str, str] = {}
    for chunk in value.split(";"):
        name, sep, val = chunk.strip().partition("=")
        if sep:
            parts[name.strip().lower()] = val.strip()
    access, secret = parts.get(access_field.lower()), parts.get(key_field.lower())
    if not access or not secret:
        return None
    return access, secret


def parse_basic(value: str | None) -> tuple[str, str] | None:
    """``Basic base64(user:password)`` -> ``(user, password)``; None if absent or malformed."""
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def parse_scheme(value: str | None, *schemes: str) -> str | None:
    """The credential after one of ``schemes`` (case-insensitive), e.g. ``Bearer x`` -> ``x``."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() in {s.lower() for s in schemes} and token.strip():
        return token.strip()
    return None


# ---- errors and the scenario guard --------------------------------------------------------------

DEFAULT_MESSAGES: Mapping[str, tuple[int, str]] = {
    MISSING: (401, "Unauthorized"),
    scenarios.BAD: (401, "Invalid credentials"),
    scenarios.ECHO: (401, "Invalid credentials: {echo}"),
    scenarios.DOWN: (503, "Service Unavailable"),
    scenarios.RATELIMIT: (429, "Too Many Requests"),
}


@dataclass(frozen=True)
class ErrorStyle:
    """How one vendor words its auth, outage and rate-limit failures.

    ``make(status, message)`` builds the vendor's error response; ``messages`` overrides the
    status and text per failure kind; ``{echo}`` in a message is replaced by the echoed values.
    """

    make: Callable[[int, str], Response]
    messages: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    retry_headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: bool = True  # False for vendors that signal the wait another way (Qualys)

    def reply(self, kind: str, echo: str = "") -> Response:
        """The vendor's response for a failure ``kind`` (missing, bad, echo, down, ratelimit)."""
        status, text = {**DEFAULT_MESSAGES, **self.messages}[kind]
        response = self.make(status, text.replace("{echo}", echo))
        if kind == scenarios.RATELIMIT:
            if self.retry_after:
                response.headers.setdefault("Retry-After", str(scenarios.RETRY_AFTER_SECONDS))
            for name, value in self.retry_headers.items():
                response.headers.setdefault(name, value)
        return response


# headers that carry credentials; the echo scenario repeats them verbatim, as careless vendors do
CREDENTIAL_HEADERS = (
    "Authorization",
    "X-ApiKeys",
    "x-apikey",
    "X-Api-Key",
    "X-Auth",
    "X-ZAP-API-Key",
    "X-Mobsf-Api-Key",
)


def echo_text(request: Request, values: Iterable[str]) -> str:
    """The received credential values and credential headers, verbatim (the ``echo`` scenario)."""
    shown = [v for v in values if v]
    for name in CREDENTIAL_HEADERS:
        value = request.headers.get(name)
        if value:
            shown.append(f"{name}: {value}")
    return "; ".join(shown)


async def guard(
    vendor_key: str,
    style: ErrorStyle,
    request: Request,
    credentials: Iterable[str | None],
    *,
    limit_key: str | None = None,
) -> set[str]:
    """Authenticate by scenario: raise :class:`Reply` with the vendor's error, or return the markers.

    ``credentials`` are the values the client sent (all must be non-empty); the rate-limit
    counter is keyed on ``vendor_key`` plus ``limit_key`` (default: the first credential).
    """
    values = list(credentials)
    if not values or any(not v for v in values):
        raise Reply(style.reply(MISSING))
    found = scenarios.scenario_of(*values)
    key = f"{vendor_key}:{limit_key or values[0]}"
    outcome = await scenarios.gate(key, found)
    if outcome:
        raise Reply(style.reply(outcome, echo_text(request, [v for v in values if v])))
    return found


def store(request: Request, vendor_key: str) -> dict[str, Any]:
    """Per-app in-memory state for one vendor (webhooks, exports), so two servers never share it."""
    root: dict[str, dict[str, Any]] | None = getattr(request.app.state, "sandbox_store", None)
    if root is None:
        root = {}
        request.app.state.sandbox_store = root
    return root.setdefault(vendor_key, {})


# ---- seeded data sets for findings pulls ----------------------------------------------------------


def _root(app: Any) -> dict[str, dict[str, Any]]:
    root: dict[str, dict[str, Any]] | None = getattr(app.state, "sandbox_store", None)
    if root is None:
        root = {}
        app.state.sandbox_store = root
    return root


def seed(app: Any, vendor_key: str, credential: str, **options: Any) -> None:
    """Give the account holding ``credential`` a generated data set (``count`` findings and the vendor's
    options); the vendor's pull endpoint serves it instead of its one sample item, and counts requests."""
    vendor = _root(app).setdefault(vendor_key, {})
    vendor.setdefault("seeds", {})[credential] = dict(options)
    vendor.setdefault("pulls", {})[credential] = 0


def seeded(request: Request, vendor_key: str, credential: str | None,
           style: ErrorStyle | None = None) -> dict[str, Any] | None:
    """The data set seeded for ``credential`` (None: the sample); a seeded request is counted, and the
    ``limit_at``-th one is answered with ``style``'s rate-limit reply (a limit met in the middle of a pull)."""
    vendor = store(request, vendor_key)
    found: dict[str, Any] | None = vendor.get("seeds", {}).get(credential or "")
    if found is not None:
        vendor["pulls"][credential] += 1
        if style is not None and found.get("limit_at") == vendor["pulls"][credential]:
            raise Reply(style.reply(scenarios.RATELIMIT))
    return found


def pulls(app: Any, vendor_key: str, credential: str) -> int:
    """How many requests of a seeded data set the vendor answered (after authentication)."""
    return int(_root(app).get(vendor_key, {}).get("pulls", {}).get(credential, 0))
