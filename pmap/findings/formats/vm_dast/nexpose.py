"""Rapid7 Nexpose / InsightVM "XML Export 2.0" (``NexposeReport``).

Vulnerable ``test`` results sit under each node (host-level) or node endpoint service; the
vulnerability definitions (title, severity, CVSS, references) come after all nodes, so the file
is read twice over a seekable copy: definitions first, then the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, SeverityResult, cvss_band
from pmap.findings.formats.convert import clean, compact, cvss_score, evidence, parse_dt, port_of, to_float, uniq
from pmap.findings.formats.identifiers import cve_ids, cvss_version
from pmap.findings.formats.resource import covered_resource
from pmap.findings.formats.sniff import head_text, xml_root
from pmap.findings.formats.xml_reader import all_text, child, children, clear_element, iter_xml, local, text_of

KEY = "nexpose_xml"
_VULNERABLE = ("vulnerable-exploited", "vulnerable-version", "vulnerable-potential", "potential")
_DT = ("%Y%m%dT%H%M%S%f", "%Y%m%dT%H%M%S")


def map_severity(finding: ParsedFinding) -> SeverityResult:
    """Nexpose severity 1-10 is derived from the CVSS base score, so CVSS bands apply to it
    (1-3.9 Low, 4-6.9 Medium, 7-8.9 High, 9-10 Critical; Rapid7's own labels are Moderate 1-3,
    Severe 4-7, Critical 8-10). Without a severity the definition's CVSS score is used."""
    level = to_float(finding.vendor_severity)
    if level is not None and 0 <= level <= 10:
        band = cvss_band(level)
        if band is not None:
            return SeverityResult(band, "vendor")
    band = cvss_band(finding.cvss_score)
    if band is not None:
        return SeverityResult(band, "cvss")
    return SeverityResult(Severity.UNKNOWN, "unmapped")


def detect(head: bytes, filename: str | None) -> bool:
    """A ``NexposeReport`` root element."""
    root = xml_root(head_text(head))
    return root is not None and root[0] == "NexposeReport"


def _definition(v: Any) -> dict[str, Any]:
    cves: list[str] = []
    urls: list[str] = []
    others: list[str] = []
    refs = child(v, "references")
    for ref in children(refs, "reference") if refs is not None else ():
        source, value = (ref.get("source") or "").upper(), text_of(ref)
        if not value:
            continue
        if source == "CVE":
            cves.append(value)
        elif source == "URL":
            urls.append(value)
        elif source in ("MS", "MSKB", "CERT", "CERT-VN", "REDHAT", "DEBIAN", "UBUNTU", "CISCO", "BID"):
            others.append(f"{source}:{value}")
    vector3 = clean(v.get("cvssV3Vector"))
    score3 = cvss_score(v.get("cvssV3Score"))
    vector2 = (clean(v.get("cvssVector")) or "").strip("()") or None
    score2 = cvss_score(v.get("cvssScore"))
    tags_el = child(v, "tags")
    return {
        "title": clean(v.get("title")),
        "severity": clean(v.get("severity")),
        "description": all_text(child(v, "description")),
        "solution": all_text(child(v, "solution")),
        "cves": cve_ids(cves),
        "others": uniq(others),
        "urls": uniq(urls),
        "cvss": (score3, vector3, cvss_version(vector3) or "3.0") if (score3 is not None or vector3)
        else ((score2, vector2, "2.0") if (score2 is not None or vector2) else (None, None, None)),
        "pci_severity": clean(v.get("pciSeverity")),
        "risk_score": to_float(v.get("riskScore")),
        "tags": [t for t in (text_of(x) for x in children(tags_el, "tag")) if t] if tags_el is not None else [],
    }


def _read_definitions(stream: IO[bytes]) -> dict[str, dict[str, Any]]:
    defs: dict[str, dict[str, Any]] = {}
    for tag, elem in iter_xml(stream, KEY, ("vulnerability", "node")):
        if tag == "vulnerability":
            vid = clean(elem.get("id"))
            if vid:
                defs[vid.lower()] = _definition(elem)
        clear_element(elem)
    return defs


def _context(test: Any) -> tuple[Any | None, Any | None, Any | None]:
    """The node, endpoint and service a test belongs to (endpoint/service None at host level)."""
    node = endpoint = service = None
    p = test.getparent()
    while p is not None:
        name = local(p.tag)
        if name == "service" and service is None:
            service = p
        elif name == "endpoint" and endpoint is None:
            endpoint = p
        elif name == "node":
            node = p
            break
        p = p.getparent()
    return node, endpoint, service


def _finding(test: Any, defs: dict[str, dict[str, Any]]) -> ParsedFinding | None:
    status = (test.get("status") or "").lower()
    if status not in _VULNERABLE:
        return None
    node, endpoint, service = _context(test)
    if node is None:
        return None
    tid = clean(test.get("id")) or "unknown"
    d = defs.get(tid.lower(), {})
    names = child(node, "names")
    hostname = text_of(child(names, "name")) if names is not None else None
    score, vector, version = d.get("cvss", (None, None, None))
    return ParsedFinding(
        title=d.get("title") or tid,
        vendor_severity=d.get("severity"),
        description=d.get("description"),
        cve_ids=list(d.get("cves", [])),
        other_ids=list(d.get("others", [])),
        rule_id=tid,
        cvss_version=version,
        cvss_vector=vector,
        cvss_score=score,
        host=hostname,
        ip=clean(node.get("address")),
        port=port_of(endpoint.get("port")) if endpoint is not None else None,
        protocol=(clean(endpoint.get("protocol")) or "").lower() or None if endpoint is not None else None,
        remediation=d.get("solution"),
        references=list(d.get("urls", [])),
        first_seen=parse_dt(test.get("vulnerable-since"), *_DT),
        extra=compact({
            "service": clean(service.get("name")) if service is not None else None,
            "test_status": status,
            "pci_compliance_status": clean(test.get("pci-compliance-status")),
            "pci_severity": d.get("pci_severity"),
            "risk_score": d.get("risk_score"),
            "proof": evidence(all_text(test)),
        }),
    )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from a Nexpose XML 2.0 report, one per vulnerable test."""
    defs = _read_definitions(report.stream)
    found = 0
    for tag, elem in iter_xml(report.rewind(), KEY, ("test", "node", "VulnerabilityDefinitions")):
        if tag == "test":
            finding = _finding(elem, defs)
            if finding is not None:
                found += 1
                yield finding
        elif tag == "node":
            if not found:  # a scanned node without a vulnerable test: its earlier findings are resolved
                names = child(elem, "names")
                hostname = text_of(child(names, "name")) if names is not None else None
                report.cover(covered_resource(ParsedFinding("", host=hostname, ip=clean(elem.get("address")))))
            found = 0
        clear_element(elem)


FORMAT = ReportFormat(
    key=KEY,
    title="Rapid7 Nexpose / InsightVM XML 2.0",
    detect=detect,
    read=parse,
    syntax="xml",
    xml_roots=("NexposeReport",),
    what="a Nexpose XML 2.0 report",
    map_severity=map_severity,
)
