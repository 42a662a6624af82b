"""npm audit JSON, npm 7+ (``auditReportVersion: 2``): ``vulnerabilities`` keyed by package.

One finding per advisory (``via`` objects) per package; a package that is only vulnerable through
another package (``via`` strings) adds nothing of its own. ``nodes`` names the installed path.

Severity (npm's scale): critical, high, moderate -> medium, low, info.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats.base import ParsedFinding, ReportError, ReportFormat, Severity, map_by_table
from pmap.findings.formats.sast_sca import _json
from pmap.findings.formats.sast_sca._util import (
    as_dict,
    as_list,
    cvss_version,
    cwe_ids,
    ghsa_ids,
    json_head,
    not_a,
    sca_title,
    text,
    to_float,
)

KEY = "npm_audit_json"
WHAT = "npm audit (npm 7+) JSON report"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "moderate": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.INFO,
}


def _package(name: str, entry: Any) -> Iterator[ParsedFinding]:
    entry = as_dict(entry)
    nodes = [n for n in as_list(entry.get("nodes")) if isinstance(n, str)]
    fix = entry.get("fixAvailable")
    remediation = None
    if isinstance(fix, dict) and text(fix.get("name")):
        major = " (a semver-major change)" if fix.get("isSemVerMajor") else ""
        remediation = f"Upgrade {text(fix.get('name'))} to {text(fix.get('version'))}{major}."
    elif fix is True:
        remediation = "Run npm audit fix."
    for via in as_list(entry.get("via")):
        if not isinstance(via, dict):
            continue  # vulnerable only through another package, reported there
        url = text(via.get("url"))
        source = text(via.get("source"))
        ghsa = ghsa_ids(url)
        vid = ghsa[0] if ghsa else source  # the GHSA id, else npm's advisory number as written
        if not vid:
            raise ReportError(KEY, f"an advisory of {name!r} has neither url nor source", f"vulnerabilities.{name}.via[]")
        pkg = text(via.get("name")) or name
        cvss = as_dict(via.get("cvss"))
        vector = text(cvss.get("vectorString"))
        title = text(via.get("title"))
        yield ParsedFinding(
            title=f"{sca_title(vid, pkg, None)}: {title}" if title else sca_title(vid, pkg, None),
            vendor_severity=text(via.get("severity")) or text(entry.get("severity")),
            description=title,
            cwe_ids=cwe_ids(via.get("cwe")),
            other_ids=ghsa,
            rule_id=vid,
            cvss_version=cvss_version(vector),
            cvss_vector=vector,
            cvss_score=to_float(cvss.get("score")) or None,
            file_path=nodes[0] if nodes else None,
            package_name=pkg,
            remediation=remediation,
            references=[url] if url else [],
            extra={k: v for k, v in (("vulnerable_range", text(via.get("range"))),
                                     ("direct", entry.get("isDirect") if isinstance(entry.get("isDirect"), bool) else None)) if v is not None},
        )


def parse(stream: IO[bytes]) -> Iterator[ParsedFinding]:
    """Stream the packages of ``vulnerabilities`` and their advisories."""
    src = _json.rewindable(stream)
    start = src.tell()
    head = json_head(src.read(65536))
    src.seek(start)
    if head is None or head.root != "object":
        if not src.read(1):
            raise ReportError(KEY, "empty file: no JSON document", "byte 0")
        raise not_a(KEY, WHAT, "the file is not a JSON object")
    version = head.values.get("auditReportVersion")
    if version is not None and version != 2:
        raise not_a(KEY, WHAT, f"auditReportVersion {version!r} (npm 6 reports are not read)", "$.auditReportVersion")
    if "advisories" in head.paths and "vulnerabilities" not in head.paths:
        raise not_a(KEY, WHAT, "an npm 6 report (advisories); use npm 7+", "$.advisories")
    seen = False
    for name, entry in _json.iter_kvitems(src, "vulnerabilities", KEY):
        seen = True
        yield from _package(name, entry)
    if not seen:
        src.seek(start)
        _json.check_container(src, "vulnerabilities", KEY, WHAT, kind="start_map")


def detect(head: bytes, filename: str | None) -> bool:
    """``auditReportVersion`` 2 with ``vulnerabilities``."""
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    return info.values.get("auditReportVersion") == 2 and "vulnerabilities" in info.paths


FORMAT = ReportFormat(
    key=KEY,
    title="npm audit JSON (npm 7+)",
    detect=detect,
    parse=parse,
    map_severity=map_by_table(SEVERITIES),
)
