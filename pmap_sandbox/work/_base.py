"""Plumbing shared by the simulated ITSM, ticketing and CI/CD APIs.

A handler (or a helper it calls) raises :class:`Reply` carrying a finished response in the vendor's
own error shape; the routers' :class:`VendorRoute` answers it, so an error never takes FastAPI's
``{"detail": ...}`` shape (both come from the scanner part's ``_common``). Each vendor describes
its failure responses with a :class:`Dialect`; :func:`admit` applies the scenario markers of
:mod:`pmap_sandbox.scenarios` to the credential values a request carried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pmap_sandbox import scenarios

# the scanner part's plumbing, reused as is and re-exported for the vendor modules
from pmap_sandbox.scanners._common import Reply as Reply
from pmap_sandbox.scanners._common import VendorRoute as VendorRoute
from pmap_sandbox.scanners._common import parse_basic as parse_basic
from pmap_sandbox.scanners._common import parse_scheme as parse_scheme

T = TypeVar("T")
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def make_router(vendor_key: str) -> APIRouter:
    """An empty router for one vendor, mounted under ``/<vendor_key>``."""
    return APIRouter(prefix=f"/{vendor_key}", tags=[vendor_key], route_class=VendorRoute)


def add_fallback(router: APIRouter, not_found: Callable[[Request], Response]) -> None:
    """Answer every unmatched path under the router's prefix with the vendor's own 404.

    Call it after every other route is added: routes match in order.
    """

    async def fallback(request: Request, rest: str) -> Response:
        del rest
        return not_found(request)

    router.add_api_route("/{rest:path}", fallback, methods=ALL_METHODS, include_in_schema=False)


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None,
                  media_type: str | None = None) -> JSONResponse:
    """A JSON response with optional headers."""
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=media_type)


def text_response(status: int, text: str, media_type: str = "text/plain;charset=utf-8",
                  headers: Mapping[str, str] | None = None) -> Response:
    """A plain text or HTML response."""
    return Response(text, status_code=status, media_type=media_type, headers=dict(headers or {}))


# ---- per-app state ------------------------------------------------------------------------------

def state(request: Request, vendor_key: str, factory: Callable[[], T]) -> T:
    """Per-app in-memory state of one vendor and kind, created on first use (servers never share it).

    It lives in ``app.state.sandbox_store`` beside the scanners' state, so ``POST /_sandbox/reset``
    forgets it too.
    """
    root = getattr(request.app.state, "sandbox_store", None)
    if root is None:
        root = {}
        request.app.state.sandbox_store = root
    # one slot per (vendor, kind of state): a vendor's modules (e.g. boards, hooks) keep separate objects
    slots = root.setdefault(vendor_key, {})
    kind = getattr(factory, "__qualname__", repr(factory))
    if kind not in slots:
        slots[kind] = factory()
    return cast(T, slots[kind])


def base_url(request: Request, vendor_key: str) -> str:
    """``http://host:port/<vendor_key>`` as the client addressed the server (for ``self`` links)."""
    return f"{str(request.base_url).rstrip('/')}/{vendor_key}"


# ---- credentials --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Caller:
    """An authenticated client: who it is, its secret and the scenario markers its values carry."""

    principal: str
    secret: str
    marks: frozenset[str]

    @property
    def noperm(self) -> bool:
        return scenarios.NOPERM in self.marks

    @property
    def admin(self) -> bool:
        return scenarios.ADMIN in self.marks and not self.noperm

    @property
    def expired(self) -> bool:
        return scenarios.EXPIRED in self.marks

    @property
    def expiring(self) -> bool:
        return scenarios.EXPIRING in self.marks


class Dialect:
    """How one vendor answers authentication, outage and rate-limit failures; override per vendor."""

    def missing(self, request: Request) -> Response:
        """No (usable) credentials were sent."""
        return json_response(401, {"message": "Unauthorized"})

    def bad(self, request: Request) -> Response:
        """The credentials were refused."""
        return self.missing(request)

    def echo(self, request: Request, echoed: str) -> Response:
        """A refusal whose body repeats the received credential values (some vendors really do)."""
        return json_response(401, {"message": f"Invalid credentials: {echoed}"})

    def down(self, request: Request) -> Response:
        """The service is unavailable (503)."""
        return json_response(503, {"message": "Service Unavailable"})

    def ratelimited(self, request: Request) -> Response:
        """Too many requests (429); :func:`admit` adds ``Retry-After``."""
        return json_response(429, {"message": "Too Many Requests"})


def echo_text(request: Request, values: Iterable[str]) -> str:
    """The received credential values and the Authorization header, verbatim."""
    shown = [v for v in values if v]
    auth = request.headers.get("authorization")
    if auth:
        shown.append(f"Authorization: {auth}")
    return "; ".join(shown)


async def admit(vendor_key: str, dialect: Dialect, request: Request, principal: str | None,
                secret: str | None, *, checked: Iterable[str | None] = ()) -> Caller:
    """Apply the scenario markers to one credential pair; return the caller or raise :class:`Reply`.

    ``secret`` must be non-empty; ``checked`` are further values whose markers count (e.g. the
    Basic user name). Order: slow, bad, echo, down, ratelimit (once per vendor + credential).
    """
    if not secret:
        raise Reply(dialect.missing(request))
    values = [secret, *(v for v in checked if v)]
    marks = scenarios.scenario_of(*values)
    outcome = await scenarios.gate(f"{vendor_key}:{principal or ''}:{secret}", marks)
    if outcome == scenarios.BAD:
        raise Reply(dialect.bad(request))
    if outcome == scenarios.ECHO:
        raise Reply(dialect.echo(request, echo_text(request, values)))
    if outcome == scenarios.DOWN:
        raise Reply(dialect.down(request))
    if outcome == scenarios.RATELIMIT:
        response = dialect.ratelimited(request)
        response.headers["Retry-After"] = str(scenarios.RETRY_AFTER_SECONDS)
        raise Reply(response)
    return Caller(principal=principal or "", secret=secret, marks=frozenset(marks))


# ---- request bodies and time --------------------------------------------------------------------

async def read_json(request: Request, invalid: Callable[[str], Response]) -> Any:
    """The JSON body, or raise :class:`Reply` with ``invalid(reason)`` (the vendor's 400)."""
    raw = await request.body()
    if not raw.strip():
        raise Reply(invalid("No content to map due to end-of-input"))
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Reply(invalid(f"Unexpected character in JSON body: {exc.msg}")) from None
    except UnicodeDecodeError:
        raise Reply(invalid("The request body is not valid UTF-8")) from None


async def read_params(request: Request) -> dict[str, Any]:
    """Query, form and JSON object parameters merged (GitLab and Jenkins accept all three)."""
    params: dict[str, Any] = dict(request.query_params)
    ctype = request.headers.get("content-type", "")
    if "application/json" in ctype:
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if isinstance(body, dict):
                params.update(body)
    elif "form" in ctype:
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


def iso_z(moment: datetime) -> str:
    """``2024-05-01T12:00:00Z`` (GitHub, GitLab, Azure DevOps)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(moment: datetime) -> str:
    """``2024-05-01T12:00:00.000+0000`` (Jira)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def as_bool(value: Any, default: bool = False) -> bool:
    """A form/query/JSON boolean (``true``, ``1``, ``yes``)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes", "on"}


def int_param(value: Any, default: int, low: int = 1, high: int = 1000) -> int:
    """A bounded integer parameter, ``default`` when absent or not a number."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return default
    return max(low, min(high, number))

