"""The Nessus findings pull: the latest completed run of each configured scan, exported and read scan by scan.

Nessus keeps no remediation state across runs (a ``.nessus`` export holds what one run saw), so no finding
is marked fixed here: a full pull that read every configured scan is ``complete`` and lets the sync resolve
what the latest runs no longer report.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pmap.connectors.base import FindingsFeed, FindingsPull, OperationContext
from pmap.connectors.vendors._support import DOWNLOAD_MAX_BYTES, check, fail, json_of, poll, text
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.vm_dast.nessus import FORMAT as NESSUS_FORMAT

_DONE = {"completed", "imported"}  # a run whose results are final (an import counts: it holds a finished run)


@dataclass(frozen=True, slots=True)
class LatestRun:
    """A configured scan's latest completed run (``history_id`` None: the scan has none yet)."""

    scan_id: int
    history_id: int | None
    finished: datetime | None


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) and not isinstance(value, bool) else None


def latest_run(ctx: OperationContext, c: OutboundClient, sid: int, headers: dict[str, str]) -> LatestRun:
    """``GET /scans/{id}``: the run of its ``history`` that completed last (by ``last_modification_date``)."""
    body = json_of(ctx, check(ctx, c.get(vendor_path("/scans/{sid}", sid=str(sid)), headers=headers),
                              f"GET /scans/{sid}"), f"scan {sid}")
    best: tuple[int, int] | None = None
    for run in body.get("history") or []:
        if not isinstance(run, dict) or str(run.get("status") or "").lower() not in _DONE:
            continue
        hid, when = run.get("history_id"), run.get("last_modification_date")
        if not isinstance(hid, int) or isinstance(hid, bool):
            continue
        key = (when if isinstance(when, int) else 0, hid)
        if best is None or key > best:
            best = key
    if best is None:
        return LatestRun(sid, None, None)
    return LatestRun(sid, best[1], _when(best[0]) if best[0] else None)


def export_run(ctx: OperationContext, c: OutboundClient, run: LatestRun, headers: dict[str, str]) -> bytes:
    """The run exported as a ``.nessus`` file: ``POST /scans/{id}/export?history_id=``, poll, download."""
    sid = str(run.scan_id)
    started = check(ctx, c.post(vendor_path("/scans/{sid}/export", sid=sid), headers=headers,
                                params={"history_id": str(run.history_id)}, json={"format": "nessus"},
                                retry_unsafe=True), f"exporting Nessus scan {sid}")
    file_id = text(json_of(ctx, started, "scan export").get("file"))
    if not file_id:
        raise fail(ctx, f"the export of Nessus scan {sid} started without a file id", step="response")

    def ready() -> bool | None:
        resp = check(ctx, c.get(vendor_path("/scans/{sid}/export/{file_id}/status", sid=sid, file_id=file_id),
                                headers=headers), "export status")
        status = str(json_of(ctx, resp, "export status").get("status", "")).lower()
        if status == "error":
            raise fail(ctx, f"Nessus could not export scan {sid}", step="response")
        return True if status == "ready" else None

    poll(ctx, ready, what=f"the export of Nessus scan {sid}")
    resp = check(ctx, c.get(vendor_path("/scans/{sid}/export/{file_id}/download", sid=sid, file_id=file_id),
                            headers=headers, max_bytes=DOWNLOAD_MAX_BYTES), "export download")
    return resp.content


def _read(ctx: OperationContext, content: bytes, sid: int, skipped: Counter[str]) -> Iterator[ParsedFinding]:
    try:
        yield from NESSUS_FORMAT.parse(io.BytesIO(content), skipped)
    except ReportError as exc:
        raise fail(ctx, f"the export of Nessus scan {sid} could not be read: {exc.message}", step="response") from None


def scan_numbers(values: list[int]) -> list[int]:
    """The configured scan ids, deduplicated in order; none configured is the caller's mistake."""
    seen = list(dict.fromkeys(values))
    if not seen:
        raise ValidationFailed("a Nessus findings sync needs the scan ids to read (connection setting scan_ids)",
                               fields=[FieldProblem("scan_ids", "name at least one scan id")])
    return seen


def pull(ctx: OperationContext, request: FindingsPull, scan_ids: list[int],
         headers: Callable[[], dict[str, str]]) -> FindingsFeed:
    """The feed: each scan's history read now (one small answer per scan, no findings), so ``complete`` is
    known; the exports are made and read lazily, one ``.nessus`` file in memory at a time."""
    ids = scan_numbers(scan_ids)
    with ctx.client() as c:
        runs = [latest_run(ctx, c, sid, headers()) for sid in ids]
    since = request.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    wanted = [r for r in runs if r.history_id is not None
              and (since is None or r.finished is None or r.finished > since)]
    complete = since is None and len(wanted) == len(runs)
    skipped: Counter[str] = Counter()

    def findings() -> Iterator[ParsedFinding]:
        with ctx.client() as c:
            for run in wanted:  # scan by scan: one export downloaded, read, then dropped
                content = export_run(ctx, c, run, headers())
                yield from _read(ctx, content, run.scan_id, skipped)
                del content

    return FindingsFeed(format=NESSUS_FORMAT.key, findings=findings(), complete=complete, skipped=skipped)
