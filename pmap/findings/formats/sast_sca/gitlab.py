"""GitLab security report JSON (``gl-sast-report.json``, ``gl-dependency-scanning-report.json``,
``gl-container-scanning-report.json``, ``gl-secret-detection-report.json``): one schema family.

Every schema (2.x to 15.x, for SAST, dependency, container and cluster image scanning, DAST, secret
detection) requires a string ``version`` beside ``vulnerabilities`` (which may be empty): a file without it is
refused (:func:`.errors.not_a`), never read as a clean scan that a full import would take for "everything
fixed" (a Snyk report has no ``version``; a CycloneDX SBOM's is its revision number).

Severity (GitLab's scale): Critical, High, Medium, Low, Info map one to one; Unknown and
Undefined map to nothing (unknown, flagged for triage).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, parse_dt, text, to_int, uniq
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cve_ids, cwe_ids, ghsa_ids
from pmap.findings.formats.sniff import json_head

KEY = "gitlab_security_report"
WHAT = "a GitLab security report"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.INFO,
}
_ADVISORY_TYPES = {"ghsa", "gemnasium", "osvdb", "rhsa", "usn", "elsa", "alas", "dsa", "dla"}
_REPORT_TYPES = {"sast", "dependency_scanning", "container_scanning", "secret_detection", "cluster_image_scanning"}


def _finding(v: Any, tool: str | None, scan_type: str | None) -> ParsedFinding:
    if not isinstance(v, dict):
        raise ReportError(KEY, "a vulnerability is not a JSON object", "vulnerabilities[]")
    idents = [as_dict(i) for i in as_list(v.get("identifiers"))]
    first = idents[0] if idents else {}
    title = text(v.get("name")) or text(v.get("message")) or text(v.get("description"))
    title = title or text(first.get("name")) or text(v.get("id")) or text(v.get("cve"))
    if not title:
        raise ReportError(KEY, "a vulnerability has no name, message, description or identifier", "vulnerabilities[]")
    loc = as_dict(v.get("location"))
    dep = as_dict(loc.get("dependency"))
    pkg = as_dict(dep.get("package"))
    by_type: dict[str, list[str]] = {}
    for ident in idents:
        if (value := text(ident.get("value"))) is not None:
            by_type.setdefault((text(ident.get("type")) or "").lower(), []).append(value)
    links = [u for u in (text(as_dict(link).get("url")) for link in as_list(v.get("links"))) if u]
    links += [u for u in (text(i.get("url")) for i in idents) if u]
    category = text(v.get("category")) or scan_type
    # container findings live in an image, dependency findings in a lock file, code ones in a file
    file_path = text(loc.get("file")) or text(loc.get("image"))
    scanner = text(as_dict(v.get("scanner")).get("name")) or tool
    other = [x for t, xs in by_type.items() if t in _ADVISORY_TYPES for x in xs]
    description = text(v.get("description"))
    message = text(v.get("message"))
    if message and description and message != description:
        description = f"{message}\n\n{description}"
    return ParsedFinding(
        title=title,
        vendor_severity=text(v.get("severity")),
        description=description or message,
        cve_ids=cve_ids(by_type.get("cve", []), text(v.get("cve"))),
        cwe_ids=cwe_ids(by_type.get("cwe", [])),
        other_ids=uniq(other + ghsa_ids(*links)),
        rule_id=text(first.get("value")) or text(first.get("name")),
        file_path=file_path,
        line=to_int(loc.get("start_line")),
        package_name=text(pkg.get("name")),
        package_version=text(dep.get("version")),
        remediation=text(v.get("solution")),
        references=uniq(links),
        first_seen=parse_dt(v.get("detected_at")),
        tool=None,
        extra={k: val for k, val in (("id", text(v.get("id"))), ("category", category), ("scanner", scanner),
                                     ("confidence", text(v.get("confidence")))) if val},
    )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the ``vulnerabilities`` of a GitLab security report."""
    src, head = report.stream, report.json
    if "version" in head.paths:
        version_kind = "string" if isinstance(head.values.get("version"), str) else "other"
    else:  # written after a long vulnerability list: one pass
        version_kind = json_reader.path_kind(report.rewind(), "version", KEY) or "none"
        report.rewind()
    if version_kind == "none":
        raise not_a(KEY, WHAT, "no 'version' (every GitLab security report schema requires it)")
    if version_kind != "string" or head.any("bomFormat", "specVersion"):
        raise not_a(KEY, WHAT, "'version' is not a GitLab schema version", "$.version")
    # scan metadata usually follows the vulnerabilities; the head holds it only for small reports
    tool = text(head.values.get("scan.scanner.name"))
    scan_type = text(head.values.get("scan.type"))
    for v in json_reader.items_required(src, "vulnerabilities.item", KEY, WHAT):
        yield _finding(v, tool, scan_type)


def detect(head: bytes, filename: str | None) -> bool:
    """``vulnerabilities`` with GitLab's ``identifiers``/``location``, or the ``scan`` envelope."""
    info = json_head(head)
    if info is None or info.root != "object" or "vulnerabilities" not in info.paths:
        return False
    if str(info.values.get("scan.type") or "") in _REPORT_TYPES:
        return True
    if info.has("vulnerabilities.item.identifiers", "vulnerabilities.item.location"):
        return True
    # an empty report: GitLab's version + vulnerabilities + remediations envelope
    return info.has("version", "remediations") and not any(
        p.startswith("vulnerabilities.item") for p in info.paths
    )


FORMAT = ReportFormat(
    key=KEY,
    title="GitLab security report (SAST, dependency, container, secret detection)",
    detect=detect,
    read=parse,
    syntax="json",
    json_root="object",
    what=WHAT,
    map_severity=map_by_table(SEVERITIES),
)
