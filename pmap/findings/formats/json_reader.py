"""The one JSON reader every JSON format uses: streamed with ijson's C backend, depth-guarded below it.

``ijson``'s C backend builds items without per-event Python code, but its prefix building is
quadratic in nesting depth: :class:`DepthGuardStream` sits *below* the parser, scanning each chunk
for string boundaries and bracket depth with C-speed ``bytes`` operations, and refuses the
document as soon as nesting passes the limit, before ijson ever sees it. Every ijson error becomes
a :class:`ReportError` naming the byte offset and the JSON path being read.

Measured on a 53 MB SARIF file of 100,000 results (bench/gen_sarif.py, quiet 2-core machine):
bare ijson C ``items`` 0.53 s, these guarded items 0.75 s, ``orjson.loads`` of the whole file 0.75 s.
"""

from __future__ import annotations

import io
from array import array
from collections.abc import Iterator
from itertools import accumulate
from typing import IO, Any

import ijson

from pmap.findings.formats.errors import HostileReportError, ReportError

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

    def read(self, size: int = -1) -> bytes:
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


def json_error(format_key: str, exc: Exception, guard: DepthGuardStream, prefix: str) -> ReportError:
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
        raise json_error(format_key, exc, guarded, prefix) from None
    except UnicodeDecodeError:
        raise ReportError(format_key, "JSON is not valid UTF-8", f"near byte {guarded.offset}") from None


def iter_kvitems(
    stream: IO[bytes], prefix: str, format_key: str, max_depth: int = MAX_JSON_DEPTH
) -> Iterator[tuple[str, Any]]:
    """Stream the (key, value) members of the JSON object(s) at ``prefix``, depth-guarded."""
    guard = DepthGuardStream(stream, format_key, max_depth)
    try:
        yield from ijson.kvitems(guard, prefix, use_float=True, buf_size=_BUF)
    except ijson.JSONError as exc:
        raise json_error(format_key, exc, guard, prefix) from None
    except UnicodeDecodeError:
        raise ReportError(format_key, "JSON is not valid UTF-8", f"near byte {guard.offset}") from None


def load_json(stream: IO[bytes], format_key: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The whole JSON document (for report shapes that are small by nature), depth-guarded.

    An empty file is a :class:`ReportError`; so is anything after the document (trailing
    garbage may be a second, concatenated report: it is refused rather than silently dropped).
    """
    docs = iter_json_items(stream, "", format_key, max_depth)
    doc = next(docs, _MISSING)
    if doc is _MISSING:
        raise ReportError(format_key, "empty file: no JSON document", "$")
    for _ in docs:  # drain, so that trailing garbage after the document is reported
        pass
    return doc


_MISSING = object()


def path_kind(stream: IO[bytes], path: str, format_key: str) -> str | None:
    """The ijson event that opens the member at ``path`` (``start_array``, ``start_map``,
    ``string``, ``null``...), or None when the document has no such member. Stops at first sight."""
    guard = DepthGuardStream(stream, format_key)
    try:
        for prefix, event, _value in ijson.parse(guard, use_float=True, buf_size=_BUF):
            if prefix == path and event not in ("map_key", "end_map", "end_array"):
                return event
    except ijson.JSONError as exc:
        raise json_error(format_key, exc, guard, path) from None
    return None


def has_path(stream: IO[bytes], path: str, format_key: str) -> bool:
    """True when the document has a member at ``path`` (ijson syntax)."""
    return path_kind(stream, path, format_key) is not None


def check_container(stream: IO[bytes], path: str, format_key: str, what: str, kind: str = "start_array") -> None:
    """Raise unless ``path`` holds a list (or, with ``kind="start_map"``, an object) or null."""
    found = path_kind(stream, path, format_key)
    if found is None:
        raise ReportError(format_key, f"not {what}: missing '{path}'", "$")
    if found not in (kind, "null"):
        noun = "a list" if kind == "start_array" else "an object"
        raise ReportError(format_key, f"not {what}: '{path}' is not {noun}", f"$.{path}")


def items_required(stream: IO[bytes], prefix: str, format_key: str, what: str) -> Iterator[Any]:
    """Stream the values at ``prefix`` (``<path>.item``); a document whose ``<path>`` is missing or
    not a list is not ``what``. ``stream`` must be seekable: the check re-reads it only when no
    value was found.
    """
    start = stream.tell()
    count = 0
    for item in iter_json_items(stream, prefix, format_key):
        count += 1
        yield item
    if count == 0:
        stream.seek(start)
        check_container(stream, prefix[: -len(".item")] if prefix.endswith(".item") else prefix, format_key, what)


def first_value(stream: IO[bytes], path: str, format_key: str) -> Any:
    """The first value at ``path`` (one C-speed pass, stops when found), or None."""
    for value in iter_json_items(stream, path, format_key):
        return value
    return None


def iter_json_lines(stream: IO[bytes], format_key: str, max_depth: int = MAX_JSON_DEPTH) -> Iterator[Any]:
    """JSON lines: one value per line, blank lines skipped; an error names its line and keeps its
    class (a hostile line stays a :class:`HostileReportError`)."""
    for lineno, raw in enumerate(stream, start=1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            yield next(iter_json_items(io.BytesIO(raw), "", format_key, max_depth))
        except ReportError as exc:
            raise type(exc)(format_key, exc.message, f"line {lineno}") from None
