"""Cheap, never-raising looks at a report's first bytes, for ``detect`` functions and parse preambles.

JSON heads are sniffed with ijson (root type, key paths, first scalar values); XML heads by their
root element; CSV heads by their first line. Nothing here reads past the head it is given.
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ijson

HEAD_SIZE = 65536  # bytes of a report that detection and the parse preamble look at


def head_text(head: bytes) -> str:
    """The head decoded for detection: UTF-8 (or UTF-16 with a BOM), undecodable bytes replaced."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


_HEAD_MAX_DEPTH = 6  # key paths recorded this deep; deeper structure is irrelevant to detection
_HEAD_MAX_EVENTS = 40_000


@dataclass(frozen=True, slots=True)
class JsonHead:
    """What the first bytes of a JSON file say: root type, key paths and first scalar values.

    Paths use ijson syntax (``runs.item.tool.driver.name``), recorded up to a small depth.
    """

    root: str  # "object" or "array"
    paths: frozenset[str]
    values: dict[str, Any]

    def has(self, *paths: str) -> bool:
        """True when every path was seen."""
        return all(p in self.paths for p in paths)

    def any(self, *paths: str) -> bool:
        """True when at least one path was seen."""
        return any(p in self.paths for p in paths)

    def top_keys(self) -> set[str]:
        """Keys of the root object (or of the root array's objects, as ``item.key``)."""
        return {p for p in self.paths if "." not in p}


def _strip_bom(head: bytes) -> bytes:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.lstrip()


@lru_cache(maxsize=8)
def json_head(head: bytes) -> JsonHead | None:
    """Sniff a JSON head (possibly cut mid-document); None when it does not start like JSON."""
    body = _strip_bom(head)
    if not body or body[:1] not in (b"{", b"["):
        return None
    paths: set[str] = set()
    values: dict[str, Any] = {}
    stack: list[str] = []
    try:
        for n, (event, value) in enumerate(ijson.basic_parse(io.BytesIO(body), use_float=True)):
            if n > _HEAD_MAX_EVENTS or len(stack) > 64:
                break
            if event == "map_key":
                stack[-1] = value
                if len(stack) <= _HEAD_MAX_DEPTH:
                    paths.add(".".join(stack))
            elif event in ("start_map", "start_array"):
                if len(stack) < _HEAD_MAX_DEPTH and stack:
                    paths.add(".".join(stack))
                stack.append("" if event == "start_map" else "item")
            elif event in ("end_map", "end_array"):
                stack.pop()
                if not stack:
                    break
            elif len(stack) <= _HEAD_MAX_DEPTH:
                key = ".".join(stack)
                if key not in values:
                    values[key] = value[:200] if isinstance(value, str) else value
    except (ijson.JSONError, ValueError):  # a cut or malformed head, a bad UTF-8 byte: keep what was seen
        pass
    return JsonHead("object" if body[:1] == b"{" else "array", frozenset(paths), values)


_XML_START = re.compile(rb"<([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)(\s[^>]*)?/?>")
_XMLNS = re.compile(rb"""xmlns(?::([\w.\-]+))?\s*=\s*["']([^"']*)["']""")


@dataclass(frozen=True, slots=True)
class XmlHead:
    """The root element of an XML head: local name, namespace URI and raw head text."""

    name: str
    namespace: str
    text: str


@lru_cache(maxsize=8)
def xml_head(head: bytes) -> XmlHead | None:
    """Sniff the root element of an XML head; None when it does not start like XML."""
    body = _strip_bom(head)
    if not body.startswith(b"<"):
        return None
    # skip the prolog, comments and processing instructions: the first plain start tag is the root
    pos = 0
    while True:
        m = _XML_START.search(body, pos)
        if m is None:
            return None
        before = body[max(0, m.start() - 4) : m.start()]
        if before.endswith(b"<!--"):
            end = body.find(b"-->", m.start())
            if end < 0:
                return None
            pos = end + 3
            continue
        break
    qname = m.group(1).decode("ascii", "replace")
    prefix, _, local = qname.rpartition(":")
    attrs = m.group(2) or b""
    namespace = ""
    for ns in _XMLNS.finditer(attrs):
        if (ns.group(1) or b"").decode() == prefix:
            namespace = ns.group(2).decode("utf-8", "replace")
    return XmlHead(local, namespace, body[:65536].decode("utf-8", "replace"))


def has_ext(filename: str | None, *exts: str) -> bool:
    """True when ``filename`` ends with one of ``exts`` (case-insensitive, with the dot)."""
    return bool(filename) and filename.lower().endswith(tuple(e.lower() for e in exts))  # type: ignore[union-attr]


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
