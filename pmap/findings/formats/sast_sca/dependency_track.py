"""OWASP Dependency-Track Finding Packaging Format (FPF, ``/api/v1/finding/project/{uuid}/export``).

A report without a ``findings`` member is a project with no findings (Dependency-Track omits it).

Severity (Dependency-Track's scale): CRITICAL, HIGH, MEDIUM, LOW, INFO map one to one;
UNASSIGNED maps to nothing and falls back to the CVSS v3 (else v2) base score.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, parse_dt, text, to_float, uniq
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cvss_version, cwe_ids, sca_title, vuln_ids
from pmap.findings.formats.sniff import json_head

KEY = "dependency_track_fpf"
WHAT = "a Dependency-Track FPF export"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.INFO,
}
_ANALYSIS = {"false_positive": "false_positive", "not_affected": "not_affected", "resolved": "fixed"}
_MD_LINK = re.compile(r"\((https?://[^)\s]+)\)|(?<![(\[])(https?://[^\s)\]]+)")


def _finding(f: Any, project: str | None) -> ParsedFinding:
    if not isinstance(f, dict):
        raise ReportError(KEY, "a finding is not a JSON object", "findings[]")
    comp = as_dict(f.get("component"))
    vuln = as_dict(f.get("vulnerability"))
    analysis = as_dict(f.get("analysis"))
    vid = text(vuln.get("vulnId"))
    if not vid:
        raise ReportError(KEY, "a finding has no vulnerability.vulnId", "findings[].vulnerability")
    aliases = [v for a in as_list(vuln.get("aliases")) for v in as_dict(a).values() if isinstance(v, str)]
    cves, others = vuln_ids(vid, aliases)
    name, version = text(comp.get("name")), text(comp.get("version"))
    v3, v4 = text(vuln.get("cvssV3Vector")), text(vuln.get("cvssV4Vector"))
    score3, score2 = to_float(vuln.get("cvssV3BaseScore")), to_float(vuln.get("cvssV2BaseScore"))
    vector = v3 or v4 or text(vuln.get("cvssV2Vector"))
    score = score3 if score3 is not None else to_float(vuln.get("cvssV4BaseScore"))
    if score is None and not v3 and not v4:
        score = score2
    state = (text(analysis.get("state")) or "").lower()
    status = "suppressed" if analysis.get("isSuppressed") is True else _ANALYSIS.get(state)
    refs = [a or b for a, b in _MD_LINK.findall(text(vuln.get("references")) or "")]
    cwes = cwe_ids(vuln.get("cweId")) or cwe_ids([as_dict(c).get("cweId") for c in as_list(vuln.get("cwes"))])
    return ParsedFinding(
        title=sca_title(vid, name, version),
        vendor_severity=text(vuln.get("severity")),
        description=text(vuln.get("description")) or text(vuln.get("title")),
        cve_ids=cves,
        cwe_ids=cwes,
        other_ids=others,
        rule_id=vid,
        cvss_version=cvss_version(vector) if vector else ("3.1" if score3 is not None else None),
        cvss_vector=vector,
        cvss_score=score,
        repository=project,
        package_name=name,
        package_version=version,
        remediation=text(vuln.get("recommendation")),
        references=uniq(refs),
        first_seen=parse_dt(as_dict(f.get("attribution")).get("attributedOn")),
        status=status,
        extra={k: v for k, v in (("source", text(vuln.get("source"))), ("purl", text(comp.get("purl"))),
                                 ("matrix", text(f.get("matrix"))), ("epss", to_float(vuln.get("epssScore"))),
                                 ("epss_percentile", to_float(vuln.get("epssPercentile"))),
                                 ("cvss_v4_vector", v4 if vector != v4 else None)) if v is not None},
    )


def project_label(name: str | None, version: str | None) -> str | None:
    """A project as findings name it: ``name version``, or the name alone."""
    return f"{name} {version}" if name and version else name


def api_finding(finding: Any, project: str | None) -> ParsedFinding:
    """One finding of ``GET /api/v1/finding/project/{uuid}`` (FPF's finding shape) as this format reads it."""
    return _finding(finding, project)


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the ``findings`` of an FPF export."""
    src, start, head = report.stream, report.start, report.json
    if not head.any("project", "meta", "findings"):
        raise not_a(KEY, WHAT, "missing 'project', 'meta' and 'findings'")
    proj = {"name": head.values.get("project.name"), "version": head.values.get("project.version")}
    if "project" not in head.paths:  # written after a long findings list
        proj = as_dict(json_reader.first_value(src, "project", KEY))
        src.seek(start)
    project = project_label(text(proj.get("name")), text(proj.get("version")))
    report.cover(project)  # analysed, even without findings: a clean export resolves its earlier findings
    for f in json_reader.iter_json_items(src, "findings.item", KEY):
        yield _finding(f, project)


def detect(head: bytes, filename: str | None) -> bool:
    """``meta.application`` is Dependency-Track, or FPF's ``findings[].component`` + ``vulnerability``."""
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    if str(info.values.get("meta.application") or "").lower() == "dependency-track":
        return True
    return info.has("findings.item.component", "findings.item.vulnerability")


FORMAT = ReportFormat(
    key=KEY,
    title="Dependency-Track FPF (JSON)",
    detect=detect,
    read=parse,
    syntax="json",
    json_root="object",
    what=WHAT,
    map_severity=map_by_table(SEVERITIES),
)
