"""Stream and syntax plumbing shared by the VM, DAST, discovery and mobile report parsers.

Peek-and-replay for detection and shape checks, spooling for two-pass formats, a
DOCTYPE-tolerant front end for :func:`iter_xml`, bounded CSV reading and JSON lines.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

from pmap.findings.formats.base import (
    MAX_JSON_DEPTH,
    ReplayStream,
    ReportError,
    iter_json_items,
    iter_xml,
)

HEAD_SIZE = 65536

# --- streams ----------------------------------------------------------------------------------


def peek(stream: IO[bytes], size: int = HEAD_SIZE) -> tuple[bytes, IO[bytes]]:
    """Read up to ``size`` bytes and return them with a stream that still yields everything."""
    head = _read_upto(stream, size)
    return head, io.BufferedReader(ReplayStream(head, stream), buffer_size=1 << 20)


def _read_upto(stream: IO[bytes], size: int) -> bytes:
    # a raw stream may return short reads before EOF
    chunks: list[bytes] = []
    got = 0
    while got < size:
        data = stream.read(size - got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def rewindable(stream: IO[bytes]) -> IO[bytes]:
    """A seekable stream with the same remaining content: the stream itself, or a temp-file copy.

    Two-pass formats (definitions at the end of the file) read it twice; a spooled copy keeps
    memory bounded when the upload arrives as a non-seekable stream.
    """
    try:
        if stream.seekable():
            stream.tell()
            return stream
    except (AttributeError, OSError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - caller owns it
    shutil.copyfileobj(stream, spool, 1 << 20)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def head_text(head: bytes) -> str:
    """The head decoded for detection: UTF-8 (or UTF-16 with a BOM), undecodable bytes replaced."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


# --- XML --------------------------------------------------------------------------------------

_XML_PROLOG_SKIP = re.compile(
    r"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>)", re.DOTALL | re.IGNORECASE
)
_XML_ROOT = re.compile(r"\s*<([A-Za-z_][\w.:-]*)([^>]*)>?", re.DOTALL)


def xml_root(text: str) -> tuple[str, str] | None:
    """The root element's name and raw attribute text from a decoded XML head, or None."""
    pos = 0
    while True:
        m = _XML_PROLOG_SKIP.match(text, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
    m = _XML_ROOT.match(text, pos)
    if not m:
        return None
    return m.group(1).rsplit(":", 1)[-1], m.group(2)


# A DOCTYPE whose internal subset only declares elements/attributes (Burp) or that only names an
# external DTD (Qualys) is harmless with DTD loading and network access off, but base.iter_xml
# refuses every DOCTYPE with a subset or SYSTEM/PUBLIC id. Such a declaration is blanked out
# (same byte length, newlines kept so error line numbers stay right); anything else is left for
# iter_xml to refuse.
_DOCTYPE_START = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_BENIGN_SUBSET_DECL = re.compile(
    rb"\s*(?:<!ELEMENT\s[^<>\"']*>|<!ATTLIST\s(?:[^<>\"']|\"[^\"<>%&]*\"|'[^'<>%&]*')*>|<!--.*?-->)",
    re.DOTALL,
)


def _benign_doctype_span(head: bytes) -> tuple[int, int] | None:
    m = _DOCTYPE_START.search(head, 0, 4096)
    if not m:
        return None
    start = m.start()
    i = m.end()
    quote: int | None = None
    while i < len(head):
        c = head[i]
        if quote is not None:
            if c == quote:
                quote = None
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x5B:  # '[' internal subset
            close = head.find(b"]", i)
            if close < 0:
                return None
            subset = head[i + 1 : close]
            pos = 0
            while pos < len(subset):
                dm = _BENIGN_SUBSET_DECL.match(subset, pos)
                if not dm:
                    if subset[pos:].strip():
                        return None
                    break
                pos = dm.end()
            i = close
        elif c == 0x3E:  # '>'
            return start, i + 1
        i += 1
    return None


def _blank(data: bytes) -> bytes:
    return bytes(b if b in (0x0A, 0x0D) else 0x20 for b in data)


def iter_report_xml(
    stream: IO[bytes], format_key: str, tags: tuple[str, ...] | None = None
) -> Iterator[tuple[str, Any]]:
    """:func:`iter_xml`, tolerating a harmless DOCTYPE; entity declarations are still refused."""
    head = _read_upto(stream, HEAD_SIZE)
    if not head.strip():
        raise ReportError(format_key, "empty file", "line 1")
    span = _benign_doctype_span(head)
    if span is not None and b"<!ENTITY" not in head.upper():
        s, e = span
        head = head[:s] + _blank(head[s:e]) + head[e:]
    yield from iter_xml(io.BufferedReader(ReplayStream(head, stream)), format_key, tags)


def local(tag: Any) -> str:
    """Local name of an lxml tag (namespace dropped); '' for comments and PIs."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def child(elem: Any, name: str) -> Any | None:
    """First direct child with local name ``name``."""
    for c in elem:
        if local(c.tag) == name:
            return c
    return None


def children(elem: Any, name: str) -> Iterator[Any]:
    """Direct children with local name ``name``."""
    for c in elem:
        if local(c.tag) == name:
            yield c


def text_of(elem: Any | None) -> str | None:
    """Stripped text of an element (None when absent or blank)."""
    if elem is None or elem.text is None:
        return None
    t = elem.text.strip()
    return t or None


def all_text(elem: Any | None) -> str | None:
    """All text under an element, paragraphs separated by newlines, whitespace squeezed."""
    if elem is None:
        return None
    parts = [" ".join(t.split()) for t in elem.itertext()]
    joined = "\n".join(p for p in parts if p)
    return joined or None


# --- CSV --------------------------------------------------------------------------------------

_CSV_FIELD_LIMIT = 64 << 20  # plugin output cells can be megabytes; csv's default is 128 KiB
if csv.field_size_limit() < _CSV_FIELD_LIMIT:
    csv.field_size_limit(_CSV_FIELD_LIMIT)


def iter_csv(
    stream: IO[bytes],
    format_key: str,
    is_header: Callable[[list[str]], bool],
    *,
    max_preamble: int = 50,
    delimiter: str | None = None,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV report as ``(line, {lower-cased header: value})``.

    Rows before the header (report preambles) are skipped; the header is the first row for which
    ``is_header`` (given lower-cased, stripped cells) is true within ``max_preamble`` rows.
    The delimiter is sniffed from the first line (``,``, ``;`` or tab) unless given.
    """
    head, stream = peek(stream, HEAD_SIZE)
    if not head.strip():
        raise ReportError(format_key, "empty file", "line 1")
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ReportError(format_key, "not a CSV report: binary content", "line 1")
    if delimiter is None:
        first = head_text(head).split("\n", 1)[0]
        counts = {d: first.count(d) for d in (",", ";", "\t")}
        delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    # spreadsheet tools save "Unicode text" as UTF-16 with a BOM; everything else is UTF-8
    encoding = "utf-16" if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    text = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    header: list[str] | None = None
    try:
        for row in reader:
            if header is None:
                cells = [c.strip().lower() for c in row]
                if is_header(cells):
                    header = cells
                elif reader.line_num >= max_preamble:
                    break
                continue
            if not any(c.strip() for c in row):
                continue
            yield reader.line_num, {h: (row[i] if i < len(row) else "") for i, h in enumerate(header) if h}
    except csv.Error as exc:
        raise ReportError(format_key, f"malformed CSV: {exc}", f"line {reader.line_num}") from None
    if header is None:
        raise ReportError(format_key, "not a report of this format: expected header row not found", "line 1")


def csv_header_line(head: bytes) -> list[str]:
    """Cells of the first CSV line of a head, lower-cased (for detection; never raises)."""
    first = head_text(head).split("\n", 1)[0].strip("\r")
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    delim = max(counts, key=lambda d: counts[d])
    return [c.strip().strip('"').strip().lower() for c in first.split(delim)]


def csv_lines(head: bytes, n: int = 8) -> list[list[str]]:
    """Cells of the first ``n`` physical lines of a head, lower-cased (detection only)."""
    out = []
    for line in head_text(head).splitlines()[:n]:
        out.append([c.strip().strip('"').strip().lower() for c in line.split(",")])
    return out


def first_json_byte(head: bytes) -> str:
    """The first non-blank character of a JSON head ('' when none)."""
    s = head_text(head).lstrip()
    return s[:1]


def expect_xml_root(stream: IO[bytes], format_key: str, roots: tuple[str, ...], what: str) -> IO[bytes]:
    """Check the root element before a long parse; return a stream that replays the head.

    Heads with entity declarations are passed through unchecked so that :func:`iter_xml`
    reports them as hostile rather than as a wrong root.
    """
    head, replay = peek(stream, HEAD_SIZE)
    if not head.strip():
        raise ReportError(format_key, "empty file", "line 1")
    if b"<!ENTITY" in head.upper():
        return replay
    root = xml_root(head_text(head))
    if root is None:
        raise ReportError(format_key, f"not {what}: no XML root element found", "line 1")
    if root[0] not in roots:
        raise ReportError(format_key, f"not {what}: root element is <{root[0][:40]}>", "line 1")
    return replay


def iter_json_lines(stream: IO[bytes], format_key: str, max_depth: int = MAX_JSON_DEPTH) -> Iterator[Any]:
    """JSON lines, one value per line, skipping blank lines; an error names its line and keeps its
    class (a hostile line stays a :class:`HostileReportError`)."""
    for lineno, raw in enumerate(stream, start=1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            yield next(iter_json_items(io.BytesIO(raw), "", format_key, max_depth))
        except ReportError as exc:
            raise type(exc)(format_key, exc.message, f"line {lineno}") from None
