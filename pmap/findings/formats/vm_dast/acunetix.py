"""Acunetix (WVS / Acunetix Premium) XML export: ``<ScanGroup><Scan>...<ReportItems>``, and the API's
vulnerability list (``GET /api/v1/vulnerabilities``), which a sync reads with this format's severities and
identity (:func:`api_vulnerability`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import (
    as_str,
    compact,
    cvss_score,
    evidence,
    parse_dt,
    split_url,
    strip_html,
    to_int,
    uniq,
)
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cve_ids, cvss_version, cwe_ids
from pmap.findings.formats.sniff import head_text, xml_root
from pmap.findings.formats.xml_reader import child, children, clear_element, iter_xml, text_of

KEY = "acunetix_xml"

# Acunetix item severity: high, medium, low, informational (Acunetix 360's "critical" is a
# separate JSON format); CVSS bands are the fallback
SEVERITY_TABLE = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "informational": Severity.INFO,
    "info": Severity.INFO,
}
_START_FORMATS = ("%d/%m/%Y, %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y, %H:%M:%S")


def detect(head: bytes, filename: str | None) -> bool:
    """A ``ScanGroup`` root (Acunetix WVS export)."""
    text = head_text(head)
    root = xml_root(text)
    return root is not None and root[0] == "ScanGroup" and ("<Scan" in text or "ExportedOn" in root[1])


def _scan_target(scan: Any) -> dict[str, Any]:
    start = text_of(child(scan, "StartURL")) or ""
    explicit = "://" in start
    base = start if explicit else (f"http://{start}" if start else "")
    host, port, _scheme = split_url(base)
    if not explicit:  # a bare host: only an explicit ":port" is known
        port = split_url(f"x://{start}")[1] if start else None
    return {
        "base": base.rstrip("/"),
        "host": host,
        "port": port,
        "start_url": start or None,
        "seen": parse_dt(text_of(child(scan, "StartTime")), *_START_FORMATS),
    }


def _cvss(item: Any) -> tuple[float | None, str | None, str | None]:
    for name in ("CVSS3", "CVSS"):
        node = child(item, name)
        if node is None:
            continue
        vector = text_of(child(node, "Descriptor"))
        score = cvss_score(text_of(child(node, "Score")))
        if score is not None or vector:
            return score, vector, cvss_version(vector) or ("3.0" if name == "CVSS3" else "2.0")
    return None, None, None


def _item(item: Any, target: dict[str, Any]) -> ParsedFinding:
    affects = text_of(child(item, "Affects")) or ""
    if target["base"]:
        url = target["base"] + ("" if affects.startswith("/") or not affects else "/") + affects
    else:
        url = affects or None
    param = text_of(child(item, "Parameter"))
    score, vector, version = _cvss(item)
    cwe_list = child(item, "CWEList")
    cve_list = child(item, "CVEList")
    refs = child(item, "References")
    desc_parts = [strip_html(text_of(child(item, n))) for n in ("Description", "Impact", "DetailedInformation")]
    false_positive = (text_of(child(item, "IsFalsePositive")) or "").lower() == "true"
    return ParsedFinding(
        title=text_of(child(item, "Name")) or "Acunetix alert",
        vendor_severity=text_of(child(item, "Severity")),
        description="\n\n".join(p for p in desc_parts if p) or None,
        cve_ids=cve_ids([text_of(c) for c in children(cve_list, "CVE")] if cve_list is not None else []),
        cwe_ids=cwe_ids([c.get("id") or text_of(c) for c in children(cwe_list, "CWE")] if cwe_list is not None else []),
        cvss_version=version,
        cvss_vector=vector,
        cvss_score=score,
        host=target["host"],
        port=target["port"],
        url=url,
        parameter=None if param in (None, "<empty>") else param,
        remediation=strip_html(text_of(child(item, "Recommendation"))),
        references=(uniq(text_of(child(r, "URL")) or "" for r in children(refs, "Reference"))
                    if refs is not None else []),
        last_seen=target["seen"],
        status="false_positive" if false_positive else None,
        extra=compact({
            "module": text_of(child(item, "ModuleName")),
            "type": text_of(child(item, "Type")),
            "details": evidence(strip_html(text_of(child(item, "Details")))),
            "start_url": target["start_url"],
        }),
    )


#: the API's numeric severity (``severity`` of a vulnerability) as the export's word; 4 (critical) since v15
API_SEVERITIES = {4: "critical", 3: "high", 2: "medium", 1: "low", 0: "informational"}
#: the API's vulnerability status as PMAP reads a report's state ("open" is no state)
API_STATES = {"fixed": "fixed", "ignored": "ignored", "false_positive": "false_positive"}


def api_vulnerability(v: Any) -> ParsedFinding:
    """One vulnerability of the API's ``GET /api/v1/vulnerabilities`` list as this format reads it: the same
    identity as the export's item (name, URL, parameter), the numeric severity as the export's word."""
    if not isinstance(v, dict):
        raise ReportError(KEY, "a vulnerability is not a JSON object", "vulnerabilities[]")
    name = as_str(v.get("vt_name"))
    if not name:
        raise ReportError(KEY, "a vulnerability has no vt_name", "vulnerabilities[]")
    url = as_str(v.get("affects_url"))
    host, port, _scheme = split_url(url)
    severity = to_int(v.get("severity"))
    detail = as_str(v.get("affects_detail"))
    status = (as_str(v.get("status")) or "").lower()
    return ParsedFinding(
        title=name,
        vendor_severity=API_SEVERITIES.get(severity) if severity is not None else None,
        host=host,
        port=port,
        url=url,
        parameter=None if detail in (None, "", "<empty>") else detail,
        last_seen=parse_dt(as_str(v.get("last_seen"))),
        status=API_STATES.get(status),
        extra=compact({
            "vuln_id": as_str(v.get("vuln_id")),
            "vt_id": as_str(v.get("vt_id")),
            "target_id": as_str(v.get("target_id")),
            "confidence": to_int(v.get("confidence")),
            "criticality": to_int(v.get("criticality")),
        }),
    )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from an Acunetix XML export, one per ReportItem."""
    target: dict[str, Any] | None = None
    for tag, elem in iter_xml(report.stream, KEY, ("ReportItem", "Scan", "StartTime")):
        if tag == "StartTime":
            scan = elem.getparent()
            if scan is not None and scan.tag == "Scan":
                target = _scan_target(scan)  # StartURL and StartTime precede ReportItems
        elif tag == "ReportItem":
            if target is None:
                scan = elem.getparent().getparent() if elem.getparent() is not None else None
                target = _scan_target(scan) if scan is not None else {
                    "base": "", "host": None, "port": None, "start_url": None, "seen": None}
            yield _item(elem, target)
            clear_element(elem)
        elif tag == "Scan":
            target = None
            clear_element(elem)


FORMAT = ReportFormat(
    key=KEY,
    title="Acunetix XML export",
    detect=detect,
    read=parse,
    syntax="xml",
    xml_roots=("ScanGroup",),
    what="an Acunetix XML export",
    map_severity=map_by_table(SEVERITY_TABLE),
)
