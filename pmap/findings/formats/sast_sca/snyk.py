"""Snyk Open Source / Container JSON (``snyk test --json``): one project object, or an array of
projects (``--all-projects``); container reports also carry ``applications[]`` projects.

Snyk lists a vulnerability once per dependency path; PMAP locates it at the project's manifest
(``displayTargetFile``), so the paths of one vulnerable package collapse into one finding.

A file that is not a Snyk report is refused (:func:`.errors.not_a`), never read as a project without findings
(which a full import would take for "everything fixed"): the CLI writes ``ok`` on every project object (with
``packageManager``, ``dependencyCount``...), also on a project it could not test (``ok: false`` and ``error``),
so an object without those keys (a GitLab security report, a CycloneDX SBOM, both with ``vulnerabilities``) or
an array whose items are not projects (gitleaks' findings array; an empty array, which ``--all-projects``
never writes) is another tool's file.

Severity (Snyk's scale): critical, high, medium, low map one to one; info (which the REST API's
``effective_severity_level`` also uses, for findings PMAP pulls as this format) maps to info.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, text, to_float, uniq
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cvss_version, cwe_ids, sca_title, vuln_ids
from pmap.findings.formats.sniff import json_head

KEY = "snyk_json"
WHAT = "a Snyk JSON report"
SEVERITIES = {"critical": Severity.CRITICAL, "high": Severity.HIGH, "medium": Severity.MEDIUM, "low": Severity.LOW,
              "info": Severity.INFO}


def _vuln(v: Any, project: str | None, target: str | None) -> ParsedFinding:
    if not isinstance(v, dict):
        raise ReportError(KEY, "a vulnerability is not a JSON object", "vulnerabilities[]")
    vid = text(v.get("id"))
    if not vid:
        raise ReportError(KEY, "a vulnerability has no id", "vulnerabilities[]")
    ids = as_dict(v.get("identifiers"))
    cves, others = vuln_ids(ids.get("CVE"), ids.get("GHSA"))
    pkg = text(v.get("packageName")) or text(v.get("name")) or text(v.get("moduleName"))
    version = text(v.get("version"))
    vector = text(v.get("CVSSv3"))
    fixed = [f for f in (text(x) for x in as_list(v.get("fixedIn"))) if f]
    upgrade = [u for u in as_list(v.get("upgradePath")) if isinstance(u, str)]
    remediation = None
    if upgrade:
        remediation = f"Upgrade to {upgrade[0]}."
    elif fixed:
        remediation = f"Upgrade {pkg} to {' or '.join(fixed)}."
    path = [p for p in as_list(v.get("from")) if isinstance(p, str)]
    title = text(v.get("title"))
    epss = as_dict(v.get("epssDetails"))
    return ParsedFinding(
        title=(f"{sca_title(vid, pkg, version)}: {title}" if title and title not in vid
               else sca_title(vid, pkg, version)),
        vendor_severity=text(v.get("severity")),
        description=text(v.get("description")),
        cve_ids=cves,
        cwe_ids=cwe_ids(ids.get("CWE")),
        other_ids=uniq([vid, *others]),
        rule_id=vid,
        cvss_version=cvss_version(vector),
        cvss_vector=vector,
        cvss_score=to_float(v.get("cvssScore")),
        repository=project,
        file_path=target,
        package_name=pkg,
        package_version=version,
        fixed_version=fixed[0] if fixed else None,
        remediation=remediation,
        references=uniq(text(as_dict(r).get("url")) for r in as_list(v.get("references"))),
        extra={k: val for k, val in (
            ("dependency_path", " > ".join(path) if path else None),
            ("epss", to_float(epss.get("probability"))),
            ("exploit", text(v.get("exploit"))),
        ) if val},
    )


# keys the Snyk CLI writes on every project object (``ok`` even on a project it could not test)
_PROJECT_KEYS = ("ok", "packageManager", "dependencyCount", "uniqueCount")
_NO_PROJECT = "no 'ok', 'packageManager' or 'dependencyCount' of a Snyk project"


def _project(p: Any, where: str) -> Iterator[ParsedFinding]:
    if not isinstance(p, dict):
        raise ReportError(KEY, "a project is not a JSON object", where)
    if not any(k in p for k in _PROJECT_KEYS):
        raise not_a(KEY, WHAT, f"an array item has {_NO_PROJECT}", where)
    if "vulnerabilities" not in p and "error" in p:
        raise ReportError(KEY, f"Snyk reported an error: {text(p.get('error'), 200)}", where)
    yield from _vulns(p.get("vulnerabilities"), text(p.get("projectName")),
                      text(p.get("displayTargetFile")) or text(p.get("targetFile")))
    for app in as_list(p.get("applications")):
        app = as_dict(app)
        yield from _vulns(app.get("vulnerabilities"), text(app.get("projectName")) or text(p.get("projectName")),
                          text(app.get("displayTargetFile")) or text(app.get("targetFile")))


def _vulns(vulns: Any, project: str | None, target: str | None) -> Iterator[ParsedFinding]:
    for v in as_list(vulns):
        yield _vuln(v, project, target)


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the vulnerabilities of a Snyk project (or of each project of an array)."""
    src, start, head = report.stream, report.start, report.json
    if head.root == "array":
        projects = 0
        for p in json_reader.iter_json_items(src, "item", KEY):
            projects += 1
            yield from _project(p, "[]")
        if not projects:
            raise not_a(KEY, WHAT, "an empty array holds no Snyk project", "[]")
        return
    if "vulnerabilities" not in head.paths and "error" in head.paths and "ok" in head.paths:
        raise ReportError(KEY, f"Snyk reported an error: {text(head.values.get('error'), 200)}", "$.error")
    # Snyk writes "ok" after the vulnerability list: a list longer than the head is looked past in one pass
    if not head.any(*_PROJECT_KEYS) and json_reader.path_kind(report.rewind(), "ok", KEY) is None:
        raise not_a(KEY, WHAT, _NO_PROJECT)
    # Snyk writes the project's name and manifest after its (possibly huge) vulnerability list:
    # fetch them first with small C-speed passes, then stream the list
    meta: dict[str, str | None] = {}
    for key in ("projectName", "displayTargetFile", "targetFile"):
        value = head.values.get(key)
        if value is None:
            src.seek(start)
            value = json_reader.first_value(src, key, KEY)
        meta[key] = text(value)
    src.seek(start)
    target = meta["displayTargetFile"] or meta["targetFile"]
    for v in json_reader.items_required(src, "vulnerabilities.item", KEY, WHAT):
        yield _vuln(v, meta["projectName"], target)
    if "applications" in head.paths or head.has("docker"):
        src.seek(start)
        for app in json_reader.iter_json_items(src, "applications.item", KEY):
            app = as_dict(app)
            yield from _vulns(app.get("vulnerabilities"), text(app.get("projectName")) or meta["projectName"],
                              text(app.get("displayTargetFile")) or text(app.get("targetFile")))


def detect(head: bytes, filename: str | None) -> bool:
    """Snyk's project envelope: ``vulnerabilities`` with ``packageManager`` and ``ok``/``dependencyCount``."""
    info = json_head(head)
    if info is None:
        return False
    base = "item." if info.root == "array" else ""
    if info.has(f"{base}vulnerabilities.item.packageName") and info.any(
        f"{base}vulnerabilities.item.semver", f"{base}vulnerabilities.item.from"
    ):
        return True
    return info.has(f"{base}vulnerabilities", f"{base}ok") and info.any(
        f"{base}packageManager", f"{base}dependencyCount", f"{base}uniqueCount"
    )


FORMAT = ReportFormat(
    key=KEY,
    title="Snyk Open Source / Container JSON",
    detect=detect,
    read=parse,
    syntax="json",
    what=WHAT,
    map_severity=map_by_table(SEVERITIES),
)
