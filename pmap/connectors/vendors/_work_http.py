"""Pieces the work-tracker and CI/CD connectors share: ticket text helpers, and report artifacts
picked out of downloads by PMAP's own report format detectors. The vendor-answer helpers (failed
steps, scrubbed messages, JSON shape checks) live in :mod:`pmap.connectors.vendors._support` and are
re-exported here. Nothing here sends a request on its own: every call goes through ``ctx.client()``.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from pmap.connectors.base import OperationContext, ReportArtifact, TicketRequest
from pmap.connectors.vendors._support import (  # noqa: F401  (re-exported for the work-tracker modules)
    DOWNLOAD_MAX_BYTES,
    basic_auth,
    check,
    clean,
    fail,
    host_of,
    json_of,
    secrets_of,
    vendor_detail,
)
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.findings.formats.registry import report_formats

log = logging.getLogger("pmap.connectors")

#: Bounds on what PMAP unpacks from one archive (a zip bomb must not exhaust memory).
MAX_MEMBERS = 500
MAX_MEMBER_BYTES = 128 * 1024 * 1024
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
#: Bytes of a file the report format detectors look at (as the importer does).
HEAD_BYTES = 64 * 1024
_CHUNK = 1 << 20
_SEVERITIES = ("critical", "high", "medium", "low", "info")


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

def download(ctx: OperationContext, c: OutboundClient, url: str, **kw: Any) -> tuple[OutboundResponse, Path | None]:
    """GET a report download within :data:`DOWNLOAD_MAX_BYTES`: streamed into a file of the operation's spool
    when it has one (the answer's ``content`` is then empty and the file is returned), else read whole."""
    if ctx.spool is None:
        return c.get(url, max_bytes=DOWNLOAD_MAX_BYTES, **kw), None
    fd, name = tempfile.mkstemp(dir=ctx.spool, prefix="download-", suffix=".part")
    with os.fdopen(fd, "w+b") as fh:
        resp = c.get(url, max_bytes=DOWNLOAD_MAX_BYTES, sink=fh, **kw)
    return resp, Path(name)


def unzip(ctx: OperationContext, content: bytes | Path, what: str) -> Iterator[tuple[str, bytes | Path]]:
    """The files of a zip archive (in memory, or from a spooled file into spooled files), bounded in count and
    size; a broken archive is step ``response``."""
    try:
        archive = zipfile.ZipFile(content if isinstance(content, Path) else io.BytesIO(content))
    except (zipfile.BadZipFile, OSError):
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
                    data = _member(ctx, fh)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise fail(ctx, f"{what}: {member.filename} cannot be read ({type(exc).__name__})",
                           step="response") from None
            size = data.stat().st_size if isinstance(data, Path) else len(data)
            if size > MAX_MEMBER_BYTES:
                raise fail(ctx, f"{what} unpacks to more than PMAP reads ({member.filename})", step="response")
            total += size
            yield member.filename, data


def _member(ctx: OperationContext, fh: IO[bytes]) -> bytes | Path:
    """One archive member, at most one byte over the bound: in memory, or copied to the operation's spool."""
    if ctx.spool is None:
        return fh.read(MAX_MEMBER_BYTES + 1)
    fd, name = tempfile.mkstemp(dir=ctx.spool, prefix="member-", suffix=".part")
    with os.fdopen(fd, "wb") as out:
        left = MAX_MEMBER_BYTES + 1
        while left > 0 and (chunk := fh.read(min(_CHUNK, left))):
            out.write(chunk)
            left -= len(chunk)
    return Path(name)


def _head(content: bytes | Path) -> bytes:
    if isinstance(content, bytes):
        return content[:HEAD_BYTES]
    with open(content, "rb") as fh:
        return fh.read(HEAD_BYTES)


def report_format(name: str, content: bytes | Path, accepted: Iterable[str]) -> str | None:
    """The first of the vendor type's ``accepted`` formats whose detector claims the file, or None."""
    formats = report_formats()
    head = _head(content)
    basename = name.rsplit("/", 1)[-1]
    for key in accepted:
        fmt = formats.get(key)
        try:
            if fmt is not None and fmt.detect(head, basename):
                return key
        except Exception:  # a detector must never break the pick of the others
            log.debug("the %s detector failed on %s", key, basename, exc_info=True)
    return None


def artifacts_of(files: Iterable[tuple[str, bytes | Path]], accepted: Iterable[str]) -> list[ReportArtifact]:
    """The files that are reports of an accepted format, as artifacts for the importer (a spooled file that is
    no report is deleted at once)."""
    keys = tuple(accepted)
    out = []
    for name, content in files:
        fmt = report_format(name, content, keys)
        if fmt is None:
            if isinstance(content, Path):
                content.unlink(missing_ok=True)
        elif isinstance(content, Path):
            out.append(ReportArtifact(name=name, format=fmt, path=content))
        else:
            out.append(ReportArtifact(name=name, format=fmt, content=content))
    return out
