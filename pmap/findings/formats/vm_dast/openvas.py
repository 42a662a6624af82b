"""Greenbone / OpenVAS reports: GMP XML (``<report>`` with ``<results>``) and the CSV results export."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import (
    clean,
    compact,
    cvss_score,
    evidence,
    parse_dt,
    port_of,
    probability,
    to_int,
    uniq,
    urls_in,
)
from pmap.findings.formats.identifiers import cve_ids, cvss_version
from pmap.findings.formats.readers import iter_csv
from pmap.findings.formats.resource import covered_resource
from pmap.findings.formats.sniff import csv_header_line, head_text, xml_root
from pmap.findings.formats.xml_reader import child, children, clear_element, iter_xml, text_of

# Greenbone threat levels: High, Medium, Low, Log, Debug (and Critical since GOS 22.04 for
# CVSS 9.0+); "False Positive" is an override state, not a severity, so it falls to the CVSS band.
SEVERITY_TABLE = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "log": Severity.INFO,
    "debug": Severity.INFO,
}
_PORT = re.compile(r"^\s*(\d+|general|package|[a-z-]+)?/?(tcp|udp|icmp|sctp)?", re.IGNORECASE)
_IP = re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$|^[0-9a-fA-F:]+:[0-9a-fA-F:.]*$")


def _port_proto(value: str | None) -> tuple[int | None, str | None]:
    if not value:
        return None, None
    m = _PORT.match(value)
    if not m:
        return None, None
    return port_of(m.group(1)), (m.group(2) or "").lower() or None


def _tags(value: str | None) -> dict[str, str]:
    # NVT tags are "key=value|key=value"; values may contain newlines but not "|"
    out: dict[str, str] = {}
    for part in (value or "").split("|"):
        k, sep, v = part.partition("=")
        if sep and v.strip():
            out[k.strip()] = " ".join(v.split())
    return out


def _describe(summary: str | None, insight: str | None, impact: str | None) -> str | None:
    parts = [summary, f"Insight: {insight}" if insight else None, f"Impact: {impact}" if impact else None]
    return "\n\n".join(p for p in parts if p) or None


# --- XML --------------------------------------------------------------------------------------

def detect_xml(head: bytes, filename: str | None) -> bool:
    """A GMP ``<report>`` root whose head shows Greenbone markers (format_id, gmp/omp, nvt oids)."""
    text = head_text(head)
    root = xml_root(text)
    if root is None or root[0] not in ("report", "get_reports_response"):
        return False
    return any(m in text for m in ("<gmp>", "<omp>", "format_id=", "<nvt oid=", "<scan_run_status>"))


def _xml_result(res: Any) -> ParsedFinding:
    nvt = child(res, "nvt")
    host_el = child(res, "host")
    address = clean(host_el.text) if host_el is not None else None
    hostname = text_of(child(host_el, "hostname")) if host_el is not None else None
    port, proto = _port_proto(text_of(child(res, "port")))
    tags = _tags(text_of(child(nvt, "tags"))) if nvt is not None else {}
    cves: list[str] = []
    urls: list[str] = []
    advisories: list[str] = []
    refs = child(nvt, "refs") if nvt is not None else None
    for ref in children(refs, "ref") if refs is not None else ():
        rtype, rid = (ref.get("type") or "").lower(), clean(ref.get("id"))
        if not rid:
            continue
        if rtype == "cve":
            cves.append(rid)
        elif rtype == "url":
            urls.append(rid)
        elif rtype in ("cert-bund", "dfn-cert", "cisa"):
            advisories.append(rid)
    vector = None
    sevs = child(nvt, "severities") if nvt is not None else None
    if sevs is not None:
        first = child(sevs, "severity")
        vector = text_of(child(first, "value")) if first is not None else None
    vector = vector or tags.get("cvss_base_vector")
    score = cvss_score(text_of(child(res, "severity")))
    if score is None and nvt is not None:
        score = cvss_score(text_of(child(nvt, "cvss_base")))
    threat = text_of(child(res, "threat"))
    epss_score = None
    epss = child(nvt, "epss") if nvt is not None else None
    if epss is not None and child(epss, "max_severity") is not None:
        epss_score = probability(text_of(child(child(epss, "max_severity"), "score")))
    qod = child(res, "qod")
    solution = text_of(child(nvt, "solution")) if nvt is not None else None
    return ParsedFinding(
        title=(text_of(child(res, "name")) or (text_of(child(nvt, "name")) if nvt is not None else None)
               or "OpenVAS result"),
        vendor_severity=threat,
        description=_describe(tags.get("summary"), tags.get("insight"), tags.get("impact")),
        cve_ids=cve_ids(cves),
        other_ids=uniq(advisories),
        rule_id=clean(nvt.get("oid")) if nvt is not None else None,
        cvss_version=cvss_version(vector) if vector else None,
        cvss_vector=vector,
        cvss_score=score,
        host=hostname or (None if address and _IP.match(address) else address),
        ip=address if address and _IP.match(address) else None,
        port=port,
        protocol=proto,
        remediation=" ".join(solution.split()) if solution else tags.get("solution"),
        references=uniq(urls),
        last_seen=parse_dt(text_of(child(res, "modification_time")) or text_of(child(res, "creation_time"))),
        status="false_positive" if threat and threat.lower() == "false positive" else None,
        extra=compact({
            "family": text_of(child(nvt, "family")) if nvt is not None else None,
            "solution_type": tags.get("solution_type"),
            "qod": to_int(text_of(child(qod, "value"))) if qod is not None else None,
            "result": evidence(text_of(child(res, "description"))),
            "epss_score": epss_score,
            "original_threat": text_of(child(res, "original_threat")),
        }),
    )


def _scanned_host(host: Any) -> str | None:
    """The resource of a report's ``host`` entry (``ip`` and its ``hostname`` detail), named as its results'
    findings are (:func:`_xml_result`): the host name, else the address."""
    address = text_of(child(host, "ip"))
    hostname = next((text_of(child(d, "value")) for d in children(host, "detail")
                     if text_of(child(d, "name")) == "hostname"), None)
    is_ip = bool(address and _IP.match(address))
    return covered_resource(ParsedFinding("", host=hostname or (None if is_ip else address),
                                          ip=address if is_ip else None))


def parse_xml(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from a GMP XML report, one per ``results/result``; the report's ``host`` entries
    (every host scanned, with or without results) are covered."""
    for tag, elem in iter_xml(report.stream, "openvas_xml", ("result", "host")):
        parent = elem.getparent()
        if tag == "result":
            if parent is not None and parent.tag == "results":
                yield _xml_result(elem)
                clear_element(elem)
        elif parent is not None and parent.tag == "report" and child(elem, "ip") is not None:
            report.cover(_scanned_host(elem))  # a result's own <host> is read with its result
            clear_element(elem)


# --- CSV --------------------------------------------------------------------------------------

def _is_csv_header(cells: list[str]) -> bool:
    return "nvt oid" in cells or ("nvt name" in cells and "ip" in cells)


def detect_csv(head: bytes, filename: str | None) -> bool:
    """A CSV header with Greenbone's NVT columns."""
    return _is_csv_header(csv_header_line(head))


def _csv_row(row: dict[str, str]) -> ParsedFinding | None:
    title = clean(row.get("nvt name"))
    oid = clean(row.get("nvt oid"))
    if title is None and oid is None:
        return None
    address = clean(row.get("ip"))
    proto = (clean(row.get("port protocol")) or "").lower() or None
    advisories = [c.strip() for c in (clean(row.get("certs")) or "").split(",") if c.strip()]
    return ParsedFinding(
        title=title or f"NVT {oid}",
        vendor_severity=clean(row.get("severity")),
        description=_describe(clean(row.get("summary")), clean(row.get("vulnerability insight")),
                              clean(row.get("impact"))),
        cve_ids=cve_ids(row.get("cves")),
        other_ids=uniq(advisories),
        rule_id=oid,
        cvss_score=cvss_score(row.get("cvss")),
        host=clean(row.get("hostname")),
        ip=address,
        port=port_of(row.get("port")),
        protocol=proto,
        remediation=clean(row.get("solution")),
        references=urls_in(row.get("other references")),
        last_seen=parse_dt(row.get("timestamp")),
        extra=compact({
            "solution_type": clean(row.get("solution type")),
            "qod": to_int(row.get("qod")),
            "result": evidence(row.get("specific result")),
            "epss_score": probability(row.get("max severity epss score")),
            "affected": clean(row.get("affected software/os")),
        }),
    )


def parse_csv(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from a Greenbone CSV results export, one per row."""
    for _line, row in iter_csv(report.stream, "openvas_csv", _is_csv_header):
        finding = _csv_row(row)
        if finding is not None:
            yield finding


OPENVAS_XML = ReportFormat(
    key="openvas_xml",
    title="Greenbone / OpenVAS XML report",
    detect=detect_xml,
    read=parse_xml,
    syntax="xml",
    xml_roots=("report", "get_reports_response"),
    what="a Greenbone/OpenVAS XML report",
    map_severity=map_by_table(SEVERITY_TABLE),
)

OPENVAS_CSV = ReportFormat(
    key="openvas_csv",
    title="Greenbone / OpenVAS CSV results",
    detect=detect_csv,
    read=parse_csv,
    map_severity=map_by_table(SEVERITY_TABLE),
)
