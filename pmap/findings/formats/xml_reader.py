"""The one XML reader every XML format uses: streamed, bounded, and closed to entity and DTD attacks.

:func:`iter_xml` refuses entity declarations (the billion laughs, external entities) before lxml
sees the document, never loads a DTD or touches the network, and turns every syntax error into a
:class:`ReportError` that names its line once. The helpers below read elements by local name, so a
format need not care which namespace prefix a vendor chose.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from typing import IO, Any

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type information (no lxml-stubs)

from pmap.findings.formats.errors import HostileReportError, ReportError
from pmap.findings.formats.readers import ReplayStream, read_upto
from pmap.findings.formats.sniff import HEAD_SIZE, head_text, xml_root

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


# A DOCTYPE whose internal subset only declares elements/attributes (Burp) or that only names an
# external DTD (Qualys) is harmless with DTD loading and network access off, but while it stands
# libxml2 lets an undefined entity reference (&xxe;) through as an empty node, silently dropping
# text: such a declaration is blanked out (same byte length, newlines kept so error line numbers
# stay right), so an undefined entity is a syntax error. Anything else is left for the prolog check.
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


def iter_xml(
    stream: IO[bytes], format_key: str, tags: tuple[str, ...] | None = None
) -> Iterator[tuple[str, Any]]:
    """Stream ``end`` events of an XML report, refusing entity declarations, DTD loading and network access.

    Yields ``(tag, element)`` for elements whose local tag is in ``tags`` (all when None).
    The caller must call ``clear_element(elem)`` once it has read an element it no longer needs,
    so memory stays bounded. An empty (or blank) file is a :class:`ReportError` at line 1; a
    document type declaration without entities (Burp's element list, Qualys's DTD name) is read
    past (blanked, see ``_benign_doctype_span``); an undefined entity reference is hostile; other
    syntax errors become :class:`ReportError` located ``line N, column M``.
    """
    head = read_upto(stream, HEAD_SIZE)
    if not head.strip():
        raise ReportError(format_key, "empty file", "line 1")
    problem = _hostile_doctype(head, format_key, complete=len(head) < HEAD_SIZE)
    if problem is not None:
        raise HostileReportError(format_key, problem, "line 1")
    span = _benign_doctype_span(head)
    if span is not None and b"<!ENTITY" not in head.upper():
        s, e = span
        head = head[:s] + _blank(head[s:e]) + head[e:]
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
        raise syntax_error(format_key, exc) from None


# libxml2 appends the position to its message ("..., line 5, column 4") and names the line a tag
# opened on ("in tag d line 5"): the position goes to the location, so the line is said once
_POSITION_SUFFIX = re.compile(r",\s*line \d+, column \d+\s*$")
_TAG_LINE = re.compile(r"\b([A-Za-z_][\w.:-]*) line (\d+)\b")


def syntax_error(format_key: str, exc: etree.XMLSyntaxError) -> ReportError:
    """The :class:`ReportError` for an lxml syntax error: the message without libxml2's appended
    position, located ``line N, column M``, naming the error's line once (the line an unclosed
    tag opened on is named only when it is another line)."""
    line, column = exc.position if exc.position and exc.position[0] else (exc.lineno or 0, 0)
    msg = exc.msg or str(exc)
    if not line:  # lxml's iterparse may raise a bare "no element found": its log holds the real error
        last = exc.error_log.last_error  # the log may hold earlier parses' errors: the last is this one
        if last is not None and last.line:
            line, column, msg = last.line, last.column, last.message
    msg = _POSITION_SUFFIX.sub("", msg).strip()
    msg = _TAG_LINE.sub(lambda m: m.group(1) if int(m.group(2)) == line else f"{m.group(1)} (opened on line "
                        f"{m.group(2)})", msg)
    where = (f"line {line}, column {column}" if column else f"line {line}") if line else None
    if "Entity" in msg or "DOCTYPE" in msg or "entity" in msg:
        return HostileReportError(format_key, "XML entities are refused", where or "line 1")
    return ReportError(format_key, f"malformed or truncated XML: {msg}", where)


def check_xml_root(head: bytes, format_key: str, roots: tuple[str, ...], what: str) -> None:
    """Refuse a head whose root element is not one of ``roots`` (local names), before a long parse.

    A blank head is an empty file. A head :func:`iter_xml` would refuse as hostile (entity
    declarations, a prolog longer than the head) is refused as hostile here, not as a wrong root.
    """
    if not head.strip():
        raise ReportError(format_key, "empty file", "line 1")
    problem = _hostile_doctype(head, format_key, complete=len(head) < HEAD_SIZE)
    if problem is not None:
        raise HostileReportError(format_key, problem, "line 1")
    root = xml_root(head_text(head))
    if root is None:
        raise ReportError(format_key, f"not {what}: no XML root element found", "line 1")
    if root[0] not in roots:
        raise ReportError(format_key, f"not {what}: root element is <{root[0][:40]}>", "line 1")


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
