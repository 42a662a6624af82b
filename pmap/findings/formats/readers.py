"""Streams and CSV: replaying a head already read, rewinding for two-pass formats, bounded CSV rows.

The JSON and XML readers are :mod:`pmap.findings.formats.json_reader` and
:mod:`pmap.findings.formats.xml_reader`; the base class (:mod:`pmap.findings.formats.base`)
opens every upload with :func:`rewindable` and :func:`read_upto` before a format sees it.
"""

from __future__ import annotations

import codecs
import csv
import io
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.sniff import HEAD_SIZE, head_text

SPOOL_MEMORY = 8 << 20  # bytes of a non-seekable upload kept in memory before spooling to disk

# --- streams ----------------------------------------------------------------------------------


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


def read_upto(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at end of stream (a raw stream may return short reads)."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        data = stream.read(size - got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def mentions(stream: IO[bytes], start: int, needles: tuple[bytes, ...], chunk: int = 1 << 20) -> set[bytes]:
    """Which of ``needles`` occur in the stream from ``start`` (read in chunks at memory speed, overlapping by the
    longest needle); the stream is left at ``start``. Lets a parser skip a pass for a member no file of a tool has."""
    found: set[bytes] = set()
    overlap = max((len(n) for n in needles), default=1) - 1
    stream.seek(start)
    tail = b""
    while len(found) < len(needles):
        block = stream.read(chunk)
        if not block:
            break
        window = tail + block
        found.update(n for n in needles if n not in found and n in window)
        tail = window[-overlap:] if overlap else b""
    stream.seek(start)
    return found


def peek(stream: IO[bytes], size: int = HEAD_SIZE) -> tuple[bytes, IO[bytes]]:
    """Read up to ``size`` bytes and return them with a stream that still yields everything."""
    head = read_upto(stream, size)
    return head, io.BufferedReader(ReplayStream(head, stream), buffer_size=1 << 20)


def rewindable(stream: IO[bytes]) -> IO[bytes]:
    """A seekable stream with the same remaining content, for formats that read twice.

    The stream itself when it can seek and tell (some wrappers claim ``seekable()`` and then fail
    on ``tell()``); else a copy of the rest, in memory up to ``SPOOL_MEMORY`` bytes and on disk
    beyond, positioned at its start. The caller owns (and should close) a copy.
    """
    try:
        if stream.seekable():
            stream.tell()
            return stream
    except (AttributeError, OSError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 - returned: the caller owns it
    shutil.copyfileobj(stream, spool, 1 << 20)
    spool.seek(0)
    return spool


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
