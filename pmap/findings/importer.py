"""The import pipeline: detect the format, stream-parse, severity pipeline, batched upserts, resolve.

One import is atomic: findings are written in batches of ~1,000 as the parser streams them, and
any failure (a malformed element half-way through a 300 MB file, a database error, a cancelled job)
leaves nothing behind, so nothing is ever half-imported. On PostgreSQL the batches are upserted in
the import's one transaction (:mod:`pmap.findings.storage`); on SQLite, whose single write lock that
transaction would hold for the whole parse, they are staged in TEMP tables and published in one
short write transaction at the end (:mod:`pmap.findings.staging`), so other writers get through. Memory stays
bounded: the pipeline holds one batch of rows and, to count distinct findings, one 64-bit digest
per distinct fingerprint (about 60 bytes each: 6 MB per 100,000 findings).

Re-importing the same report creates nothing new (the identity is integration + scope +
fingerprint, and the fingerprint names the format). A *full* report (the default) resolves the
findings of its stream (integration + format + scope) that it no longer contains, on the resources it
covered (``resolve="covered"``, the default: the hosts, sites, repositories or assets of its entries, see
:mod:`pmap.findings.coverage`), so a scan of other hosts of the same integration resolves nothing of an
earlier one, and a report that covers nothing (empty, or every entry left out by design) resolves nothing
and says so; ``resolve="scope"`` resolves every finding of the stream the report lacks, even when it is
empty (a complete vendor feed is authoritative). A finding that reappears is reopened.

Entries of one report sharing an identity are merged into one finding: the first occurrence's fields
stand, and each occurrence's evidence (ip, vendor ids, ``extra``) is kept, up to OCCURRENCES_MAX per
finding (:mod:`pmap.findings.rows`); the summary counts them as ``merged``. Memory stays bounded: the loop
keeps a count only for fingerprints seen more than once and ships the evidence of the later occurrences to
the writer, which merges it at publish in one set-based UPDATE (the stored occurrences are those of the
latest import).
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine

from pmap.core.db import DATABASE_ERRORS, is_busy, is_foreign_key_violation, utcnow
from pmap.core.errors import Conflict, FieldProblem, OperationNotSupported, PmapError, ServiceBusy, ValidationFailed
from pmap.core.text import clean_file_name
from pmap.findings.batching import BackgroundWriter
from pmap.findings.coverage import clean_resource, covered_resource
from pmap.findings.formats.base import HostileReportError, ParsedFinding, ReportError, ReportFormat
from pmap.findings.formats.registry import detect_format, report_formats
from pmap.findings.models import ImportRecord
from pmap.findings.overlap import ParseJob, ParsingProcess, take, wanted
from pmap.findings.rows import OCCURRENCES_MAX, REPORT_STATES, Row, Stream, occurrence
from pmap.findings.severity import SeverityPipeline, compile_rule_set, load_rule_specs
from pmap.findings.staging import StagedWriter, claim_stream, staging
from pmap.findings.storage import UNNAMED, FindingWriter, lock_stream

log = logging.getLogger("pmap.findings.importer")

HEAD_BYTES = 64 * 1024
BATCH_SIZE = 1000
PROGRESS_EVERY = 1000  # findings between progress reports (and cancellation checks)
SCOPE_MAX = 200

#: Called with progress ``{"phase", "bytes_read", "bytes_total", "findings"}``; raising cancels the import.
ProgressFn = Callable[[dict[str, Any]], None]


class ReportRejected(PmapError):
    """The report cannot be imported: malformed, truncated, of the wrong format, or hostile.
    The message names the format and where (line, element, JSON path) the problem was seen.
    ``ReportRejected(exc)`` of a :class:`HostileReportError` is a :class:`ReportRefused`."""

    status, code = 422, "report_invalid"

    def __new__(cls, exc: ReportError, *_args: Any, **_kwargs: Any) -> ReportRejected:
        # the code is fixed by the class, so a hostile report gets its own class, chosen here
        chosen = ReportRefused if cls is ReportRejected and isinstance(exc, HostileReportError) else cls
        return PmapError.__new__(chosen, exc)

    def __init__(self, exc: ReportError, detected: str | None = None, accepted: bool = True) -> None:
        hostile = isinstance(exc, HostileReportError)
        where = f" (at {exc.location})" if exc.location else ""
        verb = "was refused" if hostile else "cannot be imported"
        details: dict[str, Any] = {"format": exc.format_key, "location": exc.location}
        hint = ""
        if detected is not None:  # the file is another PMAP format's: say which
            details["detected_format"] = detected
            hint = (f"; the file looks like a {detected} report: import it with format={detected}" if accepted
                    else f"; the file looks like a {detected} report, which this integration does not import")
        super().__init__(f"the {exc.format_key} report {verb}: {exc.message}{where}{hint}", details=details)
        self.report_error = exc


class ReportRefused(ReportRejected):
    """A hostile report (an entity bomb, nesting too deep, ...): refused rather than invalid."""

    code = "report_refused"


@dataclass(frozen=True, slots=True)
class ImportTarget:
    """The integration an import writes to, and what governs it."""

    organization_id: uuid.UUID
    integration_id: uuid.UUID
    vendor: str
    accepted_formats: tuple[str, ...]
    severity_threshold: str = "info"


def target_for(integration: Any) -> ImportTarget:
    """The import target of an integration row: its vendor type's formats and its threshold."""
    from pmap.connectors.catalog import connector_types  # every connector: not for an import's parsing process

    ct = connector_types().get(integration.vendor)
    return ImportTarget(
        organization_id=integration.organization_id, integration_id=integration.id, vendor=integration.vendor,
        accepted_formats=tuple(ct.report_formats) if ct is not None else (),
        severity_threshold=integration.severity_threshold or "info",
    )


#: what a full report resolves of the findings it lacks: those on the resources it covered, or the whole stream
ResolveMode = Literal["covered", "scope"]
RESOLVE_MODES: tuple[str, ...] = ("covered", "scope")


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the uploader chose: an explicit format (else detected), the scope, a full or partial report, and
    what a full one resolves (``covered``: findings it lacks on the resources it covered; ``scope``: every
    finding of the stream it lacks, even when it is empty)."""

    format: str | None = None
    scope: str = "default"
    full: bool = True
    filename: str | None = None
    actor: str = "system"
    resolve: ResolveMode = "covered"
    # seconds to wait for another import of the same stream to end before the 409 (PostgreSQL): 0 for an upload
    # someone waits on; a background job waits (STREAM_WAIT_SECONDS), since an attempt killed a moment ago may
    # hold the stream's lock until PostgreSQL notices its connection is gone
    wait_for_stream: float = 0.0


#: how long a background import (a job) waits for another import of its stream to end before it fails with 409
STREAM_WAIT_SECONDS = 60.0


@dataclass(slots=True)
class ImportSummary:
    """The outcome of one import. ``parsed`` = distinct findings in the report = kept + filtered_out;
    kept = created + updated; ``reopened``, ``suppressed`` and ``created_resolved`` are subsets of kept;
    ``resolved`` counts findings absent from a full report (on the resources it covered, or in the whole
    scope with ``resolve="scope"``) and those the report states fixed that were not resolved before;
    ``unknown_severity`` counts kept findings whose vendor severity mapped to nothing; ``merged`` counts
    entries merged into an earlier one with the same identity (``duplicates``: its deprecated alias)."""

    import_id: str
    format: str
    scope: str
    parsed: int = 0
    kept: int = 0
    filtered_out: int = 0
    created: int = 0
    updated: int = 0
    resolved: int = 0
    reopened: int = 0
    suppressed: int = 0
    created_resolved: int = 0  # created already resolved: new findings their report states fixed (history)
    unknown_severity: int = 0
    merged: int = 0  # later occurrences of a finding within the report, merged into it (evidence kept)
    duplicates: int = 0  # deprecated alias of merged (same value), for clients of earlier releases
    covered: int = 0  # distinct resources the report's entries name (the unnamed one included)
    skipped: dict[str, int] = field(default_factory=dict)  # entries the format leaves out by design, by kind
    rules_applied: int = 0
    rules_undefined: int = 0
    full: bool = True
    resolve: str = "covered"
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_format(head: bytes, filename: str | None, requested: str | None, target: ImportTarget) -> ReportFormat:
    """The report format to use: ``requested`` if given, else detected; it must be one the
    integration's vendor type lists (422 naming the accepted formats otherwise)."""
    accepted = target.accepted_formats
    listed = ", ".join(accepted) or "none"
    if not accepted:
        raise OperationNotSupported(f"vendor type {target.vendor!r} imports no report files",
                                    fields=[FieldProblem("format",
                                                         "this integration's vendor type lists no report format")])
    formats = report_formats()
    empty = not head.removeprefix(codecs.BOM_UTF8).strip()
    if requested:
        fmt = formats.get(requested)
        if fmt is None:
            raise ValidationFailed(f"unknown report format {requested!r}", fields=[
                FieldProblem("format", f"unknown format; accepted for this integration: {listed}")])
        if fmt.key not in accepted:
            raise ValidationFailed(
                f"vendor type {target.vendor!r} does not import {fmt.key!r} reports; accepted: {listed}",
                fields=[FieldProblem("format", f"not accepted for this integration; accepted: {listed}")])
        if empty and not fmt.accepts_empty():
            raise ValidationFailed(f"the uploaded file is empty, and {fmt.what} ({fmt.key}) is never empty",
                                   fields=[FieldProblem("file", "is empty")])
        return fmt
    if empty:
        return _empty_format(accepted, target.vendor)
    # prefer the integration's own formats, so a SARIF file of a ZAP integration is not misread
    for key in accepted:
        fmt = formats.get(key)
        if fmt is not None and _claims(fmt, head, filename):
            return fmt
    other = detect_format(head, filename)
    if other is not None:
        raise ValidationFailed(
            f"the file looks like a {other.key!r} report, which vendor type {target.vendor!r} does not import; "
            f"accepted: {listed}",
            fields=[FieldProblem("format", f"detected {other.key}; accepted for this integration: {listed}")])
    raise ValidationFailed(
        f"the report format could not be recognised; pass `format` (accepted for this integration: {listed})",
        fields=[FieldProblem("file", "is not a recognised report of an accepted format")])


def _empty_format(accepted: tuple[str, ...], vendor: str) -> ReportFormat:
    """The format of an empty upload sent without ``format``: nothing can be detected in it, so it is
    the integration's one accepted format when that format's tool writes an empty file for a clean scan;
    otherwise a 422 (naming the formats for which an empty file is a clean scan, if any)."""
    formats = report_formats()
    clean = [k for k in accepted if (f := formats.get(k)) is not None and f.accepts_empty()]
    if len(accepted) == 1:
        if clean:
            return formats[clean[0]]
        if (only := formats.get(accepted[0])) is not None:
            raise ValidationFailed(f"the uploaded file is empty, and {only.what} ({only.key}) is never empty",
                                   fields=[FieldProblem("file", "is empty")])
    if clean:
        raise ValidationFailed(
            f"the uploaded file is empty; pass `format` when it is a clean scan's output "
            f"(an empty file is a report of no findings for: {', '.join(clean)})",
            fields=[FieldProblem("file", "is empty")])
    raise ValidationFailed(f"the uploaded file is empty: no report format vendor type {vendor!r} imports is "
                           "ever empty", fields=[FieldProblem("file", "is empty")])


def _claims(fmt: ReportFormat, head: bytes, filename: str | None) -> bool:
    try:
        return bool(fmt.detect(head, filename))
    except Exception:  # a detector must never break detection
        return False


#: errors a stream of findings may meet that are not the report's fault (the database's, the disk's, a refusal)
_NOT_THE_REPORTS: tuple[type[BaseException], ...] = (PmapError, *DATABASE_ERRORS, OSError, MemoryError)


def run_import(engine: Engine, target: ImportTarget, path: Path, options: ImportOptions,
               progress: ProgressFn | None = None, *, batch_size: int | None = None) -> ImportSummary:
    """Import the report at ``path`` into ``target`` atomically; returns the summary.

    Raises :class:`ValidationFailed` (format, empty file, broken rule), :class:`ReportRejected`
    (malformed or hostile report) or :class:`ServiceBusy` (the write lock stayed taken); in every
    case nothing is written.
    """
    try:
        return _run_import(engine, target, path, options, progress, batch_size or BATCH_SIZE)
    except PmapError:
        raise
    except Exception as exc:  # the driver's own errors too: COPY runs on the raw psycopg cursor, unwrapped
        if is_busy(exc):
            raise ServiceBusy("the database stayed busy with other writes; nothing was imported: retry") from None
        if is_foreign_key_violation(exc):
            raise Conflict("the integration was deleted while this report was importing; nothing was imported") \
                from None
        raise


def _run_import(engine: Engine, target: ImportTarget, path: Path, options: ImportOptions,
                progress: ProgressFn | None, batch_size: int) -> ImportSummary:
    size = path.stat().st_size
    with open(path, "rb", buffering=1 << 20) as fh:
        head = fh.read(HEAD_BYTES)
        fmt = resolve_format(head, options.filename, options.format, target)
        fh.seek(0)
        fd = fh.fileno()
        skipped: Counter[str] = Counter()
        covered: set[str] = set()
        source = FindingSource(fmt, fmt.parse(fh, skipped, covered), size=size,
                               position=lambda: min(size, os.lseek(fd, 0, os.SEEK_CUR)), skipped=skipped,
                               covered=covered, path=path)
        try:
            return import_findings(engine, target, source, options, progress, batch_size)
        except ReportRejected as exc:
            other = _detected_instead(head, options.filename, fmt)
            if other is None or isinstance(exc, ReportRefused):
                raise
            raise ReportRejected(exc.report_error, other.key, other.key in target.accepted_formats) from None


def _detected_instead(head: bytes, filename: str | None, fmt: ReportFormat) -> ReportFormat | None:
    """The other format a refused report's first bytes are detected as, if any (for the refusal to name)."""
    other = detect_format(head, filename)
    return other if other is not None and other.key != fmt.key else None


@dataclass(frozen=True, slots=True)
class FindingSource:
    """Parsed findings of one import and the format they follow: a report file's parser output, or a
    vendor's pulled feed. ``size`` and ``position`` report bytes read, where there are bytes to count."""

    format: ReportFormat
    findings: Iterator[ParsedFinding]
    size: int = 0
    position: Callable[[], int] = lambda: 0
    skipped: Counter[str] = field(default_factory=Counter)  # entries left out by design, filled while parsing
    covered: set[str] = field(default_factory=set)  # resources scanned without a finding, filled while parsing
    path: Path | None = None  # the report file ``findings`` parses, if any: a parsing process may read it instead


def run_feed(engine: Engine, target: ImportTarget, source: FindingSource, options: ImportOptions,
             progress: ProgressFn | None = None, *, batch_size: int | None = None) -> ImportSummary:
    """Import findings pulled from a vendor (a sync) through the same pipeline and writers as a file,
    atomically; raises what :func:`run_import` raises, and the feed's own errors."""
    try:
        return import_findings(engine, target, source, options, progress, batch_size or BATCH_SIZE)
    except PmapError:
        raise
    except Exception as exc:
        if is_busy(exc):
            raise ServiceBusy("the database stayed busy with other writes; nothing was imported: retry") from None
        if is_foreign_key_violation(exc):
            raise Conflict("the integration was deleted while its findings were being pulled; nothing was imported") \
                from None
        raise


def import_findings(engine: Engine, target: ImportTarget, source: FindingSource, options: ImportOptions,
                    progress: ProgressFn | None, batch_size: int) -> ImportSummary:
    """The pipeline's core: severity pipeline, batched writes, resolution and the import record, in one
    atomic import of ``source`` into ``target``."""
    scope = (options.scope or "default").strip()[:SCOPE_MAX] or "default"
    fmt, size = source.format, source.size
    import_id = uuid.uuid4()
    if options.resolve not in RESOLVE_MODES:
        raise ValidationFailed(f"unknown resolve mode {options.resolve!r}", fields=[
            FieldProblem("resolve", f"one of {', '.join(RESOLVE_MODES)}")])
    summary = ImportSummary(import_id=str(import_id), format=fmt.key, scope=scope, full=options.full,
                            resolve=options.resolve)
    with contextlib.ExitStack() as stack:
        # a large file on PostgreSQL: a parsing process does the Python side (see pmap.findings.overlap),
        # started first so its start-up overlaps this process's set-up
        child = stack.enter_context(take()) if wanted(engine.dialect.name, source.path, size) else None
        # PostgreSQL: one transaction from here to publish's commit
        conn = stack.enter_context(engine.connect())
        stack.enter_context(_one_import_per_stream(conn, target.integration_id, scope, options.wait_for_stream))
        rule_specs = load_rule_specs(conn, target.organization_id)
        pipeline = SeverityPipeline(fmt, target.severity_threshold, compile_rule_set(rule_specs),
                                    vendor=target.vendor, integration_id=str(target.integration_id))
        summary.rules_applied = pipeline.rule_count
        now = utcnow()
        stream = Stream(target.organization_id, target.integration_id, fmt.key, scope, import_id, now)
        with _writer(conn, stream) as writer:
            with BackgroundWriter() as background:
                if child is not None and source.path is not None:
                    job = ParseJob(str(source.path), fmt.key, stream, target.severity_threshold, target.vendor,
                                   rule_specs, batch_size, progress is not None, os.getpid())
                    _stream_in_child(child, job, source, pipeline, background, writer, summary, progress)
                else:
                    _stream_findings(source, pipeline, background, writer, summary, progress, batch_size)
            summary.skipped = dict(source.skipped)
            if summary.skipped:
                left_out = ", ".join(f"{n} {what}" for what, n in sorted(summary.skipped.items()))
                summary.warnings.append(f"entries left out by design (not imported as findings): {left_out}")
            if progress is not None:
                progress({"phase": "resolving", "bytes_read": size, "bytes_total": size,
                          "findings": summary.parsed})
            summary.duplicates = summary.merged
            covered_nothing = options.full and options.resolve == "covered" and summary.covered == 0
            if covered_nothing:
                why = (f"all its entries were left out by design ({sum(summary.skipped.values())})"
                       if summary.skipped else "it holds no findings")
                summary.warnings.append(
                    f"nothing was resolved: the report covers no resource ({why}); import it with resolve=scope "
                    f"to resolve every finding of scope {scope!r} it lacks")
            with writer.publish():
                if options.full and not covered_nothing:
                    summary.resolved = writer.resolve_missing(covered_only=options.resolve == "covered")
                summary.created, summary.updated, summary.reopened = writer.created, writer.updated, writer.reopened
                # findings the report itself states fixed: those seen open before are resolved now, new
                # ones are stored resolved (their history), neither is skipped
                summary.resolved += writer.resolved
                summary.created_resolved = writer.created_resolved
                summary.rules_undefined = pipeline.rules_undefined
                if summary.rules_undefined:
                    summary.warnings.append(
                        f"{summary.rules_undefined} rule evaluations were undefined (a field was null or of "
                        "another type); guard conditions with `field != null &&`")
                conn.execute(insert(ImportRecord).values(
                    id=import_id, organization_id=target.organization_id, integration_id=target.integration_id,
                    format=fmt.key, scope=scope, filename=clean_file_name(options.filename),
                    size_bytes=size, full=options.full, summary=summary.as_dict(), actor=options.actor[:200],
                    created_at=now, finished_at=utcnow()))
    return summary


@contextmanager
def _one_import_per_stream(conn: Connection, integration_id: uuid.UUID, scope: str, wait: float) -> Iterator[None]:
    """409 when another import of the stream runs (PostgreSQL: its advisory lock, waited for up to ``wait``
    seconds; SQLite: a claim in this process)."""
    busy = Conflict(f"another import into this integration with scope {scope!r} is running; "
                    "retry when it has finished")
    if conn.dialect.name != "sqlite":
        if not lock_stream(conn, integration_id, scope, wait):
            raise busy
        yield
        return
    with claim_stream(integration_id, scope) as claimed:
        if not claimed:
            raise busy
        yield


@contextmanager
def _writer(conn: Connection, stream: Stream) -> Iterator[FindingWriter | StagedWriter]:
    """PostgreSQL writes each batch in the import's transaction; SQLite stages them (see module doc)."""
    if conn.dialect.name == "sqlite":
        with staging(conn, stream) as staged:
            yield staged
    else:
        yield FindingWriter(conn, stream)


def _stream_findings(src: FindingSource, pipeline: SeverityPipeline, background: BackgroundWriter,
                     writer: FindingWriter | StagedWriter, summary: ImportSummary,
                     progress: ProgressFn | None, batch_size: int) -> None:
    """The hot loop: parse, merge repeats, decide, batch. Kept small and flat on purpose. Its outputs leave
    it only as ``background.submit(writer.<method>, <picklable data>)`` calls and the summary's counters."""
    seen: set[int] = set()
    repeats: dict[int, int] = {}  # occurrences so far of the fingerprints seen more than once
    beyond: dict[str, int] = {}  # the count of those past OCCURRENCES_MAX (their evidence is not kept)
    covered: set[str | None] = set()  # resources the report's entries name
    stated: set[int] = set()  # first occurrences the report states fixed or dismissed
    still_open: list[str] = []  # of those, the ones a later occurrence states open: they stay open
    rows: list[Row] = []
    filtered: list[str] = []
    more: list[tuple[str, int, str | None]] = []  # later occurrences: (fingerprint, seq, evidence JSON)
    resources: list[str] = []  # resources not yet handed to the writer
    key = src.format.key
    build = writer.build
    total = 0
    size, position = src.size, src.position
    try:
        for finding in src.findings:
            total += 1
            if progress is not None and total % PROGRESS_EVERY == 0:
                progress({"phase": "importing", "bytes_read": position(), "bytes_total": size, "findings": total})
            fp = finding.fingerprint(key)
            resource = covered_resource(finding)
            if resource not in covered:
                covered.add(resource)
                resources.append(UNNAMED if resource is None else resource)
                if len(resources) >= batch_size:
                    background.submit(writer.cover, resources)
                    resources = []
            digest = int(fp[:16], 16)
            if digest in seen:
                summary.merged += 1
                if digest in stated and REPORT_STATES.get((finding.status or "").lower()) is None:
                    stated.discard(digest)  # once is enough
                    still_open.append(fp)
                n = repeats[digest] = repeats.get(digest, 1) + 1
                if n <= OCCURRENCES_MAX:
                    more.append((fp, n, occurrence(finding)))
                    if len(more) >= batch_size:
                        background.submit(writer.add_occurrences, more)
                        more = []
                else:
                    beyond[fp] = n
                continue
            seen.add(digest)
            if finding.status is not None and finding.status.lower() in REPORT_STATES:
                stated.add(digest)
            mapped, source = pipeline.normalize(finding)
            if not pipeline.passes_threshold(mapped):
                summary.filtered_out += 1
                filtered.append(fp)
                if len(filtered) >= batch_size:
                    background.submit(writer.mark_filtered, filtered)
                    filtered = []
                continue
            decision = pipeline.decide(finding, mapped, source)
            summary.kept += 1
            if mapped == "unknown":
                summary.unknown_severity += 1
            if decision.suppressed_by is not None:
                summary.suppressed += 1
            rows.append(build(fp, finding, decision, resource))
            if len(rows) >= batch_size:
                background.submit(writer.write, rows)
                rows = []
    except ReportError as exc:
        raise ReportRejected(exc) from None
    except RecursionError:  # defence in depth: the readers guard nesting, a parser might not
        raise ReportRejected(HostileReportError(key, "the report is nested too deeply")) from None
    except _NOT_THE_REPORTS:
        raise
    except Exception:
        # a parser must raise ReportError; anything else is a parser fault on odd input: answer 4xx
        # naming the format rather than a bare 500, and keep the traceback in the log
        log.exception("the %s parser failed unexpectedly", key)
        raise ReportRejected(ReportError(key, "the report could not be read (unexpected content; the parser "
                                              "fault is logged)")) from None
    background.submit(writer.write, rows)
    background.submit(writer.mark_filtered, filtered)
    background.submit(writer.keep_open, still_open)
    # resources the report scanned without a finding (a host scanned clean), known once it is read
    clean = sorted(r for r in {clean_resource(c) for c in src.covered} - covered if r is not None)
    covered.update(clean)
    resources += clean
    background.submit(writer.cover, resources)
    # the counts of findings past the bound: a row without evidence, numbered with the count
    background.submit(writer.add_occurrences, more + [(fp, n, None) for fp, n in beyond.items()])
    summary.parsed = summary.kept + summary.filtered_out
    summary.covered = len(covered)


def _stream_in_child(child: ParsingProcess, job: ParseJob, src: FindingSource, pipeline: SeverityPipeline,
                     background: BackgroundWriter, writer: FindingWriter | StagedWriter, summary: ImportSummary,
                     progress: ProgressFn | None) -> None:
    """:func:`_stream_findings` run by the parsing process ``child``: its writer calls are applied
    here, in order; its counters, undefined rule evaluations and skipped entries become this import's."""
    try:
        done = child.run(job, background.submit, writer, progress)
    except ReportError as exc:  # the same refusal as in-process, with the same message
        raise ReportRejected(exc) from None
    for name, value in done["summary"].items():
        setattr(summary, name, value)
    pipeline.rules_undefined = done["rules_undefined"]
    src.skipped.update(done["skipped"])
