"""MobSF JSON: the static analysis report (``/api/v1/report_json``), mobsfscan output and the
list-shaped issue export (QARK style, ``[{"category", "severity", "name", "file_object"}]``).

A static report is one document of a few MB and is loaded whole (depth-guarded). MobSF lists
code and API findings per rule with the files they occur in; PMAP keeps one finding per rule
(MobSF's own presentation) with the files in ``extra``. mobsfscan reports per file and line.

Every release's field names are read (MobSF ``StaticAnalyzer/views``, ``*/db_interaction.py``):

- binary checks: ``binary_analysis`` as rows ``{"title", "stat", "desc", "file"}`` (Android, 1.x-3.1),
  ``{"issue", "status"|"level", "description", "cvss", "cwe"}`` (iOS; ``bin_anal`` in 1.x-2.x), per-binary
  hardening checks ``[{"name", "nx": {"is_nx", "severity", "description"}, "pie", "stack_canary",
  "relocation_readonly", "rpath", "runpath", "fortify", "symbol"}]`` (Android ELF, 3.2+), the iOS binary's
  rule findings ``{title: {"detailed_desc", "severity", "cvss", "cwe", "owasp-mobile", "masvs"}}`` (3.2+;
  under ``findings`` with a ``summary`` from 3.6); iOS ``macho_analysis`` (one Mach-O's checks, ``has_nx``...,
  3.2+), ``dylib_analysis`` and ``framework_analysis`` (lists of them, 3.8+). All are one ``binary_analysis``
  section: a check is ``binary:<check>`` on the binary's file, a rule ``binary:<title>``;
- code: ``code_analysis`` ``{rule: {"files", "metadata"}}`` (3.2+, under ``findings`` from 3.6) or
  ``{description: {"path", "level", "cvss", "cwe", "owasp"}}`` (3.0-3.1), ``findings``
  ``{title: {"level", "path"}}`` (1.x-2.x); ``android_api``/``ios_api`` entries without a level are API
  inventories, not findings;
- ``manifest_analysis`` (a list, ``manifest`` in 1.x-2.x, or ``manifest_findings`` from 3.9; level
  ``stat`` or ``severity``), ``network_security`` (a list in 3.4-3.8, ``network_findings`` from 3.9),
  ``certificate_analysis`` (``certificate_findings`` rows from 3.2, the single ``certificate_status``
  verdict of 3.0-3.1), ``ats_analysis`` (``severity`` or, before 3.x, ``status``), ``permissions``,
  open ``firebase_urls`` and ``secrets`` (names only). The ``appsec`` scorecard repeats these sections
  and is not read; ``niap_analysis`` (a compliance checklist) is not read.

Resource: every finding of a static report has the scanned app (:func:`app_of`: its package name, else
its file name) as ``asset``, the open Firebase database's included; mobsfscan output and the issue list
name no app (their findings share the stream's unnamed resource).

Secure rows (the decision): a row whose level says the check holds (``secure``; ``good`` and ``Secure``
in releases before 3.2) is not a finding, and neither is a binary hardening check that holds (MobSF rates
a protection in place ``info``, e.g. "The binary has NX bit set"): each is counted as ``secure check``
with :meth:`Report.skip` (the import summary's ``skipped`` and its warning), so a report holding only
checks that pass warns instead of importing them. ``info`` rows of every other section are observations
MobSF asks to review ("The App logs information") and are findings of severity info.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, SeverityResult, cvss_band
from pmap.findings.formats.convert import as_dict, as_list, as_str, compact, cvss_score, strip_html, to_int
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cwe_ids
from pmap.findings.formats.json_reader import load_json
from pmap.findings.formats.sniff import first_json_byte, head_text

KEY = "mobsf_json"

# MobSF report levels: high, warning (shown as medium in MobSF's scorecard), info, secure/good (skipped, see
# the module doc; kept in the table for rows read elsewhere), hotspot (needs manual review), insecure (iOS
# rows' `status` before 3.x, high), bad and missing (the certificate verdict of 3.0-3.1: a debug or SHA1
# certificate, no certificate: high); Android permission protection levels: dangerous, normal,
# signature(OrSystem). mobsfscan uses ERROR/WARNING/INFO like Semgrep (High/Medium/Low).
# List exports use INFO/WARNING/ERROR/VULNERABILITY.
REPORT_LEVELS = {
    "critical": Severity.CRITICAL, "high": Severity.HIGH, "warning": Severity.MEDIUM, "medium": Severity.MEDIUM,
    "bad": Severity.HIGH, "missing": Severity.HIGH,
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
    # iOS reports and MobSF 1.x-2.x (``packagename``, ``certinfo``, ``bin_anal``)
    '"ats_analysis"', '"macho_analysis"', '"binary_info"', '"packagename"', '"certinfo"', '"bin_anal"',
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


# levels of a check that holds (MobSF 3.x+ "secure", MobSF <= 3.1 "good"/"Secure"): skipped, see the module doc
SECURE_LEVELS = frozenset({"secure", "good"})
SECURE_CHECK = "secure check"
# a row is either a finding or the name of what report.skip counts it as
Row = ParsedFinding | str


def _row(finding: ParsedFinding) -> Row:
    """The finding, or ``secure check`` when its level says the check holds."""
    level = (finding.vendor_severity or "").strip().lower()
    return SECURE_CHECK if level in SECURE_LEVELS else finding


def _title(value: Any) -> str | None:
    return " ".join((strip_html(str(value).replace("<br>", " ")) or "").split()) or None


def _files(value: Any) -> list[str]:
    if isinstance(value, dict):
        return list(value)[:_FILES_KEPT]
    if isinstance(value, str):  # MobSF <= 3.1 binary rows: the files joined by spaces
        return value.split()[:_FILES_KEPT]
    return [str(v) for v in as_list(value)][:_FILES_KEPT]


def _rules(section: str, rules: Any) -> Iterator[Row]:
    """code_analysis / android_api / ios_api: ``{rule: {files, metadata}}`` (3.2+; under ``findings`` with a
    ``summary`` from 3.6), or ``{description: {path, level, cvss, cwe, owasp}}`` (3.0-3.1). Entries with no
    level (the API listings of 3.0-3.1: ``{description: {path}}``) are inventories, not findings."""
    section_rules = as_dict(rules)
    if isinstance(section_rules.get("findings"), dict):
        section_rules = section_rules["findings"]
    for rule, body in section_rules.items():
        if not isinstance(body, dict):
            continue
        if isinstance(body.get("metadata"), dict):
            md, files = body["metadata"], body.get("files")
            level = md.get("severity")
        elif body.get("level") is not None:  # MobSF 3.0-3.1: the rule's description is its key
            md, files = {**body, "description": rule, "owasp-mobile": body.get("owasp")}, body.get("path")
            level = body.get("level")
        else:
            continue
        yield _row(_f("report", section, as_str(md.get("description")) or rule, level,
                      rule_id=f"{section}:{rule}", description=as_str(md.get("description")),
                      cwe_ids=cwe_ids(as_str(md.get("cwe"))), cvss_score=cvss_score(md.get("cvss")),
                      references=[r for r in as_list(md.get("ref")) if isinstance(r, str) and r.startswith("http")],
                      extra={"files": _files(files), "masvs": as_str(md.get("masvs")),
                             "owasp_mobile": as_str(md.get("owasp-mobile"))}))


def _permissions(perms: Any) -> Iterator[ParsedFinding]:
    items = perms.items() if isinstance(perms, dict) else (
        (as_str(p.get("name")), p) for p in as_list(perms) if isinstance(p, dict))
    for name, details in items:
        if not name or not isinstance(details, dict):
            continue
        yield _f("report", "permissions", name, details.get("status"), rule_id=f"permission:{name}",
                 description=as_str(details.get("description")) or as_str(details.get("info")))


def _checksec(section: str, lib: dict[str, Any]) -> Iterator[Row]:
    """One binary's hardening checks (MobSF 3.2+: an ELF shared object of ``binary_analysis``, the Mach-O of
    ``macho_analysis``, an entry of ``dylib_analysis``/``framework_analysis``): ``{"name", "<check>":
    {"is_nx"/"has_canary"/..., "severity", "description"}}``. MobSF rates a protection that is in place
    ``info`` (``secure`` in some releases): such a check holds and is skipped."""
    name = as_str(lib.get("name"))
    for check, body in lib.items():
        if check == "name" or not isinstance(body, dict) or "severity" not in body:
            continue
        level = (as_str(body.get("severity")) or "").strip().lower()
        if level == "info" or level in SECURE_LEVELS:
            yield SECURE_CHECK
            continue
        desc = as_str(body.get("description")) or check
        yield _f("report", section, desc.split(". ")[0].rstrip("."), body.get("severity"),
                 rule_id=f"binary:{check}", description=desc, file_path=name)


def _binary_row(section: str, row: dict[str, Any]) -> Row | None:
    """A row of the issue lists of MobSF <= 3.1: Android ``{"title", "stat", "desc", "file"}``, iOS
    ``{"issue", "level"|"status", "description", "cvss", "cwe", "owasp"}`` (``bin_anal`` in 1.x-2.x)."""
    title = (_title(row["title"]) if row.get("title") else None) or as_str(row.get("issue"))
    if not title:
        return None
    level = next((row[k] for k in ("stat", "level", "status", "severity") if row.get(k) is not None), None)
    files = _files(row.get("file"))
    return _row(_f("report", section, title, level, rule_id=f"binary:{title}",
                   description=as_str(row.get("desc")) or as_str(row.get("description")),
                   cwe_ids=cwe_ids(as_str(row.get("cwe"))), cvss_score=cvss_score(row.get("cvss")),
                   file_path=files[0] if files else None, extra={"files": files}))


def _binary(section: str, value: Any) -> Iterator[Row]:
    """``binary_analysis`` (and iOS ``macho_analysis``, ``dylib_analysis``, ``framework_analysis``,
    ``bin_anal``) in every release's shape: a list of per-binary hardening checks (3.2+), a single one
    (``macho_analysis``), the rule findings of an iOS binary (3.2+: ``{title: {"detailed_desc",
    "severity", "cvss", "cwe", "owasp-mobile", "masvs"}}``, under ``findings`` with a ``summary`` from
    3.6), or the issue rows of 3.1 and earlier."""
    if isinstance(value, list):
        for entry in value:
            if not isinstance(entry, dict):
                continue
            if any(isinstance(v, dict) and "severity" in v for v in entry.values()):
                yield from _checksec(section, entry)
            elif (row := _binary_row(section, entry)) is not None:
                yield row
    elif isinstance(value, dict):
        if any(isinstance(v, dict) and "severity" in v and "detailed_desc" not in v for v in value.values()) \
                and "findings" not in value:
            yield from _checksec(section, value)  # macho_analysis: one binary's checks
            return
        findings = as_dict(value.get("findings")) if "findings" in value else value
        for title, body in findings.items():
            if isinstance(body, dict) and "severity" in body:
                yield _row(_f("report", section, title, body.get("severity"), rule_id=f"binary:{title}",
                              description=as_str(body.get("detailed_desc")), cwe_ids=cwe_ids(as_str(body.get("cwe"))),
                              cvss_score=cvss_score(body.get("cvss")),
                              extra={"masvs": as_str(body.get("masvs")),
                                     "owasp_mobile": as_str(body.get("owasp-mobile"))}))


def _certificate(cert: Any) -> Iterator[Row]:
    """``certificate_analysis``: ``certificate_findings`` rows ``[level, description, title]`` (``[level,
    description]`` in 3.2-3.x), or the single verdict of 3.0-3.1 (``certificate_status`` good/bad/missing/
    warning with its ``description``). The ``certificate_info`` text of every release is not a finding."""
    if not isinstance(cert, dict):
        return
    for item in as_list(cert.get("certificate_findings")):
        if isinstance(item, list) and len(item) >= 2:
            title = str(item[2] if len(item) >= 3 else item[1])
            yield _row(_f("report", "certificate_analysis", title, item[0], rule_id=f"certificate:{title}",
                          description=str(item[1])))
    status = as_str(cert.get("certificate_status"))
    if status and "certificate_findings" not in cert:
        desc = as_str(cert.get("description")) or "certificate"
        title = desc.split(". ")[0].rstrip(".")
        yield _row(_f("report", "certificate_analysis", title, status, rule_id=f"certificate:{title}",
                      description=desc))


def _manifest(rows: Any) -> Iterator[Row]:
    """``manifest_analysis``: a list (3.x; ``manifest`` in 1.x-2.x) or ``{"manifest_findings": [...],
    "manifest_summary"}`` (3.9+); each row's level is ``severity`` (3.9+) or ``stat`` (earlier)."""
    entries = rows.get("manifest_findings") if isinstance(rows, dict) else rows
    for m in as_list(entries):
        if isinstance(m, dict):
            title = _title(m.get("title")) or as_str(m.get("name")) or "manifest issue"
            # one manifest rule fires once per component and the title names it; the rule id
            # alone would merge the components, so the title identifies the finding
            level = m.get("severity") if m.get("severity") is not None else m.get("stat")
            yield _row(_f("report", "manifest_analysis", title, level,
                          description=as_str(m.get("description") or m.get("desc")),
                          extra={"rule": as_str(m.get("rule")),
                                 "component": [str(c) for c in as_list(m.get("component"))][:_FILES_KEPT]}))


def _report(doc: dict[str, Any]) -> Iterator[Row]:
    yield from _permissions(doc.get("permissions"))
    yield from _certificate(doc.get("certificate_analysis"))
    manifest = doc.get("manifest_analysis")
    if manifest is None and isinstance(doc.get("manifest"), list):  # MobSF 1.x-2.x
        manifest = doc.get("manifest")
    yield from _manifest(manifest)
    network = doc.get("network_security")  # a list (3.4-3.8), {"network_findings", "network_summary"} (3.9+)
    for n in as_list(network.get("network_findings") if isinstance(network, dict) else network):
        if isinstance(n, dict):
            desc = as_str(n.get("description")) or "network security issue"
            yield _row(_f("report", "network_security", desc.rstrip("."), n.get("severity"), rule_id=f"network:{desc}",
                          extra={"scope": [str(s) for s in as_list(n.get("scope"))][:_FILES_KEPT]}))
    ats = doc.get("ats_analysis")
    for a in as_list(ats.get("ats_findings") if isinstance(ats, dict) else ats):
        if isinstance(a, dict):
            title = as_str(a.get("issue")) or "ATS issue"
            # MobSF 3.x writes the level as `severity` (high/warning/info/secure); earlier iOS reports as
            # `status` (insecure/warning/info/secure): both are read with the same table
            level = a.get("severity") if a.get("severity") is not None else a.get("status")
            yield _row(_f("report", "ats_analysis", title, level, rule_id=f"ats:{title}",
                          description=as_str(a.get("description"))))
    for section in ("binary_analysis", "bin_anal", "macho_analysis", "dylib_analysis", "framework_analysis"):
        # every binary section is one section of findings: the same check keeps its identity across releases
        yield from _binary("binary_analysis", doc.get(section))
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
                yield _row(_f("report", "findings", title, body.get("level"), rule_id=f"finding:{title}",
                              file_path=paths[0] if paths else None, extra={"files": paths}))


def _findings(rows: Iterator[Row], skipped: Counter[str] | None) -> Iterator[ParsedFinding]:
    for row in rows:
        if isinstance(row, str):
            if skipped is not None:
                skipped[row] += 1
        else:
            yield row


def api_report(doc: Any, app: str | None, skipped: Counter[str] | None = None) -> Iterator[ParsedFinding]:
    """The findings of one static report of ``/api/v1/report_json`` as this format reads it, each in ``app``
    (the package name), so the same rule of two apps stays two findings; rows left out by design are
    counted into ``skipped`` when given."""
    if not isinstance(doc, dict):
        raise ReportError(KEY, "a report is not a JSON object", "$")
    for finding in _findings(_report(doc), skipped):
        finding.repository = app
        yield finding


def app_of(doc: dict[str, Any]) -> str | None:
    """The scanned app of a static report: its package name (Android ``package_name``, ``packagename``
    before 3.x; iOS ``bundle_id``), else the uploaded file's name."""
    for key in ("package_name", "packagename", "bundle_id", "file_name"):
        if value := as_str(doc.get(key)):
            return value
    return None


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


# the keys of an issue of the list export; a list whose issues have none of them is another tool's
_ISSUE_KEYS = ("file_object", "apk_exploit_dict", "category", "name", "severity")


def _issue_list(doc: list[Any]) -> Iterator[ParsedFinding]:
    for index, item in enumerate(doc):
        if not isinstance(item, dict):
            raise ReportError(KEY, "issue must be a JSON object", f"$[{index}]")
        if not any(k in item for k in _ISSUE_KEYS):  # another tool's list (gitleaks' findings, ...)
            raise ReportError(KEY, "not a MobSF report: an issue has none of "
                                   f"{', '.join(repr(k) for k in _ISSUE_KEYS)}", f"$[{index}]")
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
                                    "app_name", "bin_anal", "packagename")) or isinstance(doc.get("findings"), dict):
            # (a "findings" list is another tool's: Dependency-Track's FPF, ...; MobSF < 3 wrote an object)
            app = app_of(doc)
            for finding in _findings(_report(doc), report.skipped):
                finding.asset = app  # the open Firebase database's too: the app is what was scanned
                yield finding
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
