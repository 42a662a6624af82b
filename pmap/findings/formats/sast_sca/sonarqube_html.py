"""SonarQube HTML: the report of the ``sonar-report`` npm tool (``<title>SonarQube Vulnerability Report``).

Layout: a ``<dl>`` naming the project (``Project Name``, ``Application``, ``Release``); after the heading
"Detail of the Detected Vulnerabilities" a table of issues, one ``<tr>`` per issue, whose columns are
found by their header text (Rule, Severity, Component required; Line, Description, Message, Key
optional); after the heading "Known Security Rules" a table of rule key -> HTML description
(``<details>``), whose cells may hold tables of their own: only rows of a top-level table are rows.

Two passes over the stream: the first checks the whole document and gathers the descriptions of the rules
the issues use (they come after the issues); the second yields one finding per issue row. Parsing is
lxml's HTML parser, streamed, without network access, entities or the huge-tree option (libxml2 stops
at a nesting depth of 256, which is refused as hostile); rows are cleared once read.

Severity is SonarQube's issue scale, as for ``sonarqube_json`` (BLOCKER -> critical, CRITICAL -> high,
MAJOR -> medium, MINOR -> low, INFO -> info); the identity rule is that reader's too.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type information (no lxml-stubs)

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, map_by_table
from pmap.findings.formats.convert import clean, text, to_int
from pmap.findings.formats.errors import HostileReportError, ReportError, not_a
from pmap.findings.formats.identifiers import cve_ids, cwes_in_text
from pmap.findings.formats.sast_sca import sonarqube
from pmap.findings.formats.xml_reader import clear_element

KEY = "sonarqube_html"
WHAT = "a SonarQube HTML report (sonar-report)"
TITLE = "SonarQube Vulnerability Report"
DETAIL = "Detail of the Detected Vulnerabilities"
RULES = "Known Security Rules"
REQUIRED = ("rule", "severity", "component")
REMEDIATION_MAX = 4000  # characters of a rule's description kept as plain text
_TEXT_TAGS = frozenset({"title", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6"})
_DETECT = re.compile(rb"<title>\s*SonarQube Vulnerability Report\s*</title>|<h2[^>]*>\s*Detail of the Detected "
                     rb"Vulnerabilities\s*</h2>", re.IGNORECASE)
_END = re.compile(rb"</html\s*>\s*$", re.IGNORECASE)
_TAIL = 4096


def _flat(elem: Any) -> str | None:
    """All text under an element, whitespace collapsed to single spaces."""
    return text(" ".join(" ".join(elem.itertext()).split()))


def _cells(row: Any) -> list[Any]:
    return [c for c in row if c.tag in ("td", "th")]


@dataclass(slots=True)
class _Rule:
    cwes: list[int]
    remediation: str | None


@dataclass(slots=True)
class _State:
    """What a pass has read so far."""

    title: bool = False
    project: str | None = None
    application: str | None = None
    detail_tables: int = 0  # 0 until the detail table starts
    used: set[str] = field(default_factory=set)
    rules: dict[str, _Rule] = field(default_factory=dict)


def _header(row: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, cell in enumerate(_cells(row)):
        name = (_flat(cell) or "").lower()
        if name and name not in out:
            out[name] = i
    return out


def _cell(cells: list[Any], header: dict[str, int], name: str) -> Any | None:
    i = header.get(name)
    return cells[i] if i is not None and i < len(cells) else None


def _issue(cells: list[Any], header: dict[str, int], state: _State, row_no: int) -> ParsedFinding:
    def value(name: str) -> str | None:
        cell = _cell(cells, header, name)
        return _flat(cell) if cell is not None else None

    rule_key, message = value("rule"), value("message")
    name = clean(value("description"))
    name = None if name == "/" else name  # sonar-report writes "/" for a rule it could not name
    title = name or message or rule_key
    if not title:
        raise ReportError(KEY, "an issue has neither rule nor message", f"detail table, row {row_no}")
    dep = sonarqube.DEPCHECK.search(message or "")
    rule = state.rules.get(rule_key or "")
    cwes = list(rule.cwes) if rule else []
    if dep:
        cwes += [c for c in cwes_in_text(message) if c not in cwes]
    key = value("key")
    return ParsedFinding(
        title=title,
        vendor_severity=value("severity"),
        description=message,
        cve_ids=cve_ids(message) if dep else [],
        cwe_ids=cwes,
        rule_id=rule_key,
        repository=state.project or state.application,
        file_path=value("component"),
        line=to_int(value("line")),
        package_name=dep.group(1) if dep else None,
        remediation=rule.remediation if rule else None,
        identity=sonarqube.identity(rule_key, message, dep.group(2) if dep else None),
        extra={"key": key} if key else {},
    )


def _rule(cells: list[Any], header: dict[str, int], state: _State) -> None:
    key_cell, desc_cell = _cell(cells, header, "rule"), _cell(cells, header, "description")
    key = _flat(key_cell) if key_cell is not None else None
    if not key or key not in state.used or key in state.rules or desc_cell is None:
        return
    described = _flat(desc_cell)
    state.rules[key] = _Rule(cwes_in_text(described), described[:REMEDIATION_MAX] if described else None)


def _checked(header: dict[str, int] | None) -> dict[str, int]:
    """The detail table's header, when it names the required columns."""
    missing = [c.capitalize() for c in REQUIRED if c not in (header or {})]
    if header is None or missing:
        raise ReportError(KEY, f"the detail table has no {', '.join(missing)} column"
                               f"{'s' if len(missing) > 1 else ''}", "detail table")
    return header


def _walk(src: IO[bytes], state: _State, collect: bool) -> Iterator[ParsedFinding]:
    """One pass: the first (``collect``) gathers rule descriptions and yields nothing; the second yields the
    issues and stops after the detail table."""
    context = etree.iterparse(src, events=("start", "end"), html=True, no_network=True, huge_tree=False,
                              remove_comments=True, remove_pis=True)
    depth = 0  # open <table> elements
    keep = 0  # open elements whose text is read at their end, outside tables
    section: str | None = None  # "detail" or "rules": the heading read last
    table: str | None = None  # the section of the top-level table open now
    rows = tables = 0
    last_dt: str | None = None
    detail_header: dict[str, int] | None = None
    rules_header: dict[str, int] | None = None
    try:
        for event, elem in context:
            tag = elem.tag if isinstance(elem.tag, str) else ""
            if event == "start":
                if tag == "table":
                    if depth == 0:
                        table = section
                        section = None  # a heading names the next table only
                        if table == "detail":
                            tables += 1
                            state.detail_tables = tables
                            if tables > 1:
                                table = None  # only the first detail table
                    depth += 1
                elif depth == 0 and tag in _TEXT_TAGS:
                    keep += 1
                continue
            if tag == "table":
                depth -= 1
                if depth == 0:
                    if table == "detail":
                        _checked(detail_header)
                        if not collect:
                            return
                    table = None
                    clear_element(elem)
                continue
            if depth == 0:
                if tag in _TEXT_TAGS:
                    keep -= 1
                    said = _flat(elem)
                    if tag == "title":
                        state.title = state.title or said == TITLE
                    elif tag == "dt":
                        last_dt = said
                    elif tag == "dd":
                        if last_dt == "Project Name" and state.project is None:
                            state.project = said
                        elif last_dt == "Application" and state.application is None:
                            state.application = said
                    else:
                        section = "detail" if said == DETAIL else "rules" if said == RULES else None
                if keep == 0:
                    clear_element(elem)
                continue
            if tag != "tr" or depth != 1:
                continue  # a row of a table inside a cell is part of that cell
            cells = _cells(elem)
            if table == "detail" and cells:
                if all(c.tag == "th" for c in cells) and detail_header is None:
                    detail_header = _checked(_header(elem))
                else:
                    header = _checked(detail_header)
                    rows += 1
                    rule_cell = _cell(cells, header, "rule")
                    if collect:
                        if rule_cell is not None and (rule_key := _flat(rule_cell)):
                            state.used.add(rule_key)
                    else:
                        yield _issue(cells, header, state, rows)
            elif table == "rules" and collect and cells:
                if all(c.tag == "th" for c in cells) and rules_header is None:
                    rules_header = _header(elem)
                elif rules_header is not None:
                    _rule(cells, rules_header, state)
            clear_element(elem)
    except etree.LxmlError as exc:
        raise ReportError(KEY, f"unreadable HTML: {exc}", "document") from None
    fatal = [e for e in context.error_log if e.level_name == "FATAL"]
    if fatal:
        err = fatal[0]
        cls = HostileReportError if err.type_name == "ERR_RESOURCE_LIMIT" else ReportError
        raise cls(KEY, f"malformed HTML: {err.message}", f"line {err.line}")


def _check_end(src: IO[bytes], start: int) -> None:
    """sonar-report ends its file with ``</html>``: a file without it is cut short."""
    src.seek(0, 2)
    size = src.tell()
    src.seek(max(start, size - _TAIL))
    if not _END.search(src.read()):
        raise ReportError(KEY, "truncated report: the file does not end with </html>", "end of file")


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the issues of a sonar-report HTML file, one finding per row of its detail table."""
    body = report.head.removeprefix(codecs.BOM_UTF8).strip()
    if not body:
        raise ReportError(KEY, "empty file", "byte 0")
    if not body.startswith(b"<"):
        raise not_a(KEY, WHAT, "the file is not HTML", "byte 0")
    state = _State()
    for _ in _walk(report.rewind(), state, collect=True):
        pass
    if not state.title and not state.detail_tables:
        raise not_a(KEY, WHAT, f"neither the title {TITLE!r} nor the heading {DETAIL!r} found", "document")
    if not state.detail_tables:
        raise ReportError(KEY, f"no table of issues: the heading {DETAIL!r} and its table are missing", "document")
    _check_end(report.stream, report.start)
    yield from _walk(report.rewind(), state, collect=False)


def detect(head: bytes, filename: str | None) -> bool:
    """HTML whose first 64 KiB hold sonar-report's title or its "Detail of the Detected Vulnerabilities" heading."""
    body = head.removeprefix(codecs.BOM_UTF8).lstrip()
    return body.startswith(b"<") and _DETECT.search(head) is not None


FORMAT = ReportFormat(
    key=KEY,
    title="SonarQube HTML (sonar-report vulnerability report)",
    detect=detect,
    read=parse,
    map_severity=map_by_table(sonarqube.SEVERITIES),
    what=WHAT,
)
