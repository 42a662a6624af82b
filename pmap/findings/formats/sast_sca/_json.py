"""Fast, depth-guarded JSON streaming for the SAST/SCA formats.

``base.iter_json_items`` guards nesting by walking every ijson event in Python, which costs
about 4x a bare ijson C ``items`` pass. Here the guard sits *below* the parser instead: a
read-through stream scans each chunk for string boundaries and bracket depth with C-speed
``re``/``bytes`` operations and refuses the document as soon as nesting passes the limit,
before ijson's C backend (whose prefix building is quadratic in depth) ever sees it. The C
backend then builds items without any per-event Python code.

Measured on a 53 MB SARIF file of 100,000 results (bench/gen_sarif.py, quiet 2-core machine):
bare ijson C ``items`` 0.53 s, these guarded items 0.75 s, ``base.iter_json_items`` 2.20 s,
``orjson.loads`` of the whole file 0.75 s.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Any

import ijson

from pmap.findings.formats.base import (
    _BUF,
    MAX_JSON_DEPTH,
    DepthGuardStream,
    ReportError,
    _json_error,
)
from pmap.findings.formats.base import (
    iter_json_items as iter_items,
)


def iter_kvitems(
    stream: IO[bytes], prefix: str, format_key: str, max_depth: int = MAX_JSON_DEPTH
) -> Iterator[tuple[str, Any]]:
    """Stream the (key, value) members of the JSON object(s) at ``prefix``, depth-guarded."""
    guard = DepthGuardStream(stream, format_key, max_depth)
    try:
        yield from ijson.kvitems(guard, prefix, use_float=True, buf_size=_BUF)
    except ijson.JSONError as exc:
        raise _json_error(format_key, exc, guard, prefix) from None
    except UnicodeDecodeError:
        raise ReportError(format_key, "JSON is not valid UTF-8", f"near byte {guard.offset}") from None


def load(stream: IO[bytes], format_key: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The whole JSON document (for report shapes that are small by nature), depth-guarded."""
    docs = iter_items(stream, "", format_key, max_depth)
    doc = next(docs, _MISSING)
    if doc is _MISSING:
        raise ReportError(format_key, "empty file: no JSON document", "$")
    for _ in docs:  # drain, so that trailing garbage after the document is reported
        pass
    return doc


_MISSING = object()


def rewindable(stream: IO[bytes]) -> IO[bytes]:
    """``stream`` itself when it can seek, else a disk-spooled copy (for two-pass formats)."""
    try:
        if stream.seekable():
            return stream
    except (AttributeError, ValueError, OSError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)
    while True:
        block = stream.read(1 << 20)
        if not block:
            break
        spool.write(block)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def path_kind(stream: IO[bytes], path: str, format_key: str) -> str | None:
    """The ijson event that opens the member at ``path`` (``start_array``, ``start_map``,
    ``string``, ``null``...), or None when the document has no such member. Stops at first sight."""
    guard = DepthGuardStream(stream, format_key)
    try:
        for prefix, event, _value in ijson.parse(guard, use_float=True, buf_size=_BUF):
            if prefix == path and event not in ("map_key", "end_map", "end_array"):
                return event
    except ijson.JSONError as exc:
        raise _json_error(format_key, exc, guard, path) from None
    return None


def has_path(stream: IO[bytes], path: str, format_key: str) -> bool:
    """True when the document has a member at ``path`` (ijson syntax)."""
    return path_kind(stream, path, format_key) is not None


def check_container(stream: IO[bytes], path: str, format_key: str, what: str, kind: str = "start_array") -> None:
    """Raise unless ``path`` holds a list (or, with ``kind="start_map"``, an object) or null."""
    found = path_kind(stream, path, format_key)
    if found is None:
        raise ReportError(format_key, f"not a {what}: missing '{path}'", "$")
    if found not in (kind, "null"):
        noun = "a list" if kind == "start_array" else "an object"
        raise ReportError(format_key, f"not a {what}: '{path}' is not {noun}", f"$.{path}")


def items_required(stream: IO[bytes], prefix: str, format_key: str, what: str) -> Iterator[Any]:
    """Stream the values at ``prefix`` (``<path>.item``); a document whose ``<path>`` is missing or
    not a list is not ``what``. ``stream`` must be seekable: the check re-reads it only when no
    value was found.
    """
    start = stream.tell()
    count = 0
    for item in iter_items(stream, prefix, format_key):
        count += 1
        yield item
    if count == 0:
        stream.seek(start)
        check_container(stream, prefix[: -len(".item")] if prefix.endswith(".item") else prefix, format_key, what)


def first_value(stream: IO[bytes], path: str, format_key: str) -> Any:
    """The first value at ``path`` (one C-speed pass, stops when found), or None."""
    for value in iter_items(stream, path, format_key):
        return value
    return None
