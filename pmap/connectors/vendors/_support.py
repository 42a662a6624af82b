"""Helpers shared by every vendor implementation (scanners, work trackers, CI/CD):
JSON/XML bodies, license and expiry diagnostics, export polling and permission reports.

Nothing here sends a request on its own: every call goes through ``ctx.client()`` (the one guarded
outbound layer). Every text taken from a vendor body is scrubbed of the operation's credential
values before it can reach a message.
"""

from __future__ import annotations

import base64
import contextlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import unquote
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeXML
import httpx
from defusedxml.common import DefusedXmlException

from pmap.connectors.base import (
    OperationContext,
    PermissionCheck,
    PermissionReport,
    PermissionState,
)
from pmap.core import clock
from pmap.core.errors import UpstreamError, upstream_error
from pmap.core.outbound import OutboundResponse
from pmap.core.redaction import scrub

T = TypeVar("T")

#: A license or credential expiring within this many days earns a warning.
EXPIRY_WARN_DAYS = 30
#: Report downloads may be far larger than API answers (the default cap is 5 MiB).
DOWNLOAD_MAX_BYTES = 256 * 1024 * 1024
_DETAIL_CHARS = 200
_MESSAGE_KEYS = ("errorMessages", "errorMessage", "error_description", "message", "Message", "error_msg", "detail",
                 "msg", "error")
_TITLE = re.compile(rb"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


# --- vendor answers -> failed steps ----------------------------------------------------------------

def basic_auth(user: str, secret: str) -> dict[str, str]:
    """The HTTP Basic ``Authorization`` header of ``user:secret``."""
    token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def secrets_of(ctx: OperationContext) -> tuple[str, ...]:
    """The operation's credential values plus the Basic encodings of every pair of them (an echoing
    vendor may show the encoding instead of the values)."""
    values = [v for v in ctx.secrets if v]
    derived = [base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
               for user in ["", *values] for secret in values if user != secret]
    return (*values, *derived)


def clean(ctx: OperationContext, message: str) -> str:
    """``message`` with every credential value (and Basic encoding of them) masked."""
    return scrub(message, secrets_of(ctx))


def host_of(resp: OutboundResponse) -> str:
    """The host a response came from (for messages)."""
    try:
        return httpx.URL(resp.url).host or resp.url
    except httpx.InvalidURL:
        return resp.url


def _texts(value: Any, depth: int = 0) -> list[str]:
    """Human messages in a vendor error body (the JSON shapes of the vendors PMAP speaks to)."""
    if depth > 3 or value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [t for item in value[:3] for t in _texts(item, depth + 1)]
    if not isinstance(value, Mapping):
        return []
    out: list[str] = []
    for key in _MESSAGE_KEYS:
        out += _texts(value.get(key), depth + 1)
    errors = value.get("errors")
    if isinstance(errors, Mapping):  # Jira: {"field": "reason"}
        out += [f"{k}: {v}" for k, v in list(errors.items())[:5] if isinstance(v, str)]
    else:
        out += _texts(errors, depth + 1)
    return list(dict.fromkeys(out))


def vendor_detail(ctx: OperationContext, resp: OutboundResponse) -> str | None:
    """The vendor's own short error text (JSON message fields, Qualys ``TEXT``, Azure's error header,
    an HTML title, a short plain body), scrubbed."""
    texts: list[str] = []
    service_error = resp.headers.get("x-tfs-serviceerror")
    if service_error:
        texts.append(unquote(service_error))
    body = resp.content[:65536]
    if body.lstrip()[:1] in (b"{", b"["):
        with contextlib.suppress(UpstreamError):  # an unreadable JSON body has no text to add
            texts += _texts(resp.json())
    elif b"<TEXT>" in body:
        start = body.index(b"<TEXT>") + len(b"<TEXT>")
        texts.append(body[start:body.find(b"</TEXT>", start)].decode("utf-8", "replace").strip())
    elif (match := _TITLE.search(body)) is not None:
        texts.append(match.group(1).decode("utf-8", "replace").strip())
    elif body.strip() and b"<" not in body[:200]:
        texts.append(body[:400].decode("utf-8", "replace").strip())
    texts = [t for t in texts if t]
    if not texts:
        return None
    cleaned = " ".join(clean(ctx, "; ".join(dict.fromkeys(texts))).split())
    return cleaned if len(cleaned) <= _DETAIL_CHARS else cleaned[: _DETAIL_CHARS - 1] + "…"


def fail(ctx: OperationContext, message: str, *, step: str, resp: OutboundResponse | None = None) -> UpstreamError:
    """An :class:`UpstreamError` whose message is scrubbed and completed by the vendor's own text."""
    detail = vendor_detail(ctx, resp) if resp is not None else None  # scrubbed on its own
    # the vendor's words come last and unbracketed: a later scrub of a masked "Authorization: ..." would
    # swallow a closing bracket
    text = f"{clean(ctx, message)}; the vendor said: {detail}" if detail else clean(ctx, message)
    return upstream_error(text, step=step, upstream_status=resp.status if resp is not None else None)


def check(
    ctx: OperationContext,
    resp: OutboundResponse,
    what: str,
    *,
    ok: Iterable[int] = (200,),
    auth: Iterable[int] = (401,),
    permission: Iterable[int] = (403,),
    auth_hint: str = "check the credentials",
    permission_hint: str = "grant the account the rights listed in the connector's documentation",
) -> OutboundResponse:
    """``resp`` when its status is in ``ok``; otherwise the failure mapped to its step.

    ``auth`` statuses mean rejected credentials (step ``auth``), ``permission`` statuses an account
    without the right (step ``permission``); a rate limit and anything else are step ``http``.
    """
    status = resp.status
    if status in set(ok):
        return resp
    host = host_of(resp)
    # the runner prefixes the step's wording ("the vendor rejected the credentials"), so say what and why
    if status in set(auth):
        # a cached OAuth access token the vendor refused (revoked, or its client's secret rotated) is
        # dropped (pmap.connectors.vendors._oauth listens), so the next operation asks for a new one
        for listener in _AUTH_REFUSED:
            listener(ctx.secrets)
        raise fail(ctx, f"{host} answered HTTP {status} to {what}: {auth_hint}", step="auth", resp=resp)
    if status == 429:
        raise fail(ctx, f"{host} kept rate-limiting {what} (HTTP 429) after PMAP's retries; try again later",
                   step="http", resp=resp)
    if status in set(permission):
        raise fail(ctx, f"{host} answered HTTP {status} to {what}: {permission_hint}", step="permission", resp=resp)
    reason = httpx.codes.get_reason_phrase(status) or "error"
    raise fail(ctx, f"{host} answered HTTP {status} {reason} to {what}", step="http", resp=resp)


#: called with an operation's secrets when a vendor refuses its credentials (a cache of tokens drops them);
#: a module that caches credentials it minted registers here, since this module cannot import it back
_AUTH_REFUSED: list[Callable[[tuple[str, ...]], object]] = []


def on_auth_refused(listener: Callable[[tuple[str, ...]], object]) -> None:
    """Call ``listener(secrets)`` whenever :func:`check` meets a refusal of an operation's credentials."""
    _AUTH_REFUSED.append(listener)


def json_of(ctx: OperationContext, resp: OutboundResponse, what: str, kind: type = dict) -> Any:
    """The JSON body, which must be a ``kind`` (dict or list); anything else is step ``response``."""
    data = resp.json()
    if not isinstance(data, kind):
        shape = "an object" if kind is dict else "a list"
        raise fail(ctx, f"{what}: expected {shape} from {host_of(resp)}, got {type(data).__name__}", step="response")
    return data


def json_list(ctx: OperationContext, resp: OutboundResponse, what: str) -> list[Any]:
    """The JSON body, which must be an array; anything else is step ``response``."""
    return json_of(ctx, resp, what, list)


def xml_of(ctx: OperationContext, resp: OutboundResponse, what: str) -> Element:
    """The XML body parsed without DTD loading, entities or network access (step ``response`` otherwise)."""
    try:
        root: Element = SafeXML.fromstring(resp.content, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except (SafeXML.ParseError, DefusedXmlException, ValueError) as exc:
        raise fail(ctx, f"{what}: {host_of(resp)} did not answer with usable XML ({type(exc).__name__})",
                   step="response") from None
    return root


def dig(data: Any, *path: str | int) -> Any:
    """``data[p0][p1]...`` or None when any step is missing or of the wrong type."""
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or not -len(data) <= part < len(data):
                return None
            data = data[part]
        else:
            if not isinstance(data, Mapping):
                return None
            data = data.get(part)
    return data


def text(value: Any) -> str | None:
    """A stripped string of a scalar (None for empty, containers or None)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    out = str(value).strip()
    return out or None


# --- dates, licenses and expiries ---------------------------------------------------------------------

def parse_when(value: Any) -> datetime | None:
    """An aware datetime from unix seconds/milliseconds or ISO-8601 text (date-only allowed); else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        seconds = float(value)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    raw = value.strip().replace(" UTC", "+00:00")
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    if len(raw) >= 5 and raw[-5] in "+-" and raw[-4:].isdigit():
        raw = raw[:-2] + ":" + raw[-2:]  # +0000 -> +00:00
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def days_until(when: datetime, now: datetime | None = None) -> int:
    """Whole days from now to ``when``: rounded up ahead, down behind (so "in 10 days" reads right)."""
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return math.ceil(seconds / 86400) if seconds > 0 else math.floor(seconds / 86400)


def expiry(
    expires_at: datetime | None,
    *,
    what: str = "license",
    kind: str | None = None,
    status: str | None = None,
    expired: bool | None = None,
    extra: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    advice: str = "renew it",
) -> tuple[dict[str, Any], list[str]]:
    """The ``Probe.license`` dict ({type, expires_at, days_left, status, ...}) and its warnings.

    ``status`` is PMAP's word for every vendor (valid, expiring within 30 days, expired); the
    vendor's own word, when it has one, is kept as ``vendor_status``. ``expired`` (the vendor's
    flag) wins over the date. An expired license is a warning, not a failure: the vendor answered.
    """
    info: dict[str, Any] = {"type": kind}
    warnings: list[str] = []
    days = days_until(expires_at, now) if expires_at else None
    is_expired = bool(expired) if expired is not None else (days is not None and days < 0)
    state = "expired" if is_expired else ("expiring" if days is not None and days <= EXPIRY_WARN_DAYS else "valid")
    if expires_at is not None:
        info["expires_at"] = expires_at.astimezone(UTC).isoformat()
        info["days_left"] = days
    info["status"] = state
    if status:
        info["vendor_status"] = status
    if extra:
        info.update(extra)
    date = expires_at.date().isoformat() if expires_at else None
    if is_expired:
        since = f" on {date}" if date else ""
        warnings.append(f"the {what} expired{since}: {advice}; the vendor may stop answering or stop updating data")
    elif state == "expiring" and days is not None:
        warnings.append(f"the {what} expires on {date}, in {days} day{'s' if days != 1 else ''}: {advice}")
    return info, warnings


# --- polling exports -------------------------------------------------------------------------------------

def poll(ctx: OperationContext, attempt: Callable[[], T | None], *, what: str,
         first_wait: float = 0.25, max_wait: float = 5.0) -> T:
    """Call ``attempt`` until it returns a value, waiting with backoff inside the operation's budget."""
    wait = 0.0
    while True:
        result = attempt()
        if result is not None:
            return result
        wait = first_wait if wait == 0 else min(max_wait, wait * 2)
        if ctx.remaining() <= wait + 0.1:
            raise UpstreamError(f"{what} was not ready within the operation's time budget; try again later",
                                step="timeout")
        clock.sleep(wait)


# --- least-privilege reports ------------------------------------------------------------------------------

def permission_report(
    needed: Iterable[tuple[str, str, bool | None]],
    excess: Iterable[str] = (),
    warnings: Iterable[str] = (),
) -> PermissionReport:
    """A report from ``(name, needed_for, granted)`` triples (``None``: could not tell)."""
    checks = []
    for name, needed_for, granted in needed:
        state = PermissionState.UNKNOWN if granted is None else (
            PermissionState.GRANTED if granted else PermissionState.MISSING)
        checks.append(PermissionCheck(name=name, needed_for=needed_for, state=state))
    extra = sorted(set(excess))
    notes = list(warnings)
    if extra:
        # same wording as pmap.integrations.permissions, which then adds no second warning
        notes.append(f"least privilege: the account holds more rights than PMAP needs ({', '.join(extra)}); "
                     "use a narrower account or token")
    ok = all(c.state is PermissionState.GRANTED for c in checks)
    return PermissionReport(ok=ok, permissions=checks, excess=extra, warnings=notes)
