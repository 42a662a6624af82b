"""Pieces the work-tracker and CI/CD connectors share.

Vendor answers mapped to failed steps with messages scrubbed of every credential value (and of the
HTTP Basic encodings of them, which an echoing vendor shows instead of the values), JSON shape
checks, ticket text helpers, and report artifacts picked out of downloads by PMAP's own report
format detectors. Nothing here sends a request on its own: every call goes through ``ctx.client()``.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

import httpx

from pmap.connectors.base import OperationContext, ReportArtifact, TicketRequest
from pmap.core.errors import FieldProblem, UpstreamError, ValidationFailed
from pmap.core.outbound import OutboundResponse
from pmap.core.redaction import scrub

log = logging.getLogger("pmap.connectors")

#: Report downloads may be far larger than API answers (the outbound default cap is 5 MiB).
DOWNLOAD_MAX_BYTES = 256 * 1024 * 1024
#: Bounds on what PMAP unpacks from one archive (a zip bomb must not exhaust memory).
MAX_MEMBERS = 500
MAX_MEMBER_BYTES = 128 * 1024 * 1024
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
#: Bytes of a file the report format detectors look at (as the importer does).
HEAD_BYTES = 64 * 1024
_DETAIL_CHARS = 240
_TITLE = re.compile(rb"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SEVERITIES = ("critical", "high", "medium", "low", "info")


# --- credentials and scrubbing --------------------------------------------------------------------

def basic_auth(user: str, secret: str) -> dict[str, str]:
    """The HTTP Basic ``Authorization`` header of ``user:secret``."""
    token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def secrets_of(ctx: OperationContext) -> tuple[str, ...]:
    """The operation's credential values plus the Basic encodings of every pair of them."""
    values = [v for v in ctx.secrets if v]
    derived = [base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
               for user in ["", *values] for secret in values if user != secret]
    return (*values, *derived)


def clean(ctx: OperationContext, message: str) -> str:
    """``message`` with every credential value (and Basic encoding of them) masked."""
    return scrub(message, secrets_of(ctx))


# --- vendor answers -> failed steps ---------------------------------------------------------------

def host_of(resp: OutboundResponse) -> str:
    """The host a response came from (for messages)."""
    try:
        return httpx.URL(resp.url).host or resp.url
    except httpx.InvalidURL:
        return resp.url


def _texts(value: Any, depth: int = 0) -> list[str]:
    """Human messages in a vendor error body (Jira, ServiceNow, GitHub, GitLab, Azure DevOps shapes)."""
    if depth > 3 or value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [t for item in value[:3] for t in _texts(item, depth + 1)]
    if not isinstance(value, Mapping):
        return []
    out: list[str] = []
    for key in ("errorMessages", "errorMessage", "message", "error_description", "error", "detail", "msg"):
        out += _texts(value.get(key), depth + 1)
    errors = value.get("errors")
    if isinstance(errors, Mapping):  # Jira: {"field": "reason"}
        out += [f"{k}: {v}" for k, v in list(errors.items())[:5] if isinstance(v, str)]
    else:
        out += _texts(errors, depth + 1)
    return list(dict.fromkeys(out))


def vendor_detail(ctx: OperationContext, resp: OutboundResponse) -> str | None:
    """The vendor's own short error text (JSON message fields, Azure's header, an HTML title), scrubbed."""
    texts: list[str] = []
    service_error = resp.headers.get("x-tfs-serviceerror")
    if service_error:
        texts.append(unquote(service_error))
    body = resp.content[:65536]
    if body.lstrip()[:1] in (b"{", b"["):
        try:
            texts += _texts(resp.json())
        except UpstreamError:
            pass
    elif (match := _TITLE.search(body)) is not None:
        texts.append(match.group(1).decode("utf-8", "replace").strip())
    elif body.strip() and b"<" not in body[:200]:
        texts.append(body[:400].decode("utf-8", "replace").strip())
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
    return UpstreamError(text, step=step, upstream_status=resp.status if resp is not None else None)


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
    if status in set(auth):
        raise fail(ctx, f"{host} rejected the credentials (HTTP {status}) for {what}: {auth_hint}", step="auth",
                   resp=resp)
    if status == 429:
        raise fail(ctx, f"{host} kept rate-limiting {what} (HTTP 429) after PMAP's retries; try again later",
                   step="http", resp=resp)
    if status in set(permission):
        raise fail(ctx, f"{host} refused {what} (HTTP {status}): {permission_hint}", step="permission", resp=resp)
    reason = httpx.codes.get_reason_phrase(status) or "error"
    raise fail(ctx, f"{host} answered HTTP {status} {reason} to {what}", step="http", resp=resp)


def json_of(ctx: OperationContext, resp: OutboundResponse, what: str, kind: type = dict) -> Any:
    """The JSON body, which must be a ``kind`` (dict or list); anything else is step ``response``."""
    data = resp.json()
    if not isinstance(data, kind):
        shape = "an object" if kind is dict else "a list"
        raise fail(ctx, f"{what}: expected {shape} from {host_of(resp)}, got {type(data).__name__}", step="response")
    return data


def required(value: str | None, field: str, purpose: str) -> str:
    """A connection setting an operation cannot do without (422 naming the field otherwise)."""
    if not value:
        raise ValidationFailed(f"{purpose} needs connection.{field}",
                               fields=[FieldProblem(f"connection.{field}", f"is required for {purpose}")])
    return value


# --- tickets -----------------------------------------------------------------------------------------

def severity_of(ticket: TicketRequest) -> str | None:
    """The ticket's severity on PMAP's scale (critical..info), or None."""
    sev = (ticket.severity or "").strip().lower()
    return sev if sev in _SEVERITIES else None


def ticket_text(ticket: TicketRequest) -> str:
    """The ticket body: the description, then the severity line when there is one."""
    parts = [ticket.description.strip()]
    if ticket.severity:
        parts.append(f"Severity: {ticket.severity}")
    return "\n\n".join(p for p in parts if p)


def clean_labels(labels: Iterable[str], *, max_len: int = 255) -> list[str]:
    """Labels without spaces (Jira refuses them), empties or duplicates."""
    out: list[str] = []
    for label in labels:
        value = "-".join(str(label).split())[:max_len]
        if value and value not in out:
            out.append(value)
    return out


def title_of(ticket: TicketRequest, max_len: int = 255) -> str:
    """The one-line title, cut to the vendor's limit."""
    title = " ".join(ticket.title.split())
    return title if len(title) <= max_len else title[: max_len - 1] + "…"


# --- report artifacts ------------------------------------------------------------------------------

def unzip(ctx: OperationContext, content: bytes, what: str) -> Iterator[tuple[str, bytes]]:
    """The files of a zip archive, bounded in count and size; a broken archive is step ``response``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise fail(ctx, f"{what} is not a zip archive", step="response") from None
    total = 0
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_MEMBERS:
            raise fail(ctx, f"{what} holds {len(members)} files; PMAP reads at most {MAX_MEMBERS}", step="response")
        for member in members:
            if member.file_size > MAX_MEMBER_BYTES or total + member.file_size > MAX_UNPACKED_BYTES:
                raise fail(ctx, f"{what} unpacks to more than PMAP reads ({member.filename})", step="response")
            try:
                with archive.open(member) as fh:
                    # the declared size may lie: never read more than the bound
                    data = fh.read(MAX_MEMBER_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise fail(ctx, f"{what}: {member.filename} cannot be read ({type(exc).__name__})",
                           step="response") from None
            if len(data) > MAX_MEMBER_BYTES:
                raise fail(ctx, f"{what} unpacks to more than PMAP reads ({member.filename})", step="response")
            total += len(data)
            yield member.filename, data


def report_format(name: str, content: bytes, accepted: Iterable[str]) -> str | None:
    """The first of the vendor type's ``accepted`` formats whose detector claims the file, or None."""
    # imported here: the format registry loads its parsers on first use, not with the catalog
    from pmap.findings.formats.registry import report_formats

    formats = report_formats()
    head = content[:HEAD_BYTES]
    basename = name.rsplit("/", 1)[-1]
    for key in accepted:
        fmt = formats.get(key)
        try:
            if fmt is not None and fmt.detect(head, basename):
                return key
        except Exception:  # a detector must never break the pick of the others
            log.debug("the %s detector failed on %s", key, basename, exc_info=True)
    return None


def artifacts_of(files: Iterable[tuple[str, bytes]], accepted: Iterable[str]) -> list[ReportArtifact]:
    """The files that are reports of an accepted format, as artifacts for the importer."""
    keys = tuple(accepted)
    out = []
    for name, content in files:
        fmt = report_format(name, content, keys)
        if fmt is not None:
            out.append(ReportArtifact(name=name, format=fmt, content=content))
    return out
