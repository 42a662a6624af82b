"""JFrog Xray "unified" vulnerabilities report JSON (``total_rows`` + ``rows[]``), as exported
from Xray's Reports (also the shape of the "Vulnerabilities" report download).

Severity (Xray's scale): Critical, High, Medium, Low map one to one; Unknown maps to nothing and
falls back to the highest CVSS v3 score of the row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, parse_dt, text, to_float, uniq
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cvss_version, cwe_ids, sca_title, vuln_ids
from pmap.findings.formats.sniff import json_head

KEY = "jfrog_xray_json"
WHAT = "a JFrog Xray unified report"
SEVERITIES = {"critical": Severity.CRITICAL, "high": Severity.HIGH, "medium": Severity.MEDIUM, "low": Severity.LOW}
_OS_TYPES = {"rpm", "deb", "alpine", "apk"}


def component(ref: str | None) -> tuple[str | None, str | None, str | None]:
    """(type, name, version) of an Xray component id such as ``npm://ip:2.0.0``,
    ``gav://group:artifact:1.0`` or ``rpm://7:curl:16:7.29.0-54.el7`` (distro:name:epoch:version)."""
    if not ref or "://" not in ref:
        return None, ref, None
    kind, _, rest = ref.partition("://")
    parts = rest.split(":")
    if kind in _OS_TYPES and len(parts) >= 3:
        return kind, parts[1], parts[-1]
    if len(parts) >= 2:
        return kind, ":".join(parts[:-1]), parts[-1]
    return kind, rest or None, None


def _row(row: Any) -> ParsedFinding:
    if not isinstance(row, dict):
        raise ReportError(KEY, "a row is not a JSON object", "rows[]")
    issue = text(row.get("issue_id"))
    cves_raw = [as_dict(c) for c in as_list(row.get("cves"))]
    cves, others = vuln_ids([text(c.get("cve")) for c in cves_raw if text(c.get("cve"))])
    if not issue and not cves:
        raise ReportError(KEY, "a row has neither issue_id nor CVE", "rows[]")
    kind, name, version = component(text(row.get("vulnerable_component")))
    best = max(cves_raw, key=lambda c: to_float(c.get("cvss_v3_score")) or -1.0, default={})
    vector = text(best.get("cvss_v3_vector"))
    score = to_float(best.get("cvss_v3_score")) or to_float(row.get("cvss3_max_score"))
    fixed = [f for f in (text(x) for x in as_list(row.get("fixed_versions"))) if f]
    vid = issue or cves[0]
    return ParsedFinding(
        title=sca_title(cves[0] if cves else vid, name, version),
        vendor_severity=text(row.get("severity")),
        description=text(row.get("description")) or text(row.get("summary")),
        cve_ids=cves,
        cwe_ids=cwe_ids(row.get("cwe")),
        other_ids=uniq(([issue] if issue else []) + others),
        rule_id=vid,
        cvss_version=cvss_version(vector) or ("3.0" if vector else None),
        cvss_vector=vector,
        cvss_score=score,
        repository=text(row.get("impacted_artifact")),
        file_path=text(row.get("path")),
        package_name=name,
        package_version=version,
        fixed_version=fixed[0] if fixed else None,
        remediation=f"Upgrade {name} to {' or '.join(fixed)}." if fixed else None,
        references=uniq(text(r) for r in as_list(row.get("references"))),
        last_seen=parse_dt(row.get("artifact_scan_time")),
        extra={k: v for k, v in (("package_type", text(row.get("package_type")) or kind),
                                 ("summary", text(row.get("summary"), 500))) if v},
    )


def api_row(row: Any) -> ParsedFinding:
    """One row of a vulnerabilities report's content (``POST /reports/vulnerabilities/{id}``) as this format reads
    the same row in an exported report."""
    return _row(row)


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the ``rows`` of an Xray unified report."""
    src = report.stream
    for row in json_reader.items_required(src, "rows.item", KEY, WHAT):
        yield _row(row)


def detect(head: bytes, filename: str | None) -> bool:
    """``total_rows`` + ``rows`` whose rows carry Xray's ``issue_id``/``vulnerable_component``."""
    info = json_head(head)
    if info is None or info.root != "object" or not info.has("total_rows", "rows"):
        return False
    if any(p.startswith("rows.item") for p in info.paths):
        return info.any("rows.item.vulnerable_component", "rows.item.issue_id", "rows.item.impacted_artifact")
    return info.top_keys() <= {"total_rows", "rows"}


FORMAT = ReportFormat(
    key=KEY,
    title="JFrog Xray unified report JSON",
    detect=detect,
    read=parse,
    syntax="json",
    json_root="object",
    what=WHAT,
    map_severity=map_by_table(SEVERITIES),
)
