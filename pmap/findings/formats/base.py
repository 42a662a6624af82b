"""The contract every report format implements, and the preamble the base class runs for all of them.

A report format is code: a :class:`ReportFormat` entry in :mod:`pmap.findings.formats.registry`.
It detects its own files, streams :class:`ParsedFinding` records out of a binary stream with
bounded memory, and maps the vendor's severity to PMAP's scale. Nothing here touches the database.

Adding a format (the extension point) is one module under ``vm_dast/`` or ``sast_sca/`` plus its
tests. The module provides:

- ``detect(head, filename) -> bool``: cheap, never raising, specific (use :mod:`.sniff`);
- a parser, ``parse(report: Report) -> Iterator[ParsedFinding]`` (given to ``ReportFormat`` as
  ``read``): it reads ``report.stream`` (``report.head`` and ``report.json`` are the first 64 KiB,
  ``report.rewind()`` starts a second pass) with the shared readers (:mod:`.json_reader`,
  :mod:`.xml_reader`, :mod:`.readers` for CSV) and converters (:mod:`.convert`,
  :mod:`.identifiers`), and raises :class:`ReportError` (:func:`.errors.not_a` for a foreign file)
  for a bad report, never anything else;
- a severity mapper (usually :func:`map_by_table`);
- ``FORMAT = ReportFormat(...)`` declaring its ``syntax`` (and ``json_root`` or ``xml_roots``) and
  ``what``; the module is then imported in its family's ``__init__`` and ``FORMAT`` placed in that
  ``FORMATS`` tuple, in detection order.

Its tests: a sample per shape the format has in its family's samples (``tests/findings/vm_dast``,
``tests/findings/sast_sca``; the family's parametrized hostile tests then cover the new key), its
field mapping and severity table, and, where the shared corpus has files of the format, the corpus
expectations. Any parser fault fails the test that met it (``tests/findings/conftest.py``).

Identity: :meth:`ParsedFinding.fingerprint` is what tells two findings apart (rule + location, then the
``identity`` parts a format adds where those hide distinct problems). Every format's rule is written down in
``docs/finding-identity.md``; a format that adds or changes one updates that table and its tests.

What the format does *not* write, because :meth:`ReportFormat.parse` does it for every format:
making the stream seekable (spooling a non-seekable upload), reading the 64 KiB head, refusing an
empty file (or, for a format whose tool writes one for a clean scan, ``empty_is_clean``, reading it as
no findings), refusing a file of the wrong syntax or root (``not a <what>: ...``), and turning any
exception that is not a :class:`ReportError` (a parser bug) into a :class:`ParserFault` that names
the format, logged with its traceback and counted in :func:`parser_faults`.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import IO, Any, Literal, Protocol

from pmap.findings.formats.errors import HostileReportError, ParserFault, ReportError, not_a
from pmap.findings.formats.readers import read_upto, rewindable
from pmap.findings.formats.sniff import HEAD_SIZE, JsonHead, json_head
from pmap.findings.formats.xml_reader import check_xml_root

__all__ = [
    "Detector", "HostileReportError", "ParsedFinding", "ParserFault", "Report", "ReportError", "ReportFormat",
    "Severity", "SeverityResult", "count_parser_fault", "cvss_band", "map_by_table", "on_parser_fault",
    "parser_faults",
]

log = logging.getLogger("pmap.findings.formats")


class Severity(str, Enum):
    """PMAP's normalized severity scale (OCSF severity_id 0-5)."""

    UNKNOWN = "unknown"
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    Severity.UNKNOWN: 0,
    Severity.INFO: 1,
    Severity.LOW: 2,
    Severity.MEDIUM: 3,
    Severity.HIGH: 4,
    Severity.CRITICAL: 5,
}


@dataclass(slots=True)
class ParsedFinding:
    """One finding as a report states it, before severity normalization and storage.

    Fields follow OCSF Vulnerability Finding (class 2002). Leave a field ``None`` (or empty)
    when the report does not say it; never invent a value.
    """

    title: str
    vendor_severity: str | None = None  # the vendor's own value, verbatim (e.g. "3", "High", "error")
    description: str | None = None
    cve_ids: list[str] = field(default_factory=list)  # "CVE-2021-44228"
    cwe_ids: list[int] = field(default_factory=list)  # 79
    other_ids: list[str] = field(default_factory=list)  # GHSA-..., OSV ids, vendor advisories
    rule_id: str | None = None  # vendor plugin / rule / check id
    cvss_version: str | None = None  # "3.1", "2.0", "4.0"
    cvss_vector: str | None = None
    cvss_score: float | None = None
    # affected resource: fill what applies
    host: str | None = None
    ip: str | None = None
    port: int | None = None
    protocol: str | None = None
    url: str | None = None
    parameter: str | None = None
    repository: str | None = None
    file_path: str | None = None
    line: int | None = None
    package_name: str | None = None
    package_version: str | None = None
    fixed_version: str | None = None
    remediation: str | None = None
    references: list[str] = field(default_factory=list)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    status: str | None = None  # vendor's state when it reports one ("fixed", "false_positive", ...)
    tool: str | None = None  # the producing tool where a format carries several (SARIF runs)
    extra: dict[str, Any] = field(default_factory=dict)  # small, non-secret vendor evidence
    #: what else makes this a different problem to fix where the fields above do not tell it apart (an
    #: issue name under a generic type, an advisory under a generic rule, a taint flow's sink, the tool's
    #: own fingerprint): added to the identity, never replacing the location; each format documents its own
    identity: list[str] = field(default_factory=list)
    #: the scanned resource this finding belongs to where no field above names it (an image, a project
    #: key, a manifest): what a report is taken to have covered when its absence resolves a finding
    asset: str | None = None

    def fingerprint(self, format_key: str) -> str:
        """A stable identity for de-duplication: the same issue on the same resource. ``identity`` parts
        are appended only when a format gives some, so the fingerprints of findings without them stay
        what earlier releases stored."""
        parts: tuple[str, ...] = (
            format_key,
            self.tool or "",
            self.rule_id or self.title,
            self.host or self.ip or "",
            str(self.port or ""),
            self.protocol or "",
            self.url or "",
            self.parameter or "",
            self.repository or "",
            self.file_path or "",
            str(self.line or ""),
            self.package_name or "",
            self.package_version or "",
            ",".join(sorted(self.cve_ids)) if not self.rule_id else "",
        )
        if self.identity:
            parts = (*parts, "\x1e", *self.identity)
        return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class SeverityResult:
    """A normalized severity and where it came from (``vendor``, ``cvss`` or ``unmapped``)."""

    severity: Severity
    source: str


class Detector(Protocol):
    def __call__(self, head: bytes, filename: str | None) -> bool: ...


@dataclass(slots=True)
class Report:
    """An upload as a format's parser gets it: a seekable stream at its start, and its first bytes.

    ``stream`` may be read to the end and rewound with :meth:`rewind` as often as a two-pass
    format needs; ``head`` is up to 64 KiB from the start (fewer only when the file is shorter).
    """

    key: str
    what: str
    stream: IO[bytes]
    start: int
    head: bytes
    skipped: Counter[str] = field(default_factory=Counter)
    covered: set[str] = field(default_factory=set)

    def skip(self, what: str, count: int = 1) -> None:
        """Count entries of the report left out by design (``what``: e.g. ``"licence"``): the import
        summary reports them, and a report whose entries were all skipped resolves nothing."""
        self.skipped[what] += count

    def cover(self, resource: str | None) -> None:
        """Note a resource the report scanned although it has no finding for it (a host scanned clean):
        a full import then resolves that resource's findings the report lacks. ``resource`` must be what
        :func:`.resource.covered_resource` gives that resource's findings (a host lower-cased,
        else its ip; a URL origin; an ``asset``); blank values are ignored."""
        if resource and resource.strip():
            self.covered.add(resource)

    def rewind(self) -> IO[bytes]:
        """The stream, back at the report's first byte."""
        self.stream.seek(self.start)
        return self.stream

    @property
    def json(self) -> JsonHead:
        """The JSON head (root type, key paths, first values); a head that is not JSON is refused."""
        info = json_head(self.head)
        if info is None:
            raise not_a(self.key, self.what, "the file is not JSON")
        return info


Syntax = Literal["json", "xml", "any"]


@dataclass(frozen=True, slots=True)
class ReportFormat:
    """A report format PMAP can import.

    - ``key``: the stable format key users pass as ``format`` (e.g. ``nessus``).
    - ``detect(head, filename)``: True when the first bytes (up to 64 KiB) and the file name
      are this format's. Must be cheap, must not raise, and must be specific enough not to claim
      another format's files.
    - ``read(report)``: the format's parser: yields findings from a :class:`Report`, reading it
      incrementally; raises :class:`ReportError` (or :class:`HostileReportError`) with a location
      on bad input. Callers use :meth:`parse`, which runs the preamble first.
    - ``map_severity(finding)``: the documented mapping of this vendor's value to PMAP's scale,
      with CVSS bands as a fallback where the vendor gives a score; ``Severity.UNKNOWN`` with
      source ``unmapped`` when nothing maps.
    - ``syntax``: ``json`` (an empty file, a non-JSON file or a root other than ``json_root`` is
      refused before ``read``; with ``null_is_empty`` a bare ``null`` is a report of no findings),
      ``xml`` (an empty file, or a root element not in ``xml_roots`` when given, is refused), or
      ``any`` (the parser checks its own syntax: CSV, or several syntaxes).
    - ``what``: the report named with its article for errors (``"a Bandit JSON report"``).
    - ``empty_is_clean``: True only for a format whose tool writes an empty file (no bytes, or only
      blanks) when a scan found nothing (nuclei JSON lines, masscan): such an upload is a report of
      no findings. For every other format an empty upload is refused, naming the format. (A tool's
      clean output that is not empty, such as gitleaks' ``[]`` or osv-scanner's ``{"results": []}``,
      is read by the format's parser like any other report.)
    """

    key: str
    title: str
    detect: Detector
    read: Callable[[Report], Iterator[ParsedFinding]]
    map_severity: Callable[[ParsedFinding], SeverityResult]
    syntax: Syntax = "any"
    what: str = "a report of this format"
    json_root: Literal["object", "array"] | None = None
    xml_roots: tuple[str, ...] = ()
    null_is_empty: bool = False
    empty_is_clean: bool = False

    def accepts_empty(self) -> bool:
        """True when an empty upload is this format's report of a clean scan (0 findings)."""
        return self.empty_is_clean

    def parse(self, stream: IO[bytes], skipped: Counter[str] | None = None,
              covered: set[str] | None = None) -> Iterator[ParsedFinding]:
        """Findings streamed from an upload: the preamble (see the module doc), then ``read``.
        Entries the parser leaves out by design are counted into ``skipped`` (see :meth:`Report.skip`);
        resources it scanned without a finding are added to ``covered`` (see :meth:`Report.cover`)."""
        return _guarded(self, stream, Counter() if skipped is None else skipped, set() if covered is None else covered)


def _open(fmt: ReportFormat, src: IO[bytes], skipped: Counter[str], covered: set[str]) -> Report | None:
    """The preamble every format shares; None when the report holds no findings by definition."""
    start = src.tell()
    head = read_upto(src, HEAD_SIZE)
    src.seek(start)
    report = Report(fmt.key, fmt.what, src, start, head, skipped, covered)
    if fmt.accepts_empty() and len(head) < HEAD_SIZE and not head.removeprefix(codecs.BOM_UTF8).strip():
        return None  # the tool's own output for a scan that found nothing
    if fmt.syntax == "json":
        body = head.removeprefix(codecs.BOM_UTF8).strip()
        if not body:
            raise ReportError(fmt.key, "empty file: no JSON document", "byte 0")
        if fmt.null_is_empty and body == b"null":
            return None
        info = report.json  # refuses a head that is not a JSON object or array
        if fmt.json_root is not None and info.root != fmt.json_root:
            raise not_a(fmt.key, fmt.what, f"the file is not a JSON {fmt.json_root}")
    elif fmt.syntax == "xml":
        if not head.strip():
            raise ReportError(fmt.key, "empty file", "line 1")
        if fmt.xml_roots:
            check_xml_root(head, fmt.key, fmt.xml_roots, fmt.what)
    return report


def _guarded(fmt: ReportFormat, stream: IO[bytes], skipped: Counter[str],
             covered: set[str]) -> Iterator[ParsedFinding]:
    try:
        src = rewindable(stream)
        try:
            report = _open(fmt, src, skipped, covered)
            if report is not None:
                yield from fmt.read(report)
        finally:
            if src is not stream:
                src.close()
    except (ReportError, RecursionError, MemoryError, OSError):
        # a bad report, absurd nesting (the importer answers it as hostile), or the machine's fault
        raise
    except Exception as exc:
        count_parser_fault(fmt.key)
        log.exception("the %s parser failed unexpectedly", fmt.key)
        raise ParserFault(fmt.key, "the report could not be read (unexpected content; the parser fault "
                                   "is logged)") from exc


_faults: Counter[str] = Counter()
_faults_lock = threading.Lock()
_fault_listeners: list[weakref.WeakMethod[Callable[[str], None]]] = []


def count_parser_fault(key: str) -> None:
    """Count one fault of the ``key`` format's code (its parser or its detector), and tell the listeners."""
    with _faults_lock:
        _faults[key] += 1
        listeners = [m for ref in _fault_listeners if (m := ref()) is not None]
        _fault_listeners[:] = [ref for ref in _fault_listeners if ref() is not None]
    for listener in listeners:
        listener(key)


def on_parser_fault(listener: Callable[[str], None]) -> None:
    """Call the bound method ``listener`` with the format key of each later fault, while its object lives (an
    app's metrics: a real counter, which a worker's pool processes can sum, unlike a snapshot of this count)."""
    with _faults_lock:
        _fault_listeners.append(weakref.WeakMethod(listener))


def parser_faults() -> dict[str, int]:
    """Parser faults since the process started, by format key (a snapshot, for metrics and tests).

    A fault is an exception other than :class:`ReportError` escaping a format's parser (or any
    exception escaping its detector): a bug met on odd input. Each one is also logged at ERROR with
    its traceback.
    """
    with _faults_lock:
        return dict(_faults)


# --- severity helpers -----------------------------------------------------------------------

def cvss_band(score: float | None) -> Severity | None:
    """CVSS v3/v4 qualitative bands: None 0.0, Low 0.1-3.9, Medium 4-6.9, High 7-8.9, Critical 9+."""
    if score is None:
        return None
    if score < 0 or score > 10:
        return None
    if score == 0:
        return Severity.INFO
    if score < 4.0:
        return Severity.LOW
    if score < 7.0:
        return Severity.MEDIUM
    if score < 9.0:
        return Severity.HIGH
    return Severity.CRITICAL


def map_by_table(table: dict[str, Severity]) -> Callable[[ParsedFinding], SeverityResult]:
    """A severity mapper: the vendor value looked up case-insensitively, then the CVSS band."""
    lowered = {k.lower(): v for k, v in table.items()}

    def mapper(finding: ParsedFinding) -> SeverityResult:
        raw = (finding.vendor_severity or "").strip().lower()
        if raw and raw in lowered:
            return SeverityResult(lowered[raw], "vendor")
        band = cvss_band(finding.cvss_score)
        if band is not None:
            return SeverityResult(band, "cvss")
        return SeverityResult(Severity.UNKNOWN, "unmapped")

    return mapper
