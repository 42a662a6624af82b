"""OSV-Scanner JSON (``osv-scanner --format json``): ``results[].packages[].vulnerabilities[]``.

Severity: the advisory's ``database_specific.severity`` (GitHub's scale: CRITICAL, HIGH,
MODERATE -> medium, LOW); otherwise the CVSS bands of the group's ``max_severity`` score, or of
the base score computed from the advisory's CVSS v3 vector.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, text, to_float, uniq
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cvss3_base_score, cvss_version, cwe_ids, sca_title, vuln_ids
from pmap.findings.formats.sniff import json_head

KEY = "osv_json"
WHAT = "an OSV-Scanner JSON report"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
}


def _group_score(groups: list[Any], vid: str) -> float | None:
    for g in groups:
        g = as_dict(g)
        if vid in as_list(g.get("ids")) or vid in as_list(g.get("aliases")):
            return to_float(g.get("max_severity"))
    return None


def _fixed(vuln: dict[str, Any], name: str | None) -> str | None:
    for aff in as_list(vuln.get("affected")):
        aff = as_dict(aff)
        if name and text(as_dict(aff.get("package")).get("name")) not in (name, None):
            continue
        for rng in as_list(aff.get("ranges")):
            for ev in as_list(as_dict(rng).get("events")):
                if (fixed := text(as_dict(ev).get("fixed"))) is not None:
                    return fixed
    return None


def _package(pkg: Any, source: str | None) -> Iterator[ParsedFinding]:
    pkg = as_dict(pkg)
    info = as_dict(pkg.get("package"))
    name, version = text(info.get("name")), text(info.get("version"))
    groups = as_list(pkg.get("groups"))
    for v in as_list(pkg.get("vulnerabilities")):
        if not isinstance(v, dict):
            raise ReportError(KEY, "a vulnerability is not a JSON object", "results[].packages[].vulnerabilities[]")
        vid = text(v.get("id"))
        if not vid:
            raise ReportError(KEY, "a vulnerability has no id", "results[].packages[].vulnerabilities[]")
        cves, others = vuln_ids(vid, v.get("aliases"))
        db = as_dict(v.get("database_specific"))
        vector = next((text(as_dict(s).get("score")) for s in as_list(v.get("severity"))
                       if str(as_dict(s).get("type", "")).startswith("CVSS")), None)
        fixed = _fixed(v, name)
        yield ParsedFinding(
            title=sca_title(vid, name, version),
            vendor_severity=text(db.get("severity")),
            description=text(v.get("details")) or text(v.get("summary")),
            cve_ids=cves,
            cwe_ids=cwe_ids(db.get("cwe_ids")),
            other_ids=others,
            rule_id=vid,
            cvss_version=cvss_version(vector),
            cvss_vector=vector,
            cvss_score=_group_score(groups, vid) or cvss3_base_score(vector),
            file_path=source,
            asset=source,
            package_name=name,
            package_version=version,
            fixed_version=fixed,
            remediation=f"Upgrade {name} to {fixed} or later." if fixed else None,
            references=uniq(text(as_dict(r).get("url")) for r in as_list(v.get("references"))),
            extra={k: val for k, val in (("ecosystem", text(info.get("ecosystem"))),
                                         ("summary", text(v.get("summary")))) if val},
        )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings source by source (each source holds its packages)."""
    src = report.stream
    for result in json_reader.items_required(src, "results.item", KEY, WHAT):
        result = as_dict(result)
        if "source" not in result and "packages" not in result:  # Semgrep's or Bandit's results, ...
            raise not_a(KEY, WHAT, "a result has neither 'source' nor 'packages'", "results[]")
        source = text(as_dict(result.get("source")).get("path"))
        for pkg in as_list(result.get("packages")):
            yield from _package(pkg, source)


def detect(head: bytes, filename: str | None) -> bool:
    """``results[].source`` + ``packages`` (OSV-Scanner's envelope)."""
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    return info.has("results.item.source", "results.item.packages") or info.has(
        "results.item.packages.item.package.ecosystem"
    )


FORMAT = ReportFormat(
    key=KEY,
    title="OSV-Scanner JSON",
    detect=detect,
    read=parse,
    syntax="json",
    json_root="object",
    what=WHAT,
    map_severity=map_by_table(SEVERITIES),
)
