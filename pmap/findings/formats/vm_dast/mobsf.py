"""MobSF JSON: the static analysis report (``/api/v1/report_json``), mobsfscan output and the
list-shaped issue export (QARK style, ``[{"category", "severity", "name", "file_object"}]``).

A static report is one document of a few MB and is loaded whole (depth-guarded). MobSF lists
code and API findings per rule with the files they occur in; PMAP keeps one finding per rule
(MobSF's own presentation) with the files in ``extra``. mobsfscan reports per file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, SeverityResult, cvss_band
from pmap.findings.formats.convert import as_dict, as_list, as_str, compact, cvss_score, strip_html, to_int
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cwe_ids
from pmap.findings.formats.json_reader import load_json
from pmap.findings.formats.sniff import first_json_byte, head_text

KEY = "mobsf_json"

# MobSF report levels: high, warning (shown as medium in MobSF's scorecard), info, secure/good,
# hotspot (needs manual review), insecure (older iOS ATS rows' `status`, high); Android permission
# protection levels: dangerous, normal, signature(OrSystem). mobsfscan uses ERROR/WARNING/INFO like
# Semgrep (High/Medium/Low).
# List exports use INFO/WARNING/ERROR/VULNERABILITY.
REPORT_LEVELS = {
    "critical": Severity.CRITICAL, "high": Severity.HIGH, "warning": Severity.MEDIUM, "medium": Severity.MEDIUM,
    "low": Severity.LOW, "hotspot": Severity.LOW, "info": Severity.INFO, "secure": Severity.INFO,
    "insecure": Severity.HIGH, "good": Severity.INFO, "dangerous": Severity.HIGH, "normal": Severity.INFO,
    "signature": Severity.INFO, "signatureorsystem": Severity.INFO, "unknown": Severity.INFO,
}
MOBSFSCAN_LEVELS = {"error": Severity.HIGH, "warning": Severity.MEDIUM, "info": Severity.LOW}
LIST_LEVELS = {"vulnerability": Severity.HIGH, "error": Severity.MEDIUM, "warning": Severity.LOW, "info": Severity.INFO}
_TABLES = {"report": REPORT_LEVELS, "mobsfscan": MOBSFSCAN_LEVELS, "list": LIST_LEVELS}
_FILES_KEPT = 20


def map_severity(finding: ParsedFinding) -> SeverityResult:
    """The level table of the document shape the finding came from, else the CVSS band."""
    table = _TABLES.get(str(finding.extra.get("mobsf_source", "report")), REPORT_LEVELS)
    raw = (finding.vendor_severity or "").strip().lower()
    if raw in table:
        return SeverityResult(table[raw], "vendor")
    band = cvss_band(finding.cvss_score)
    if band is not None:
        return SeverityResult(band, "cvss")
    return SeverityResult(Severity.UNKNOWN, "unmapped")


_REPORT_KEYS = (
    '"app_name"', '"package_name"', '"manifest_analysis"', '"code_analysis"', '"appsec"', '"binary_analysis"',
)


def detect(head: bytes, filename: str | None) -> bool:
    """A MobSF static report, mobsfscan output, or a MobSF/QARK issue list."""
    text = head_text(head)
    first = first_json_byte(head)
    if first == "{":
        if '"mobsfscan_version"' in text:
            return True
        return sum(k in text for k in _REPORT_KEYS) >= 3 and ('"md5"' in text or '"file_name"' in text)
    if first == "[":
        return all(k in text[:8192] for k in ('"file_object"', '"apk_exploit_dict"'))
    return False


def _f(source: str, section: str, title: str, severity: Any, **kw: Any) -> ParsedFinding:
    extra = compact({"mobsf_source": source, "section": section, **kw.pop("extra", {})})
    return ParsedFinding(title=title, vendor_severity=as_str(severity), extra=extra, **kw)


def _title(value: Any) -> str | None:
    return " ".join((strip_html(str(value).replace("<br>", " ")) or "").split()) or None


def _files(value: Any) -> list[str]:
    if isinstance(value, dict):
        return list(value)[:_FILES_KEPT]
    return [str(v) for v in as_list(value)][:_FILES_KEPT]


def _rules(section: str, rules: Any) -> Iterator[ParsedFinding]:
    """code_analysis / android_api / ios_api: {rule: {files, metadata}} (optionally under "findings")."""
    section_rules = as_dict(rules)
    if isinstance(section_rules.get("findings"), dict):
        section_rules = section_rules["findings"]
    for rule, body in section_rules.items():
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            continue
        md = body["metadata"]
        yield _f("report", section, as_str(md.get("description")) or rule, md.get("severity"),
                 rule_id=f"{section}:{rule}", description=as_str(md.get("description")),
                 cwe_ids=cwe_ids(as_str(md.get("cwe"))), cvss_score=cvss_score(md.get("cvss")),
                 references=[r for r in as_list(md.get("ref")) if isinstance(r, str) and r.startswith("http")],
                 extra={"files": _files(body.get("files")), "masvs": as_str(md.get("masvs")),
                        "owasp_mobile": as_str(md.get("owasp-mobile"))})


def _permissions(perms: Any) -> Iterator[ParsedFinding]:
    items = perms.items() if isinstance(perms, dict) else (
        (as_str(p.get("name")), p) for p in as_list(perms) if isinstance(p, dict))
    for name, details in items:
        if not name or not isinstance(details, dict):
            continue
        yield _f("report", "permissions", name, details.get("status"), rule_id=f"permission:{name}",
                 description=as_str(details.get("description")) or as_str(details.get("info")))


def _binary(section: Any) -> Iterator[ParsedFinding]:
    if isinstance(section, list):  # Android: one entry per shared object, one key per check
        for lib in section:
            if not isinstance(lib, dict):
                continue
            name = as_str(lib.get("name"))
            for check, body in lib.items():
                if check == "name" or not isinstance(body, dict):
                    continue
                desc = as_str(body.get("description")) or check
                yield _f("report", "binary_analysis", desc.split(". ")[0].rstrip("."), body.get("severity"),
                         rule_id=f"binary:{check}", description=desc, file_path=name)
    elif isinstance(section, dict):  # iOS: {"findings": {title: {...}}} or {title: {...}}
        findings = as_dict(section.get("findings")) or section
        for title, body in findings.items():
            if isinstance(body, dict) and "severity" in body:
                yield _f("report", "binary_analysis", title, body.get("severity"), rule_id=f"binary:{title}",
                         description=as_str(body.get("detailed_desc")), cwe_ids=cwe_ids(as_str(body.get("cwe"))),
                         cvss_score=cvss_score(body.get("cvss")))


def _report(doc: dict[str, Any]) -> Iterator[ParsedFinding]:
    yield from _permissions(doc.get("permissions"))
    cert = doc.get("certificate_analysis")
    if isinstance(cert, dict):
        for item in as_list(cert.get("certificate_findings")):
            if isinstance(item, list) and len(item) >= 2:
                title = str(item[2] if len(item) >= 3 else item[1])
                yield _f("report", "certificate_analysis", title, item[0], rule_id=f"certificate:{title}",
                         description=str(item[1]))
    manifest = doc.get("manifest_analysis")
    entries = manifest.get("manifest_findings") if isinstance(manifest, dict) else manifest
    for m in as_list(entries):
        if isinstance(m, dict):
            title = _title(m.get("title")) or as_str(m.get("name")) or "manifest issue"
            # one manifest rule fires once per component and the title names it; the rule id
            # alone would merge the components, so the title identifies the finding
            yield _f("report", "manifest_analysis", title, m.get("severity") or m.get("stat"),
                     description=as_str(m.get("description") or m.get("desc")),
                     extra={"rule": as_str(m.get("rule")),
                            "component": [str(c) for c in as_list(m.get("component"))][:_FILES_KEPT]})
    network = doc.get("network_security")
    for n in as_list(network.get("network_findings") if isinstance(network, dict) else None):
        if isinstance(n, dict):
            desc = as_str(n.get("description")) or "network security issue"
            yield _f("report", "network_security", desc.rstrip("."), n.get("severity"), rule_id=f"network:{desc}",
                     extra={"scope": [str(s) for s in as_list(n.get("scope"))][:_FILES_KEPT]})
    ats = doc.get("ats_analysis")
    for a in as_list(ats.get("ats_findings") if isinstance(ats, dict) else ats):
        if isinstance(a, dict):
            title = as_str(a.get("issue")) or "ATS issue"
            # MobSF 3.x writes the level as `severity` (high/warning/info/secure); earlier iOS reports as
            # `status` (insecure/warning/info/secure): both are read with the same table, where the
            # informational rows (secure: a setting that holds, info) are severity info
            level = a.get("severity") if a.get("severity") is not None else a.get("status")
            yield _f("report", "ats_analysis", title, level, rule_id=f"ats:{title}",
                     description=as_str(a.get("description")))
    yield from _binary(doc.get("binary_analysis"))
    yield from _rules("code_analysis", doc.get("code_analysis"))
    for section in ("android_api", "ios_api"):
        yield from _rules(section, doc.get(section))
    for fb in as_list(doc.get("firebase_urls")):
        if isinstance(fb, dict) and fb.get("open") is True:
            yield _f("report", "firebase", "Firebase database is publicly readable", "high", rule_id="firebase:open",
                     url=as_str(fb.get("url")))
    for secret in as_list(doc.get("secrets")):
        # keep the key name only: the value is the secret itself
        name = str(secret).split(":", 1)[0].strip().strip('"') if isinstance(secret, str) else None
        if name:
            yield _f("report", "secrets", f"Possible hardcoded secret: {name}", "hotspot", rule_id=f"secret:{name}")
    legacy = doc.get("findings")  # MobSF < 3 "findings": {title: {level, path}}
    if isinstance(legacy, dict):
        for title, body in legacy.items():
            if isinstance(body, dict):
                paths = _files(body.get("path"))
                yield _f("report", "findings", title, body.get("level"), rule_id=f"finding:{title}",
                         file_path=paths[0] if paths else None, extra={"files": paths})


def api_report(doc: Any, app: str | None) -> Iterator[ParsedFinding]:
    """The findings of one static report of ``/api/v1/report_json`` as this format reads it, each in ``app``
    (the package name), so the same rule of two apps stays two findings."""
    if not isinstance(doc, dict):
        raise ReportError(KEY, "a report is not a JSON object", "$")
    for finding in _report(doc):
        finding.repository = app
        yield finding


def _mobsfscan(doc: dict[str, Any]) -> Iterator[ParsedFinding]:
    results = doc.get("results")
    if not isinstance(results, dict):
        raise ReportError(KEY, "not mobsfscan output: 'results' must be an object", "$.results")
    for rule, body in results.items():
        if not isinstance(body, dict):
            continue
        md = as_dict(body.get("metadata"))
        files = [f for f in as_list(body.get("files")) if isinstance(f, dict)] or [{}]
        for f in files:
            lines = as_list(f.get("match_lines"))
            yield _f("mobsfscan", "mobsfscan", rule, md.get("severity"), rule_id=rule,
                     description=as_str(md.get("description")), cwe_ids=cwe_ids(as_str(md.get("cwe"))),
                     file_path=as_str(f.get("file_path")), line=to_int(lines[0]) if lines else None,
                     references=[r for r in as_list(md.get("reference"))
                                 if isinstance(r, str) and r.startswith("http")],
                     # not files[].match_string: the matched source line, which for the hard-coded
                     # secret rules is the secret itself; the file and line locate it
                     extra={"masvs": as_str(md.get("masvs")), "owasp_mobile": as_str(md.get("owasp-mobile"))})


def _issue_list(doc: list[Any]) -> Iterator[ParsedFinding]:
    for index, item in enumerate(doc):
        if not isinstance(item, dict):
            raise ReportError(KEY, "issue must be a JSON object", f"$[{index}]")
        lines = as_list(item.get("line_number"))
        line = to_int(lines[0]) if lines else None
        yield _f("list", as_str(item.get("category")) or "issue", as_str(item.get("name")) or "MobSF issue",
                 item.get("severity"),
                 description=as_str(item.get("description")), file_path=as_str(item.get("file_object")),
                 line=line if line else None)


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Findings from a MobSF report, mobsfscan output or issue list (loaded whole: small documents)."""
    doc = load_json(report.stream, KEY)
    if isinstance(doc, list):
        yield from _issue_list(doc)
    elif isinstance(doc, dict):
        if "results" in doc and ("mobsfscan_version" in doc or "errors" in doc):
            yield from _mobsfscan(doc)
        elif any(k in doc for k in ("permissions", "code_analysis", "manifest_analysis", "binary_analysis",
                                    "findings", "app_name")):
            yield from _report(doc)
        else:
            raise ReportError(KEY, "not a MobSF report: missing 'code_analysis'/'permissions' "
                                   "(or mobsfscan 'results')", "$")
    else:
        raise ReportError(KEY, f"not a MobSF report: top level is a {type(doc).__name__}", "$")


FORMAT = ReportFormat(
    key=KEY,
    title="MobSF JSON (static report, mobsfscan)",
    detect=detect,
    read=parse,
    syntax="json",
    what="a MobSF report",
    map_severity=map_severity,
)
