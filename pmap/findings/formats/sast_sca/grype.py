"""Anchore Grype JSON (``grype -o json``): ``matches[]`` of vulnerability x artifact.

A match is located at the artifact's first location, so two copies of a library at different
paths are two findings (DefectDojo's "detailed" mode; its default merges them).

Severity (Grype's scale): Critical, High, Medium, Low map one to one; Negligible -> info;
Unknown maps to nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, text, to_float, uniq
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cvss_version, cwe_ids, sca_title, vuln_ids
from pmap.findings.formats.sniff import json_head

KEY = "grype_json"
WHAT = "a Grype JSON report"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "negligible": Severity.INFO,
}


def _best_cvss(*vulns: dict[str, Any]) -> tuple[str | None, str | None, float | None]:
    """The highest-version CVSS entry of the vulnerability, else of its related records."""
    best: tuple[str, str | None, float | None] | None = None
    for v in vulns:
        for c in as_list(v.get("cvss")):
            c = as_dict(c)
            vector = text(c.get("vector"))
            version = text(c.get("version")) or cvss_version(vector) or ""
            score = to_float(as_dict(c.get("metrics")).get("baseScore"))
            if best is None or version > best[0]:
                best = (version, vector, score)
        if best is not None:
            break
    if best is None:
        return None, None, None
    return best[0] or None, best[1], best[2]


def _match(m: Any, source: str | None) -> ParsedFinding:
    if not isinstance(m, dict):
        raise ReportError(KEY, "a match is not a JSON object", "matches[]")
    vuln = as_dict(m.get("vulnerability"))
    art = as_dict(m.get("artifact"))
    vid = text(vuln.get("id"))
    if not vid:
        raise ReportError(KEY, "a match has no vulnerability.id", "matches[]")
    related = [as_dict(r) for r in as_list(m.get("relatedVulnerabilities"))]
    cves, others = vuln_ids(vid, *[text(r.get("id")) for r in related])
    name, version = text(art.get("name")), text(art.get("version"))
    fix = as_dict(vuln.get("fix"))
    fixed = [f for f in (text(x) for x in as_list(fix.get("versions"))) if f]
    locations = [text(as_dict(loc).get("path")) for loc in as_list(art.get("locations"))]
    cv_version, vector, score = _best_cvss(vuln, *related)
    epss = next((as_dict(e) for e in as_list(vuln.get("epss")) if isinstance(e, dict)), {})
    description = text(vuln.get("description")) or next(
        (d for d in (text(r.get("description")) for r in related) if d), None
    )
    refs = [u for u in (text(x) for x in as_list(vuln.get("urls"))) if u]
    data_source = text(vuln.get("dataSource"))
    return ParsedFinding(
        title=sca_title(vid, name, version),
        vendor_severity=text(vuln.get("severity")),
        description=description,
        cve_ids=cves,
        cwe_ids=cwe_ids([as_dict(c).get("cwe") for c in as_list(vuln.get("cwes"))]),
        other_ids=others,
        rule_id=vid,
        cvss_version=cv_version,
        cvss_vector=vector,
        cvss_score=score,
        repository=source,
        file_path=next((p for p in locations if p), None),
        package_name=name,
        package_version=version,
        fixed_version=fixed[0] if fixed else None,
        remediation=f"Upgrade {name} to {' or '.join(fixed)}." if fixed else None,
        references=uniq(([data_source] if data_source else []) + refs),
        extra={k: val for k, val in (
            ("fix_state", text(fix.get("state"))),
            ("purl", text(art.get("purl"))),
            ("type", text(art.get("type"))),
            ("epss", to_float(epss.get("epss"))),
            ("epss_percentile", to_float(epss.get("percentile"))),
        ) if val is not None},
    )


def _source_name(src: IO[bytes], start: int, head_values: dict[str, Any]) -> str | None:
    """The scanned image or directory (``source.target``), which Grype writes after the matches."""
    value = head_values.get("source.target.userInput") or head_values.get("source.target")
    if value is None:
        src.seek(start)
        target = json_reader.first_value(src, "source.target", KEY)
        value = as_dict(target).get("userInput") if isinstance(target, dict) else target
    src.seek(start)
    return text(value)


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the ``matches`` of a Grype JSON report."""
    src, start, head = report.stream, report.start, report.json
    source = _source_name(src, start, head.values)
    report.cover(source)  # scanned, even when nothing matched: a clean rescan resolves its earlier findings
    for m in json_reader.items_required(src, "matches.item", KEY, WHAT):
        yield _match(m, source)


def detect(head: bytes, filename: str | None) -> bool:
    """``matches[].vulnerability`` + ``artifact``, or Grype's ``descriptor.name``."""
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    if info.has("matches.item.vulnerability", "matches.item.artifact"):
        return True
    return str(info.values.get("descriptor.name") or "").lower() == "grype" or (
        info.has("matches") and info.any("descriptor.name", "distro.name") and info.has("source")
    )


FORMAT = ReportFormat(
    key=KEY,
    title="Anchore Grype JSON",
    detect=detect,
    read=parse,
    syntax="json",
    json_root="object",
    what=WHAT,
    map_severity=map_by_table(SEVERITIES),
)
