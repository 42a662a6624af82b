"""Checkmarx: CxSAST XML (``CxXMLResults``) and the Checkmarx One JSON scan report
(``scanResults.sast``/``sca``/``kics``).

One finding per result (per data-flow path), located at the path's sink (its last node), where
the flaw takes effect; DefectDojo's default mode instead merges results per query and sink file.

The scanned project (CxSAST ``ProjectName``, Checkmarx One ``reportHeader.projectName``) is every
finding's ``asset``: what a full import covers.

Severity (Checkmarx's scale): Critical -> critical, High -> high, Medium -> medium, Low -> low,
Info/Information -> info.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, parse_dt, text, to_int
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cve_ids, cwe_ids
from pmap.findings.formats.sniff import json_head, xml_head
from pmap.findings.formats.xml_reader import clear_element, iter_xml, xml_text

KEY_XML = "checkmarx_xml"
KEY_JSON = "checkmarx_json"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.INFO,
    "information": Severity.INFO,
}
# CxSAST result state: 0 To Verify, 1 Not Exploitable, 2 Confirmed, 3 Urgent, 4 Proposed Not Exploitable
_XML_STATE = {"1": "false_positive"}
_JSON_STATE = {"not exploitable": "false_positive", "proposed not exploitable": None}


def _query_title(name: str | None) -> str | None:
    return name.replace("_", " ").strip() if name else None


def _cx_date(value: str | None) -> datetime | None:
    """CxSAST writes dates like "Sunday, February 25, 2018 11:35:52 AM"."""
    if not value:
        return None
    for fmt in ("%A, %B %d, %Y %I:%M:%S %p", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _xml_result(result: Any, query: Any, scan_date: datetime | None) -> ParsedFinding:
    qname = query.get("name")
    nodes = [n for p in result if _local(p.tag) == "Path" for n in p if _local(n.tag) == "PathNode"]
    sink = nodes[-1] if nodes else None
    file_path = (xml_text(sink, "FileName") if sink is not None else None) or text(result.get("FileName"))
    line = to_int(xml_text(sink, "Line")) if sink is not None else None
    if line is None:
        line = to_int(result.get("Line"))
    path = next((p for p in result if _local(p.tag) == "Path"), None)
    title = _query_title(qname)
    if not title:
        raise ReportError(KEY_XML, "a Query has no name", f"line {query.sourceline}")
    status = None
    if (result.get("FalsePositive") or "").lower() == "true":
        status = "false_positive"
    else:
        status = _XML_STATE.get(result.get("state") or "")
    link = text(result.get("DeepLink"))
    extra = {k: v for k, v in (("similarity_id", path.get("SimilarityId") if path is not None else None),
                               ("group", query.get("group")), ("language", query.get("Language")),
                               ("result_status", result.get("Status"))) if v}
    return ParsedFinding(
        title=title,
        vendor_severity=text(result.get("Severity")) or text(query.get("Severity")),
        description=f"{title}: data flows from {text(result.get('FileName')) or '?'}:{result.get('Line') or '?'}"
        f" to {file_path or '?'}:{line or '?'}.",
        cwe_ids=cwe_ids(query.get("cweId")),
        rule_id=text(query.get("id")) or qname,
        file_path=file_path,
        line=line,
        references=[link] if link else [],
        first_seen=scan_date,
        status=status,
        extra=extra,
    )


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def parse_xml(report: Report) -> Iterator[ParsedFinding]:
    """Stream CxSAST XML results (one per ``Result``)."""
    scan_date: datetime | None = None
    project: str | None = None
    root_checked = False
    for tag, elem in iter_xml(report.stream, KEY_XML, ("Result", "Query", "CxXMLResults")):
        if tag == "Result":
            query = elem.getparent()
            if not root_checked:
                root = query.getparent() if query is not None else None
                if query is None or _local(query.tag) != "Query" or root is None or _local(root.tag) != "CxXMLResults":
                    raise not_a(KEY_XML, "a Checkmarx XML report", "Result outside CxXMLResults/Query",
                                f"line {elem.sourceline}")
                scan_date = _cx_date(root.get("ScanStart"))
                project = (root.get("ProjectName") or "").strip() or None
                root_checked = True
            finding = _xml_result(elem, query, scan_date)
            finding.asset = project
            yield finding
            clear_element(elem)
        elif tag == "Query":
            clear_element(elem)
        elif elem.getparent() is None:
            return  # the root closed
    if not root_checked:
        raise not_a(KEY_XML, "a Checkmarx XML report", "no CxXMLResults root element", "line 1")


# --- Checkmarx One JSON report ------------------------------------------------------------------

def _sast(query: Any, date: datetime | None) -> Iterator[ParsedFinding]:
    query = as_dict(query)
    qname = text(query.get("queryName"))
    for v in as_list(query.get("vulnerabilities")):
        v = as_dict(v)
        nodes = [as_dict(n) for n in as_list(v.get("nodes"))]
        sink = nodes[-1] if nodes else {}
        title = _query_title(qname) or text(v.get("queryName"))
        if not title:
            raise ReportError(KEY_JSON, "a SAST query has no name", "scanResults.sast.languages[].queries[]")
        yield ParsedFinding(
            title=title,
            vendor_severity=text(v.get("severity")),
            description=text(query.get("description")) or title,
            cwe_ids=cwe_ids(v.get("cweId")),
            rule_id=text(query.get("queryId")) or qname,
            file_path=text(sink.get("fileName")),
            line=to_int(sink.get("line")),
            first_seen=parse_dt(v.get("firstFoundDate")) or date,
            last_seen=parse_dt(v.get("foundDate")),
            status=_JSON_STATE.get((text(v.get("state")) or "").lower()),
            extra={k: val for k, val in (("id", text(v.get("id"))), ("similarity_id", text(v.get("similarityId"))),
                                         ("group", text(v.get("groupName")))) if val},
        )


def _package(raw: str | None, version: str | None) -> str | None:
    """"Npm-underscore-1.10.2" -> "underscore" (ecosystem prefix and version suffix dropped)."""
    if not raw:
        return None
    name = raw
    if version and name.endswith("-" + version):
        name = name[: -len(version) - 1]
    if "-" in name and re.match(r"^[A-Z][A-Za-z]*-", name):
        name = name.split("-", 1)[1]
    return name or raw


def _sca(pkg: Any) -> Iterator[ParsedFinding]:
    pkg = as_dict(pkg)
    for v in as_list(pkg.get("vulnerabilities")):
        v = as_dict(v)
        version = text(v.get("version"))
        name = _package(text(pkg.get("name")), version)
        vid = text(v.get("cveName")) or text(v.get("cveId")) or text(v.get("similarityId"))
        if not vid:
            raise ReportError(KEY_JSON, "an SCA vulnerability has no id", "scanResults.sca.packages[]")
        yield ParsedFinding(
            title=f"{vid} in {name} {version}" if version else f"{vid} in {name}",
            vendor_severity=text(v.get("severity")),
            description=text(v.get("description")),
            cve_ids=cve_ids(vid, text(v.get("cveId"))),
            cwe_ids=cwe_ids(v.get("cwe")),
            rule_id=vid,
            package_name=name,
            package_version=version,
            first_seen=parse_dt(v.get("firstFoundDate")),
            last_seen=parse_dt(v.get("foundDate")),
            status=_JSON_STATE.get((text(v.get("state")) or "").lower()),
            extra={k: val for k, val in (("id", text(v.get("id"))),) if val},
        )


def kics_identity(line: int | None, similarity_id: str | None) -> list[str]:
    """A KICS result without a line (docs/finding-identity.md): its ``similarityId``, Checkmarx's own identity of
    the result, since a query can match several resources of one file (five ``chown`` instructions of one
    Dockerfile) and nothing else tells them apart; none when a line does, so those fingerprints stay."""
    return [f"similarity={similarity_id}"] if line is None and similarity_id else []


def _kics(group: Any) -> Iterator[ParsedFinding]:
    for v in as_list(as_dict(group).get("vulnerabilities")):
        v = as_dict(v)
        qname = text(v.get("queryName"))
        if not qname:
            raise ReportError(KEY_JSON, "a KICS result has no queryName", "scanResults.kics.results[]")
        yield ParsedFinding(
            title=qname,
            vendor_severity=text(v.get("severity")),
            description="\n".join(t for t in (text(v.get("description")), text(v.get("actualValue"))) if t) or None,
            rule_id=text(v.get("queryId")) or qname,
            file_path=text(v.get("fileName")),
            line=to_int(v.get("line")),
            identity=kics_identity(to_int(v.get("line")), text(v.get("similarityId"))),
            remediation=text(v.get("expectedValue")),
            first_seen=parse_dt(v.get("firstFoundDate")),
            last_seen=parse_dt(v.get("foundDate")),
            status=_JSON_STATE.get((text(v.get("state")) or "").lower()),
            extra={k: val for k, val in (("id", text(v.get("id"))), ("category", text(v.get("category"))),
                                         ("issue_type", text(v.get("issueType")))) if val},
        )


# --- Checkmarx One results API (GET /api/results?scan-id=) ---------------------------------------

#: a result's ``state`` (triage) as a finding status; ``status`` FIXED (gone in this scan) is ``fixed``
_API_STATE = {"not_exploitable": "false_positive"}


def _api_status(r: dict[str, Any]) -> str | None:
    if (text(r.get("status")) or "").upper() == "FIXED":
        return "fixed"
    return _API_STATE.get((text(r.get("state")) or "").lower())


def api_result(r: Any, project: str | None) -> ParsedFinding:
    """One result of the results API (SAST, KICS or SCA) as this format reads the same result in a JSON report."""
    if not isinstance(r, dict):
        raise ReportError(KEY_JSON, "a result is not a JSON object", "results[]")
    data, details = as_dict(r.get("data")), as_dict(r.get("vulnerabilityDetails"))
    kind = (text(r.get("type")) or "").lower()
    common: dict[str, Any] = {
        "vendor_severity": text(r.get("severity")),
        "repository": project,
        "first_seen": parse_dt(r.get("firstFoundAt")) or parse_dt(r.get("created")),
        "last_seen": parse_dt(r.get("foundAt")),
        "status": _api_status(r),
        "cwe_ids": cwe_ids(details.get("cweId")),
        "extra": {k: v for k, v in (("id", text(r.get("id"))), ("similarity_id", text(r.get("similarityId"))),
                                    ("type", kind), ("result_status", text(r.get("status"))),
                                    ("state", text(r.get("state")))) if v},
    }
    if kind.startswith("sca"):
        vid = text(details.get("cveName")) or text(r.get("id"))
        version = text(data.get("packageVersion"))
        name = _package(text(data.get("packageIdentifier")) or text(data.get("packageName")), version)
        if not vid:
            raise ReportError(KEY_JSON, "an SCA result has no vulnerability id", "results[]")
        return ParsedFinding(title=f"{vid} in {name} {version}" if version else f"{vid} in {name}",
                             description=text(r.get("description")), cve_ids=cve_ids(vid), rule_id=vid,
                             package_name=name, package_version=version, **common)
    qname = text(data.get("queryName"))
    if not qname:
        raise ReportError(KEY_JSON, "a result has no queryName", "results[].data")
    if kind == "kics":
        return ParsedFinding(title=qname, description=text(r.get("description")),
                             rule_id=text(data.get("queryId")) or qname, file_path=text(data.get("fileName")),
                             line=to_int(data.get("line")), remediation=text(data.get("expectedValue")),
                             identity=kics_identity(to_int(data.get("line")), text(r.get("similarityId"))), **common)
    nodes = [as_dict(n) for n in as_list(data.get("nodes"))]
    sink = nodes[-1] if nodes else {}
    title = _query_title(qname) or qname
    return ParsedFinding(title=title, description=text(r.get("description")) or title,
                         rule_id=text(data.get("queryId")) or qname, file_path=text(sink.get("fileName")),
                         line=to_int(sink.get("line")), **common)


def parse_json(report: Report) -> Iterator[ParsedFinding]:
    """Stream the SAST, SCA and KICS results of a Checkmarx One JSON report (one pass each)."""
    src, start, head = report.stream, report.start, report.json
    date = parse_dt(head.values.get("reportHeader.createdDate"))
    project = text(head.values.get("reportHeader.projectName")) or text(head.values.get("executiveSummary.projectName"))
    count = 0
    for prefix, make in (
        ("scanResults.sast.languages.item.queries.item", lambda q: _sast(q, date)),
        ("scanResults.sca.packages.item", _sca),
        ("scanResults.kics.results.item", _kics),
    ):
        src.seek(start)
        for item in json_reader.iter_json_items(src, prefix, KEY_JSON):
            for finding in make(item):
                count += 1
                finding.asset = project
                yield finding
    if count == 0:
        src.seek(start)
        json_reader.check_container(src, "scanResults", KEY_JSON, "a Checkmarx JSON report", kind="start_map")


def detect_xml(head: bytes, filename: str | None) -> bool:
    """Root element ``CxXMLResults``."""
    info = xml_head(head)
    return info is not None and info.name == "CxXMLResults"


def detect_json(head: bytes, filename: str | None) -> bool:
    """A JSON object with ``reportHeader`` and ``scanResults`` (or Checkmarx's ``executiveSummary``)."""
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    return info.has("scanResults") or info.has("reportHeader", "executiveSummary", "scanSummary")


XML_FORMAT = ReportFormat(
    key=KEY_XML,
    title="Checkmarx CxSAST XML",
    detect=detect_xml,
    read=parse_xml,
    syntax="xml",
    xml_roots=("CxXMLResults",),
    what="a Checkmarx XML report",
    map_severity=map_by_table(SEVERITIES),
)
JSON_FORMAT = ReportFormat(
    key=KEY_JSON,
    title="Checkmarx One JSON report",
    detect=detect_json,
    read=parse_json,
    syntax="json",
    json_root="object",
    what="a Checkmarx JSON report",
    map_severity=map_by_table(SEVERITIES),
)
