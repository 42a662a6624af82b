"""SonarQube JSON: Web API pages (``/api/issues/search``, ``/api/hotspots/search``), the
``sonar-report`` JSON export (``rules`` + ``issues``), and a ZIP of such JSON pages.

Severity (SonarQube's scales):
- issue ``severity`` (up to 10.1): BLOCKER -> critical, CRITICAL -> high, MAJOR -> medium,
  MINOR -> low, INFO -> info;
- software-quality ``impacts[].severity`` (10.2+, used when ``severity`` is absent): BLOCKER ->
  critical, HIGH -> high, MEDIUM -> medium, LOW -> low, INFO -> info;
- hotspot ``vulnerabilityProbability``: HIGH -> high, MEDIUM -> medium, LOW -> low.
Every value is stored in ``vendor_severity`` as written; the table below covers all three.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, parse_dt, text, to_int
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cve_ids, cwes_in_text
from pmap.findings.formats.readers import rewindable
from pmap.findings.formats.sniff import json_head

KEY = "sonarqube_json"
WHAT = "a SonarQube JSON report"
SEVERITIES = {
    "blocker": Severity.CRITICAL,
    "critical": Severity.HIGH,
    "major": Severity.MEDIUM,
    "minor": Severity.LOW,
    "info": Severity.INFO,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
}
_STATUS = {"resolved": "fixed", "closed": "fixed", "reviewed": "fixed"}
_RESOLUTION = {"false-positive": "false_positive", "wontfix": "accepted", "fixed": "fixed", "safe": "false_positive"}
# the OWASP Dependency-Check plugin writes "Filename: pkg:1.2 | Reference: CVE-... | ..."
DEPCHECK = re.compile(r"Filename:\s*([^|]+?)\s*\|\s*Reference:\s*([^|]+?)\s*\|")
# rules under which one rule key covers many advisories: the Dependency-Check plugin raises every known
# vulnerability of a dependency as OWASP:UsingComponentWithKnownVulnerability (with the plugin's severity
# variants); the advisory named in the message is then what tells two issues apart
GENERIC_RULES = re.compile(r"^(?:OWASP|dependency-?check)[:_].*UsingComponentWithKnownVulnerabilit", re.IGNORECASE)
_ADVISORY = re.compile(r"\b(?:CVE-\d{4}-\d{4,}|GHSA(?:-[0-9a-z]{4}){3})\b", re.IGNORECASE)
_ZIP_MAX_MEMBERS = 10_000
_ZIP_MAX_BYTES = 4 << 30  # uncompressed, all members
_ZIP_MAX_RATIO = 1000


def _path(component: str | None, project: str | None) -> str | None:
    if not component or component == project:
        return None
    if project and component.startswith(project + ":"):
        return component[len(project) + 1 :]
    return component.split(":", 1)[1] if ":" in component else component


def identity(rule_key: str | None, message: str | None, reference: str | None) -> list[str]:
    """The identity parts of an issue (see docs/finding-identity.md): under a generic rule, or for a message in
    the Dependency-Check plugin's layout, the advisory it reports (its ``Reference:``, else the CVE/GHSA ids of
    the message), so different CVEs of one dependency stay different findings; none for any other issue, whose
    fingerprints stay as stored."""
    # a message in Dependency-Check's layout (a "Reference:") is such an issue under a renamed rule key too
    if not reference and (not rule_key or not GENERIC_RULES.search(rule_key)):
        return []
    ids = [reference] if reference else sorted({m.upper() for m in _ADVISORY.findall(message or "")})
    return [f"advisory={i}" for i in ids]


def _issue(issue: Any, rules: dict[str, Any], project: str | None) -> ParsedFinding:
    if not isinstance(issue, dict):
        raise ReportError(KEY, "an issue is not a JSON object", "issues[]")
    rule_key = text(issue.get("rule")) or text(issue.get("ruleKey"))
    rule = as_dict(rules.get(rule_key or ""))
    message = text(issue.get("message")) or text(issue.get("description"))
    title = text(rule.get("name")) or message or rule_key
    if not title:
        raise ReportError(KEY, "an issue has neither rule nor message", "issues[]")
    proj = text(issue.get("project")) or project
    severity = text(issue.get("severity")) or text(issue.get("vulnerabilityProbability"))
    if severity is None:
        impacts = [text(as_dict(i).get("severity")) for i in as_list(issue.get("impacts"))]
        ranked = [s for s in impacts if s and s.lower() in SEVERITIES]
        severity = max(ranked, key=lambda s: SEVERITIES[s.lower()].rank) if ranked else None
    status = (text(issue.get("status")) or "").lower()
    resolution = (text(issue.get("resolution")) or "").lower()
    dep = DEPCHECK.search(message or "")
    tags = [t for t in as_list(issue.get("tags")) if isinstance(t, str)]
    line = to_int(issue.get("line")) or to_int(as_dict(issue.get("textRange")).get("startLine"))
    return ParsedFinding(
        title=title,
        vendor_severity=severity,
        description=message,
        cve_ids=cve_ids(message) if dep else [],
        cwe_ids=cwes_in_text(message) if dep else [],
        rule_id=rule_key,
        repository=proj,
        file_path=_path(text(issue.get("component")), proj),
        line=line,
        package_name=dep.group(1) if dep else None,
        identity=identity(rule_key, message, dep.group(2) if dep else None),
        first_seen=parse_dt(_sonar_date(issue.get("creationDate"))),
        last_seen=parse_dt(_sonar_date(issue.get("updateDate"))),
        status=_RESOLUTION.get(resolution) or _STATUS.get(status),
        extra={k: v for k, v in (("key", text(issue.get("key"))), ("type", text(issue.get("type"))),
                                 ("tags", tags)) if v},
    )


def _sonar_date(value: Any) -> Any:
    # SonarQube writes "+0000" offsets, which fromisoformat accepts only with a colon
    if isinstance(value, str) and re.search(r"[+-]\d{4}$", value):
        return value[:-2] + ":" + value[-2:]
    return value


def _parse_json(src: IO[bytes], location: str) -> Iterator[ParsedFinding]:
    start = src.tell()
    head = json_head(src.read(65536))
    src.seek(start)
    if head is None or head.root != "object":
        if not src.read(1):
            raise ReportError(KEY, "empty file: no JSON document", location)
        raise not_a(KEY, WHAT, "the file is not a JSON object", location)
    project = text(head.values.get("sonarComponent")) or text(head.values.get("projectName"))
    rules: dict[str, Any] = {}
    if "rules.item" in head.paths:  # API pages (additionalFields=rules): a list of {key, name}
        for rule in json_reader.iter_json_items(src, "rules.item", KEY):
            if (k := text(as_dict(rule).get("key"))) is not None:
                rules[k] = {"name": as_dict(rule).get("name")}
        src.seek(start)
    elif "rules" in head.paths:  # sonar-report: an object keyed by rule
        for k, rule in json_reader.iter_kvitems(src, "rules", KEY):
            rules[k] = {"name": as_dict(rule).get("name")}
        src.seek(start)
    count = 0
    for prefix in ("issues.item", "hotspots.item"):
        src.seek(start)
        for issue in json_reader.iter_json_items(src, prefix, KEY):
            count += 1
            yield _issue(issue, rules, project)
    if count == 0:
        src.seek(start)
        if json_reader.has_path(src, "hotspots", KEY):
            src.seek(start)
            json_reader.check_container(src, "hotspots", KEY, WHAT)
        else:
            src.seek(start)
            json_reader.check_container(src, "issues", KEY, WHAT)


def _parse_zip(src: IO[bytes]) -> Iterator[ParsedFinding]:
    try:
        archive = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ReportError(KEY, f"not a readable ZIP archive: {exc}", "zip") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir() and m.filename.lower().endswith(".json")]
        if len(members) > _ZIP_MAX_MEMBERS:
            raise ReportError(KEY, f"ZIP holds more than {_ZIP_MAX_MEMBERS} JSON files", "zip")
        total = sum(m.file_size for m in members)
        if total > _ZIP_MAX_BYTES or any(
            m.compress_size and m.file_size / m.compress_size > _ZIP_MAX_RATIO for m in members
        ):
            raise ReportError(KEY, "ZIP expands beyond the allowed size (a zip bomb?)", "zip")
        for m in sorted(members, key=lambda m: m.filename):
            try:
                with archive.open(m) as member, rewindable(member) as page:
                    yield from _parse_json(page, f"zip:{m.filename}")
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
                raise ReportError(KEY, f"corrupt ZIP member: {exc}", f"zip:{m.filename}") from None


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream SonarQube issues/hotspots from a JSON page or export, or a ZIP of JSON pages."""
    if report.head.startswith(b"PK"):
        yield from _parse_zip(report.stream)
    else:
        yield from _parse_json(report.stream, "$")


def _is_sonar_json(head: bytes) -> bool:
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    if info.has("issues.item.rule", "issues.item.component") or info.has("hotspots.item.ruleKey"):
        return True
    if info.has("sonarComponent", "sonarBaseURL") or info.has("sonarComponent", "issues"):
        return True
    # an empty API page: the issues/search envelope with no issues
    return info.has("issues", "paging", "components") and info.any("effortTotal", "facets")


def _zip_first_member(head: bytes) -> bytes | None:
    """The start of the first member of a ZIP head, inflated (bounded), when it is JSON."""
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return None
    method = int.from_bytes(head[8:10], "little")
    name_len = int.from_bytes(head[26:28], "little")
    extra_len = int.from_bytes(head[28:30], "little")
    name = head[30 : 30 + name_len].decode("utf-8", "replace").lower()
    if not name.endswith(".json"):
        return None
    data = head[30 + name_len + extra_len :]
    if method == 0:
        return data[:65536]
    if method == 8:
        try:
            return zlib.decompressobj(-15).decompress(data, 65536)
        except zlib.error:
            return None
    return None


def detect(head: bytes, filename: str | None) -> bool:
    """SonarQube issue/hotspot JSON (API page or sonar-report), or a ZIP whose first JSON is one."""
    if head[:2] == b"PK":
        inner = _zip_first_member(head)
        return inner is not None and _is_sonar_json(inner)
    return _is_sonar_json(head)


FORMAT = ReportFormat(
    key=KEY,
    title="SonarQube JSON (API issues/hotspots, sonar-report, ZIP of pages)",
    detect=detect,
    read=parse,
    map_severity=map_by_table(SEVERITIES),
)
