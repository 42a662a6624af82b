"""Qualys VM XML: the scan/asset report (``ASSET_DATA_REPORT``) and the API host detection list.

``ASSET_DATA_REPORT`` lists detections per host first and the vulnerability knowledge base
(``GLOSSARY``: titles, severities, CVEs) at the end, so it is read in two passes over a
seekable copy: the glossary first (bounded by the number of distinct QIDs), then the hosts.
``HOST_LIST_VM_DETECTION_OUTPUT`` (``/api/2.0/fo/asset/host/vm/detection/``) carries no titles;
its findings are titled by QID.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, SeverityResult, cvss_band
from pmap.findings.formats.convert import (
    clean,
    compact,
    evidence,
    parse_dt,
    port_of,
    strip_html,
    to_float,
    to_int,
    uniq,
)
from pmap.findings.formats.identifiers import cve_ids
from pmap.findings.formats.resource import covered_resource
from pmap.findings.formats.sniff import head_text, xml_root
from pmap.findings.formats.xml_reader import child, children, clear_element, iter_xml, text_of

KEY = "qualys_xml"
_ROOTS = ("ASSET_DATA_REPORT", "HOST_LIST_VM_DETECTION_OUTPUT")

# Qualys severity levels 1-5 (Minimal, Medium, Serious, Critical, Urgent) for confirmed and
# potential vulnerabilities. Level 1 "Minimal" means intruders can only collect information
# about the host, so it maps to Info. "Information Gathered" detections (TYPE Ig) are not
# vulnerabilities at any level and map to Info. CVSS bands are the fallback.
LEVELS = {"1": Severity.INFO, "2": Severity.LOW, "3": Severity.MEDIUM, "4": Severity.HIGH, "5": Severity.CRITICAL}
_TYPES = {"vuln": "confirmed", "confirmed": "confirmed", "practice": "potential", "potential": "potential",
          "ig": "information", "info": "information", "information gathered": "information"}


def map_severity(finding: ParsedFinding) -> SeverityResult:
    """Qualys level 1-5 (Info for information-gathered detections), else the CVSS band."""
    raw = (finding.vendor_severity or "").strip()
    if finding.extra.get("qualys_type") == "information" and raw:
        return SeverityResult(Severity.INFO, "vendor")
    if raw in LEVELS:
        return SeverityResult(LEVELS[raw], "vendor")
    band = cvss_band(finding.cvss_score)
    if band is not None:
        return SeverityResult(band, "cvss")
    return SeverityResult(Severity.UNKNOWN, "unmapped")


def detect(head: bytes, filename: str | None) -> bool:
    """A Qualys asset data report or host detection list root element."""
    root = xml_root(head_text(head))
    return root is not None and root[0] in _ROOTS


_SCORE_VECTOR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:\((.*)\))?\s*$")


def score_and_vector(value: str | None) -> tuple[float | None, str | None]:
    """Split Qualys's ``"9.0 (AV:N/AC:H/...)"`` into score and vector."""
    if not value:
        return None, None
    m = _SCORE_VECTOR.match(value)
    if not m:
        return None, None
    return to_float(m.group(1)), clean(m.group(2))


def _html(elem: Any, name: str) -> str | None:
    node = child(elem, name)
    return strip_html(node.text) if node is not None else None


def _items(elem: Any, list_name: str, item_name: str) -> list[Any]:
    node = child(elem, list_name)
    return list(children(node, item_name)) if node is not None else []


def _nested_text(elem: Any, outer: str, inner: str) -> str | None:
    node = child(elem, outer)
    return text_of(child(node, inner)) if node is not None else None


def _glossary_entry(vd: Any) -> dict[str, Any]:
    cves, refs, vendor_ids = [], [], []
    for c in _items(vd, "CVE_ID_LIST", "CVE_ID"):
        cves.append(text_of(child(c, "ID")))
        refs.append(text_of(child(c, "URL")))
    for v in _items(vd, "VENDOR_REFERENCE_LIST", "VENDOR_REFERENCE"):
        vendor_ids.append(text_of(child(v, "ID")))
        refs.append(text_of(child(v, "URL")))
    score3, vector3 = score_and_vector(_nested_text(vd, "CVSS3_SCORE", "CVSS3_BASE"))
    score2, vector2 = score_and_vector(_nested_text(vd, "CVSS_SCORE", "CVSS_BASE"))
    threat, impact = _html(vd, "THREAT"), _html(vd, "IMPACT")
    cvss: tuple[float | None, str | None, str | None]
    if score3 is not None:
        cvss = (score3, f"CVSS:3.0/{vector3}" if vector3 else None, "3.0")
    elif score2 is not None:
        cvss = (score2, vector2, "2.0")
    else:
        cvss = (None, None, None)
    return {
        "title": clean(text_of(child(vd, "TITLE"))),
        "severity": text_of(child(vd, "SEVERITY")),
        "category": text_of(child(vd, "CATEGORY")),
        "description": "\n\n".join(p for p in (threat, f"Impact: {impact}" if impact else None) if p) or None,
        "solution": _html(vd, "SOLUTION"),
        "cves": cve_ids(cves),
        "vendor_ids": uniq(v for v in vendor_ids if v),
        "references": uniq(r for r in refs if r and r.startswith(("http://", "https://"))),
        "cvss": cvss,
    }


def _read_glossary(stream: IO[bytes]) -> dict[str, dict[str, Any]]:
    glossary: dict[str, dict[str, Any]] = {}
    for tag, elem in iter_xml(stream, KEY, ("VULN_DETAILS", "HOST")):
        if tag == "VULN_DETAILS":
            qid = text_of(child(elem, "QID")) or (elem.get("id") or "").removeprefix("qid_")
            if qid:
                glossary[qid] = _glossary_entry(elem)
        clear_element(elem)
    return glossary


def _host_of(host_el: Any) -> dict[str, Any]:
    return {
        "ip": text_of(child(host_el, "IP")),
        "dns": text_of(child(host_el, "DNS")) or text_of(child(host_el, "NETBIOS")),
        "os": text_of(child(host_el, "OPERATING_SYSTEM")) or text_of(child(host_el, "OS")),
    }


def _detection(vi: Any, host: dict[str, Any], kb: dict[str, Any] | None) -> ParsedFinding:
    qid_el = child(vi, "QID")
    qid = text_of(qid_el) or ((qid_el.get("id") or "").removeprefix("qid_") if qid_el is not None else "")
    kb = kb or {}
    kind = _TYPES.get((text_of(child(vi, "TYPE")) or "").lower())
    score, vector, version = kb.get("cvss", (None, None, None))
    status = text_of(child(vi, "VULN_STATUS")) or text_of(child(vi, "STATUS"))
    final3 = to_float(text_of(child(vi, "CVSS3_FINAL")))
    severity = text_of(child(vi, "SEVERITY")) or kb.get("severity")
    return ParsedFinding(
        title=kb.get("title") or f"QID {qid}",
        vendor_severity=severity,
        description=kb.get("description"),
        cve_ids=list(kb.get("cves", [])),
        other_ids=list(kb.get("vendor_ids", [])),
        rule_id=qid or None,
        cvss_version=version,
        cvss_vector=vector,
        cvss_score=score,
        host=text_of(child(vi, "FQDN")) or host.get("dns"),
        ip=host.get("ip"),
        port=port_of(text_of(child(vi, "PORT"))),
        protocol=(text_of(child(vi, "PROTOCOL")) or "").lower() or None,
        remediation=kb.get("solution"),
        references=list(kb.get("references", [])),
        first_seen=parse_dt(text_of(child(vi, "FIRST_FOUND")) or text_of(child(vi, "FIRST_FOUND_DATETIME"))),
        last_seen=parse_dt(text_of(child(vi, "LAST_FOUND")) or text_of(child(vi, "LAST_FOUND_DATETIME"))),
        status=status.lower() if status else None,
        extra=compact({
            "qualys_type": kind,
            "category": kb.get("category"),
            "service": text_of(child(vi, "SERVICE")),
            "ssl": text_of(child(vi, "SSL")),
            "result": evidence(text_of(child(vi, "RESULT")) or text_of(child(vi, "RESULTS"))),
            "times_found": to_int(text_of(child(vi, "TIMES_FOUND"))),
            "cvss3_final": final3,
            "os": host.get("os"),
        }),
    )


def _iter_hosts(report: Report, glossary: dict[str, dict[str, Any]]) -> Iterator[ParsedFinding]:
    found = 0
    for tag, elem in iter_xml(report.rewind(), KEY, ("VULN_INFO", "DETECTION", "HOST", "HOST_LIST", "GLOSSARY")):
        if tag in ("VULN_INFO", "DETECTION"):
            list_el = elem.getparent()
            host_el = list_el.getparent() if list_el is not None else None
            if host_el is not None and host_el.tag == "HOST":
                qid = text_of(child(elem, "QID")) or ""
                found += 1
                yield _detection(elem, _host_of(host_el), glossary.get(qid))
            clear_element(elem)
        elif tag == "HOST":
            if not found:  # a scanned host without detections: its earlier findings are resolved
                host = _host_of(elem)
                report.cover(covered_resource(ParsedFinding("", host=host["dns"], ip=host["ip"])))
            found = 0
            clear_element(elem)
        elif tag == "GLOSSARY":
            return  # everything after the hosts is knowledge base and appendices


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from a Qualys asset data report or host detection list."""
    glossary = _read_glossary(report.stream)
    yield from _iter_hosts(report, glossary)


FORMAT = ReportFormat(
    key=KEY,
    title="Qualys VM XML (asset data report, host detection list)",
    detect=detect,
    read=parse,
    syntax="xml",
    xml_roots=_ROOTS,
    what="a Qualys VM XML report",
    map_severity=map_severity,
)
