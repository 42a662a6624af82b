"""The contract every report format implements, and the safe readers they share.

A report format is code: a :class:`ReportFormat` entry in :mod:`pmap.findings.formats.registry`.
It detects its own files, streams :class:`ParsedFinding` records out of a binary stream with
bounded memory, and maps the vendor's severity to PMAP's scale. Nothing here touches the database.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from itertools import accumulate
from typing import IO, Any, Protocol

import ijson
from lxml import etree


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


class ReportError(Exception):
    """A report that cannot be imported: malformed, truncated, hostile or of the wrong format.

    ``message`` is safe to show to the uploader; ``location`` names the line, element or JSON
    path where the problem was seen, when known.
    """

    def __init__(self, format_key: str, message: str, location: str | None = None) -> None:
        self.format_key = format_key
        self.location = location
        self.message = message
        where = f" (at {location})" if location else ""
        super().__init__(f"{format_key}: {message}{where}")


class HostileReportError(ReportError):
    """A report built to harm the parser: entity expansion, external entities, absurd nesting."""


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

    def fingerprint(self, format_key: str) -> str:
        """A stable identity for de-duplication: the same issue on the same resource."""
        parts = (
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
        return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class SeverityResult:
    """A normalized severity and where it came from (``vendor``, ``cvss`` or ``unmapped``)."""

    severity: Severity
    source: str


class Detector(Protocol):
    def __call__(self, head: bytes, filename: str | None) -> bool: ...


@dataclass(frozen=True, slots=True)
class ReportFormat:
    """A report format PMAP can import.

    - ``key``: the stable format key users pass as ``format`` (e.g. ``nessus``).
    - ``detect(head, filename)``: True when the first bytes (up to 64 KiB) and the file name
      are this format's. Must be cheap, must not raise, and must be specific enough not to claim
      another format's files.
    - ``parse(stream)``: yields findings from a binary stream, reading it incrementally; raises
      :class:`ReportError` (or :class:`HostileReportError`) with a location on bad input.
    - ``map_severity(finding)``: the documented mapping of this vendor's value to PMAP's scale,
      with CVSS bands as a fallback where the vendor gives a score; ``Severity.UNKNOWN`` with
      source ``unmapped`` when nothing maps.
    """

    key: str
    title: str
    detect: Detector
    parse: Callable[[IO[bytes]], Iterator[ParsedFinding]]
    map_severity: Callable[[ParsedFinding], SeverityResult]


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


# --- safe XML ---------------------------------------------------------------------------------

_HEAD_BYTES = 65536
# byte patterns of an XML document's start that fix its encoding before any declaration is read
# (XML 1.0 appendix F); UTF-32 before UTF-16, since a UTF-32-LE BOM starts with the UTF-16-LE one
_ENCODING_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
    (b"\x00<\x00?", "utf-16-be"), (b"<\x00?\x00", "utf-16-le"),
    (b"\x4c\x6f\xa7\x94", ""),  # EBCDIC: its code pages disagree even on "!", so it is not read at all
)
_ENCODING_DECL = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?xml\s[^>]*?encoding\s*=\s*[\"']([A-Za-z][A-Za-z0-9._-]*)[\"']")


def _head_texts(head: bytes, format_key: str) -> list[str]:
    """The head as the XML parser may read it: in the encoding its first bytes or its declaration
    name (a UTF-16 document's ``<!DOCTYPE`` is not those bytes), and as plain bytes."""
    for signature, codec in _ENCODING_SIGNATURES:
        if head.startswith(signature):
            if not codec:
                raise HostileReportError(format_key, "XML in an EBCDIC encoding is refused", "line 1")
            return [head.decode(codec, errors="ignore")]
    texts = [(head[3:] if head.startswith(codecs.BOM_UTF8) else head).decode("latin-1")]
    m = _ENCODING_DECL.match(head)
    if m is not None:
        name = m.group(1).decode("ascii")
        try:
            texts.append(head.decode(name, errors="ignore"))
        except LookupError:
            raise HostileReportError(format_key, f"XML in the encoding {name!r} is refused", "line 1") from None
    return texts


def _prolog_problem(text: str, complete: bool) -> str | None:
    """Why the document's prolog is refused, or None.

    Only the prolog (before the root element) can hold a document type declaration; an internal
    subset that declares entities is refused. A DOCTYPE naming an external DTD, or declaring elements
    and attributes only, is harmless here: DTDs are never loaded and the network is off. A report
    whose evidence mentions ``<!DOCTYPE``/``<!ENTITY`` after the root element starts (an XXE payload
    in a CDATA section) is not mistaken for an attack. A prolog that runs past the bytes read is
    refused, so nothing can hide a declaration behind a long comment.
    """
    pos, n = (1 if text.startswith("\ufeff") else 0), len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if text.startswith("<?", pos):
            end, skip = text.find("?>", pos + 2), 2
        elif text.startswith("<!--", pos):
            end, skip = text.find("-->", pos + 4), 3
        else:
            break
        if end == -1:
            return None if complete else "an XML prolog longer than 64 KiB is refused"
        pos = end + skip
    if pos >= n:
        return None if complete else "an XML prolog longer than 64 KiB is refused"
    if text[pos:pos + 9].upper() != "<!DOCTYPE":
        return None
    rest = text[pos + 9:]
    bracket, close = rest.find("["), rest.find(">")
    if bracket == -1 or (close != -1 and close < bracket):
        return None if close != -1 or complete else "an XML prolog longer than 64 KiB is refused"
    subset = rest[bracket:]
    if "<!ENTITY" in subset.upper() or "]" not in subset:
        return "XML with entity declarations is refused"
    return None


def _hostile_doctype(head: bytes, format_key: str = "xml", *, complete: bool = True) -> str | None:
    """Why the head's document type declaration is refused (entity declarations), or None."""
    for text in _head_texts(head, format_key):
        problem = _prolog_problem(text, complete)
        if problem is not None:
            return problem
    return None


class ReplayStream(io.RawIOBase):
    """A read-only stream that first replays ``head`` (bytes already read) and then reads ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if len(self._head):
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n


def iter_xml(
    stream: IO[bytes], format_key: str, tags: tuple[str, ...] | None = None
) -> Iterator[tuple[str, Any]]:
    """Stream ``end`` events of an XML report, refusing DTDs, entities and network access.

    Yields ``(tag, element)`` for elements whose local tag is in ``tags`` (all when None).
    The caller must call ``clear_element(elem)`` once it has read an element it no longer needs,
    so memory stays bounded. Errors become :class:`ReportError` naming the line.
    """
    head = stream.read(_HEAD_BYTES)
    problem = _hostile_doctype(head, format_key, complete=len(head) < _HEAD_BYTES)
    if problem is not None:
        raise HostileReportError(format_key, problem, "line 1")
    reader = io.BufferedReader(ReplayStream(head, stream), buffer_size=1 << 20)
    context = etree.iterparse(
        reader,
        events=("end",),
        # lxml filters tags in C ({*} matches any namespace): only wanted elements reach Python
        tag=[f"{{*}}{t}" for t in tags] if tags else None,
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=True,  # large text nodes (plugin output) are legitimate; entities are refused
        remove_comments=True,
        remove_pis=True,
        recover=False,
    )
    try:
        for _event, elem in context:
            tag = elem.tag
            if not isinstance(tag, str):
                continue
            yield tag.rsplit("}", 1)[-1], elem
    except etree.XMLSyntaxError as exc:
        line = getattr(exc, "lineno", None) or (exc.position[0] if exc.position else None)
        msg = exc.msg if hasattr(exc, "msg") and exc.msg else str(exc)
        if "Entity" in msg or "DOCTYPE" in msg or "entity" in msg:
            raise HostileReportError(format_key, "XML entities are refused", f"line {line}") from None
        raise ReportError(format_key, f"malformed or truncated XML: {msg}", f"line {line}") from None


def clear_element(elem: Any) -> None:
    """Free an element already read, and its processed preceding siblings."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def xml_text(elem: Any, path: str) -> str | None:
    """Stripped text of the first child at ``path`` (namespace-agnostic local names), or None."""
    node = elem
    for part in path.split("/"):
        found = None
        for child in node:
            tag = child.tag
            if isinstance(tag, str) and tag.rsplit("}", 1)[-1] == part:
                found = child
                break
        if found is None:
            return None
        node = found
    text = node.text
    if text is None:
        return None
    text = text.strip()
    return text or None


# --- safe JSON --------------------------------------------------------------------------------

MAX_JSON_DEPTH = 256

_BUF = 1 << 18
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
# openers -> +1, closers -> -1 (as signed bytes)
_SIGN = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


class DepthGuardStream(io.RawIOBase):
    """A read-through binary stream that raises once JSON nesting exceeds ``max_depth``."""

    def __init__(
        self, raw: IO[bytes], format_key: str, max_depth: int = MAX_JSON_DEPTH, check: bool = True
    ) -> None:
        self._raw = raw
        self._check = check
        self._fmt = format_key
        self._max = max_depth
        self._depth = 0
        self._in_string = False
        self._escape = False  # the previous chunk ended on an escaping backslash inside a string
        self.offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        data = self._raw.read(size if size and size > 0 else _BUF) if size != 0 else b""
        if data:
            if self._check:
                self._scan(data)
            self.offset += len(data)
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def _scan(self, chunk: bytes) -> None:
        if self._escape:  # the first byte is the one escaped by the previous chunk's backslash
            chunk = chunk[1:]
            self._escape = False
        if b"\\" in chunk:
            # drop escape pairs (escaped backslashes first) so only real quotes remain;
            # JSON has no backslash outside strings
            chunk = chunk.replace(b"\\\\", b"").replace(b'\\"', b"")
            if chunk.endswith(b"\\"):
                self._escape = True
                chunk = chunk[:-1]
        parts = chunk.split(b'"')
        outside = parts[1::2] if self._in_string else parts[0::2]
        if len(parts) % 2 == 0:
            self._in_string = not self._in_string
        brackets = b"".join(outside).translate(None, _NOT_BRACKETS)
        if not brackets:
            return
        opens = brackets.count(b"[") + brackets.count(b"{")
        if self._depth + opens > self._max:
            signs = array("b", brackets.translate(_SIGN))
            if max(accumulate(signs, initial=self._depth)) > self._max:
                raise HostileReportError(
                    self._fmt, f"JSON nested deeper than {self._max} levels", f"byte {self.offset}"
                )
        self._depth += 2 * opens - len(brackets)


def _json_error(format_key: str, exc: Exception, guard: DepthGuardStream, prefix: str) -> ReportError:
    raw = exc.args[0] if exc.args else type(exc).__name__
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    first = (text.strip().splitlines() or [type(exc).__name__])[0][:200]
    where = f"near byte {guard.offset}, reading {prefix or '$'}"
    if guard.offset == 0:
        return ReportError(format_key, "empty file: no JSON document", "byte 0")
    if "premature EOF" in first or "incomplete" in first.lower():
        return ReportError(format_key, "truncated JSON: the document ends early", where)
    return ReportError(format_key, f"malformed JSON: {first}", where)


def iter_json_items(
    stream: IO[bytes], prefix: str, format_key: str, max_depth: int = MAX_JSON_DEPTH, guard: bool = True
) -> Iterator[Any]:
    """Stream the JSON values at ``prefix`` (ijson syntax, e.g. ``runs.item.results.item``) with
    ijson's C backend, refusing absurd nesting before the parser sees it.

    ``guard=False`` only for a second pass over bytes a guarded pass has already read in full.
    """
    guarded = DepthGuardStream(stream, format_key, max_depth, check=guard)
    try:
        yield from ijson.items(guarded, prefix, use_float=True, buf_size=_BUF)
    except ijson.JSONError as exc:
        raise _json_error(format_key, exc, guarded, prefix) from None
    except UnicodeDecodeError:
        raise ReportError(format_key, "JSON is not valid UTF-8", f"near byte {guarded.offset}") from None



def load_json(stream: IO[bytes], format_key: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Load a whole (small or medium) JSON document with the same depth guard."""
    items = iter_json_items(stream, "", format_key, max_depth)
    try:
        return next(items)
    except StopIteration:
        raise ReportError(format_key, "empty JSON document", "$") from None
