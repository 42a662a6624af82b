"""Rapid7 Nexpose / InsightVM "XML Export 2.0" (``NexposeReport``).

Vulnerable ``test`` results sit under each node (host-level) or node endpoint service; the
vulnerability definitions (title, severity, CVSS, references) come after all nodes, so the file
is read twice over a seekable copy: definitions first, then the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats.base import (
    ParsedFinding,
    ReportFormat,
    Severity,
    SeverityResult,
    clear_element,
    cvss_band,
)
from pmap.findings.formats.vm_dast._io import (
    all_text,
    child,
    children,
    expect_xml_root,
    head_text,
    iter_report_xml,
    local,
    rewindable,
    text_of,
    xml_root,
)
from pmap.findings.formats.vm_dast._util import (
    clean,
    compact,
    cves_in,
    cvss_score,
    cvss_version_of,
    dedupe,
    evidence,
    parse_dt,
    port_of,
    to_float,
)

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
        "cves": cves_in(cves),
        "others": dedupe(others),
        "urls": dedupe(urls),
        "cvss": (score3, vector3, cvss_version_of(vector3) or "3.0") if (score3 is not None or vector3)
        else ((score2, vector2, "2.0") if (score2 is not None or vector2) else (None, None, None)),
        "pci_severity": clean(v.get("pciSeverity")),
        "risk_score": to_float(v.get("riskScore")),
        "tags": [t for t in (text_of(x) for x in children(tags_el, "tag")) if t] if tags_el is not None else [],
    }


def _read_definitions(stream: IO[bytes]) -> dict[str, dict[str, Any]]:
    defs: dict[str, dict[str, Any]] = {}
    for tag, elem in iter_report_xml(stream, KEY, ("vulnerability", "node")):
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


def parse(stream: IO[bytes]) -> Iterator[ParsedFinding]:
    """Stream findings from a Nexpose XML 2.0 report, one per vulnerable test."""
    seekable = rewindable(stream)
    try:
        start = seekable.tell()
        expect_xml_root(seekable, KEY, ("NexposeReport",), "a Nexpose XML 2.0 report")
        seekable.seek(start)
        defs = _read_definitions(seekable)
        seekable.seek(start)
        for tag, elem in iter_report_xml(seekable, KEY, ("test", "node", "VulnerabilityDefinitions")):
            if tag == "test":
                finding = _finding(elem, defs)
                if finding is not None:
                    yield finding
            clear_element(elem)
    finally:
        if seekable is not stream:
            seekable.close()  # the spooled copy of a non-seekable upload


FORMAT = ReportFormat(
    key=KEY,
    title="Rapid7 Nexpose / InsightVM XML 2.0",
    detect=detect,
    parse=parse,
    map_severity=map_severity,
)
