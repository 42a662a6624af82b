"""Qualys CSV reports: VM scan/vulnerability reports and PCI reports (``qualys_csv``), and the
VMDR "Asset Vuln Datalist" export (``qualys_vmdr_csv``, QID or CVE based).

All start with a few preamble lines (report name, company, user) before the header row; the
header is found by its columns. One row is one detection on one asset; CVE-based VMDR exports
repeat a detection once per CVE, and consecutive rows of one detection are merged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO

from pmap.findings.formats.base import Detector, ParsedFinding, ReportFormat
from pmap.findings.formats.vm_dast._io import (
    csv_lines,
    iter_csv,
)
from pmap.findings.formats.vm_dast._util import (
    clean,
    compact,
    cves_in,
    dedupe,
    evidence,
    parse_dt,
    port_of,
    strip_html,
    to_int,
    urls_in,
)
from pmap.findings.formats.vm_dast.qualys import _TYPES, map_severity, score_and_vector

_DATE_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M",
                 "%b %d, %Y %I:%M %p", "%b %d, %Y %H:%M", "%Y-%m-%d %H:%M:%S")
# PCI reports state a PCI severity word next to the Qualys level (Q_SEVERITY); words map to the
# same 1-5 scale so one table serves both
_WORD_LEVELS = {"minimal": "1", "low": "2", "medium": "3", "serious": "3", "high": "4", "critical": "4", "urgent": "5"}



def _is_scan_header(cells: list[str]) -> bool:
    return "ip" in cells and "qid" in cells and ("title" in cells or "vuln title" in cells) and "asset id" not in cells


def _is_vmdr_header(cells: list[str]) -> bool:
    return "qid" in cells and "title" in cells and ("asset id" in cells or "asset ipv4" in cells)


def _detector(is_header: Callable[[list[str]], bool]) -> Detector:
    def detect(head: bytes, filename: str | None) -> bool:
        return any(is_header(cells) for cells in csv_lines(head, 15))

    detect.__doc__ = "A Qualys CSV header row within the first lines."
    return detect


def _level(raw: str | None) -> str | None:
    if raw is None:
        return None
    return raw if raw in ("1", "2", "3", "4", "5") else _WORD_LEVELS.get(raw.lower(), raw)


def _cvss(row: dict[str, str]) -> tuple[float | None, str | None, str | None]:
    for col, version in (("cvss3.1 base", "3.1"), ("cvss3 base", "3.0"), ("cvssv3.1 base (nvd)", "3.1"),
                         ("cvss base", "2.0"), ("cvss_base", "2.0"), ("cvssv2 base (nvd)", "2.0")):
        score, vector = score_and_vector(clean(row.get(col)))
        if score is not None:
            if vector and version != "2.0":
                vector = f"CVSS:{version}/{vector}"
            return score, vector, version
    return None, None, None


def _scan_row(row: dict[str, str]) -> ParsedFinding | None:
    title = clean(row.get("title")) or clean(row.get("vuln title"))
    qid = clean(row.get("qid"))
    if title is None and qid is None:
        return None
    score, vector, version = _cvss(row)
    threat, impact = strip_html(row.get("threat")), strip_html(row.get("impact"))
    status = clean(row.get("vuln status"))
    fp_status = clean(row.get("false positive status"))
    vendor_refs = clean(row.get("vendor reference"))
    return ParsedFinding(
        title=title or f"QID {qid}",
        vendor_severity=_level(clean(row.get("q_severity")) or clean(row.get("severity"))),
        description="\n\n".join(p for p in (threat, f"Impact: {impact}" if impact else None) if p) or None,
        cve_ids=cves_in(row.get("cve id"), row.get("cveid")),
        other_ids=dedupe(v.strip() for v in (vendor_refs or "").split(",")),
        rule_id=qid,
        cvss_version=version,
        cvss_vector=vector,
        cvss_score=score,
        host=clean(row.get("fqdn")) or clean(row.get("dns")) or clean(row.get("hostname")) or clean(row.get("netbios")),
        ip=clean(row.get("ip")),
        port=port_of(row.get("port")),
        protocol=(clean(row.get("protocol")) or "").lower() or None,
        remediation=strip_html(row.get("solution")),
        references=urls_in(row.get("solution")),
        first_seen=parse_dt(row.get("first detected"), *_DATE_FORMATS),
        last_seen=parse_dt(row.get("last detected") or row.get("last scan"), *_DATE_FORMATS),
        status=("false_positive" if fp_status and fp_status.lower() == "approved" else (status.lower() if status else None)),
        extra=compact({
            "qualys_type": _TYPES.get((clean(row.get("type")) or "").lower()),
            "category": clean(row.get("category")),
            "result": evidence(row.get("results") or row.get("result")),
            "times_detected": to_int(row.get("times detected")),
            "date_last_fixed": clean(row.get("date last fixed")),
            "false_positive_status": fp_status,
            "pci_vuln": clean(row.get("pci vuln")) or clean(row.get("is_pci")),
            "os": clean(row.get("os")) or clean(row.get("operating system")),
        }),
    )


def _vmdr_row(row: dict[str, str]) -> ParsedFinding | None:
    qid = clean(row.get("qid"))
    title = clean(row.get("title"))
    if qid is None and title is None:
        return None
    score, vector, version = _cvss(row)
    status = clean(row.get("status"))
    threat = strip_html(row.get("threat"))
    tags = [t.strip() for t in (clean(row.get("asset tags")) or "").split(",") if t.strip()]
    return ParsedFinding(
        title=title or f"QID {qid}",
        vendor_severity=_level(clean(row.get("severity"))),
        description=threat or clean(row.get("cve-description")),
        cve_ids=cves_in(row.get("cve")),
        rule_id=qid,
        cvss_version=version,
        cvss_vector=vector,
        cvss_score=score,
        host=clean(row.get("asset name")),
        ip=clean(row.get("asset ipv4")) or clean(row.get("asset ipv6")),
        port=port_of(row.get("port")),
        protocol=(clean(row.get("protocol")) or "").lower() or None,
        remediation=strip_html(row.get("solution")),
        first_seen=parse_dt(row.get("first detected"), *_DATE_FORMATS),
        last_seen=parse_dt(row.get("last detected"), *_DATE_FORMATS),
        status=status.lower() if status else None,
        extra=compact({
            "qualys_type": _TYPES.get((clean(row.get("type detected")) or "").lower()),
            "asset_id": clean(row.get("asset id")),
            "category": clean(row.get("category")),
            "asset_tags": tags,
            "qds": to_int(row.get("qds")) or to_int(row.get("qvs score")),
            "result": evidence(row.get("results")),
            "os": clean(row.get("operating system")),
        }),
    )


def _same(a: ParsedFinding, b: ParsedFinding) -> bool:
    return (a.rule_id, a.host, a.ip, a.port, a.protocol) == (b.rule_id, b.host, b.ip, b.port, b.protocol)


def _parser(key: str, is_header: Callable[[list[str]], bool],
            build: Callable[[dict[str, str]], ParsedFinding | None]) -> Callable[[IO[bytes]], Iterator[ParsedFinding]]:
    def parse(stream: IO[bytes]) -> Iterator[ParsedFinding]:
        pending: ParsedFinding | None = None
        for _line, row in iter_csv(stream, key, is_header, delimiter=","):
            finding = build(row)
            if finding is None:
                continue
            if pending is not None and _same(pending, finding):
                pending.cve_ids = dedupe([*pending.cve_ids, *finding.cve_ids])
                continue
            if pending is not None:
                yield pending
            pending = finding
        if pending is not None:
            yield pending

    parse.__doc__ = "Stream findings from a Qualys CSV report, one per detection."
    return parse


QUALYS_CSV = ReportFormat(
    key="qualys_csv",
    title="Qualys VM CSV (scan, vulnerability and PCI reports)",
    detect=_detector(_is_scan_header),
    parse=_parser("qualys_csv", _is_scan_header, _scan_row),
    map_severity=map_severity,  # Qualys levels 1-5, see qualys.LEVELS
)

QUALYS_VMDR_CSV = ReportFormat(
    key="qualys_vmdr_csv",
    title="Qualys VMDR CSV (Asset Vuln Datalist, QID or CVE based)",
    detect=_detector(_is_vmdr_header),
    parse=_parser("qualys_vmdr_csv", _is_vmdr_header, _vmdr_row),
    map_severity=map_severity,
)
