"""OWASP Dependency-Check XML report (``dependency-check-report.xml``, schema 1.x-4.x).

One finding per vulnerability (and per suppressed vulnerability, with status ``suppressed``) of
each dependency, located at the dependency's display name (``fileName``, which names the archive
nesting, e.g. ``app.ear: lib.jar``). The scanned project (``projectInfo/name``) is every finding's
``asset``: what a full import covers.

Severity (Dependency-Check's scale, from CVSS): CRITICAL, HIGH, MEDIUM (older reports:
MODERATE), LOW map one to one; INFO -> info.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import text, to_float, uniq
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cvss_version, cwe_ids, cwes_in_text, sca_title, vuln_ids
from pmap.findings.formats.sniff import xml_head
from pmap.findings.formats.xml_reader import clear_element, iter_xml, xml_text

KEY = "dependency_check_xml"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.INFO,
}
_PURL = re.compile(r"^pkg:([^/]+)/(.+)@([^?#]+)")


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(elem: Any, name: str) -> list[Any]:
    return [c for c in elem if _local(c.tag) == name]


def _child(elem: Any, name: str) -> Any:
    return next((c for c in elem if _local(c.tag) == name), None)


def _package(dep: Any) -> tuple[str | None, str | None]:
    """(name, version) from the package URL, else the maven identifier, else nothing."""
    # DC 5+ nests package URLs under identifiers; some writers use a packages container
    for pkgs in _children(dep, "identifiers") + _children(dep, "packages"):
        for pkg in (e for e in pkgs.iter() if _local(e.tag) == "package"):
            m = _PURL.match(xml_text(pkg, "id") or "")
            if m:
                ecosystem, path, version = m.groups()
                name = unquote(path).replace("/", ":") if ecosystem == "maven" else unquote(path)
                return name, unquote(version)
    for idents in _children(dep, "identifiers"):
        for ident in (e for e in idents.iter() if _local(e.tag) == "identifier"):
            if ident.get("type") == "maven" and (gav := xml_text(ident, "name")):
                parts = gav.split(":")
                if len(parts) >= 3:
                    return ":".join(parts[:-1]), parts[-1]
    return None, None


_V3_METRICS = (("AV", "attackVector"), ("AC", "attackComplexity"), ("PR", "privilegesRequired"),
               ("UI", "userInteraction"), ("S", "scope"), ("C", "confidentialityImpact"),
               ("I", "integrityImpact"), ("A", "availabilityImpact"))


def _v3_vector(v3: Any, version: str) -> str | None:
    """The vector Dependency-Check spells out metric by metric (values "N" or "NETWORK")."""
    parts = []
    for short, name in _V3_METRICS:
        value = xml_text(v3, name)
        if not value:
            return None
        parts.append(f"{short}:{value[0].upper()}")
    return f"CVSS:{version}/" + "/".join(parts)


def _cvss(vuln: Any) -> tuple[str | None, str | None, float | None]:
    v3 = _child(vuln, "cvssV3")
    if v3 is not None:
        score = to_float(xml_text(v3, "baseScore"))
        vector = xml_text(v3, "vectorString")
        # the report names no minor version; Dependency-Check's NVD data is CVSS 3.1
        version = cvss_version(vector) or xml_text(v3, "version") or "3.1"
        return version, vector or _v3_vector(v3, version), score
    v2 = _child(vuln, "cvssV2")
    if v2 is not None:
        return "2.0", xml_text(v2, "vectorString"), to_float(xml_text(v2, "score"))
    score = to_float(xml_text(vuln, "cvssScore"))
    return ("2.0" if score is not None else None), None, score


def _finding(dep: Any, vuln: Any, suppressed: bool) -> ParsedFinding:
    name = xml_text(vuln, "name")
    if not name:
        raise ReportError(KEY, "a vulnerability has no name", f"line {vuln.sourceline}")
    pkg, version = _package(dep)
    display = xml_text(dep, "fileName")
    cves, others = vuln_ids(name)
    cv_version, vector, score = _cvss(vuln)
    cwes = cwe_ids([c.text for c in vuln.iter() if _local(c.tag) == "cwe" and c.text]) or cwes_in_text(name)
    refs = []
    for r in vuln.iter():
        if _local(r.tag) == "reference" and (url := xml_text(r, "url")):
            refs.append(url)
    notes = xml_text(vuln, "notes")
    return ParsedFinding(
        title=sca_title(name, pkg or display, version),
        vendor_severity=xml_text(vuln, "severity"),
        description=xml_text(vuln, "description"),
        cve_ids=cves,
        cwe_ids=cwes,
        other_ids=[o for o in others if not o.upper().startswith("CWE-")],
        rule_id=name,
        cvss_version=cv_version,
        cvss_vector=vector,
        cvss_score=score,
        file_path=display,
        package_name=pkg,
        package_version=version,
        references=uniq(refs),
        status="suppressed" if suppressed else None,
        extra={k: v for k, v in (("source", text(vuln.get("source"))), ("file", xml_text(dep, "filePath")),
                                 ("suppression_notes", notes)) if v},
    )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the vulnerabilities of each ``dependency`` element."""
    checked = False
    project: str | None = None
    for _tag, dep in iter_xml(report.stream, KEY, ("dependency", "analysis")):
        if not checked:
            root = dep.getroottree().getroot()
            if _local(root.tag) != "analysis":
                raise not_a(KEY, "a Dependency-Check XML report", "the root element is not analysis", "line 1")
            project = xml_text(root, "projectInfo/name")  # it precedes the dependencies
            checked = True
        if _local(dep.tag) == "analysis":
            continue
        for vulns in _children(dep, "vulnerabilities") + _children(dep, "suppressedVulnerabilities"):
            for vuln in vulns:
                local = _local(vuln.tag)
                if local in ("vulnerability", "suppressedVulnerability"):
                    finding = _finding(dep, vuln, local == "suppressedVulnerability")
                    finding.asset = project
                    yield finding
        clear_element(dep)
    if not checked:
        raise not_a(KEY, "a Dependency-Check XML report", "no analysis element", "line 1")


def detect(head: bytes, filename: str | None) -> bool:
    """Root ``analysis`` in the ``jeremylong.github.io/DependencyCheck`` namespace."""
    info = xml_head(head)
    return info is not None and info.name == "analysis" and "dependencycheck" in info.namespace.lower()


FORMAT = ReportFormat(
    key=KEY,
    title="OWASP Dependency-Check XML",
    detect=detect,
    read=parse,
    syntax="xml",
    xml_roots=("analysis",),
    what="a Dependency-Check XML report",
    map_severity=map_by_table(SEVERITIES),
)
