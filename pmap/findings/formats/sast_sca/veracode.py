"""Veracode: the detailed XML report (``detailedreport``: static and dynamic flaws, SCA components)
and the REST findings JSON (``/appsec/v2/applications/{guid}/findings``: ``_embedded.findings`` or
``findings``; STATIC, DYNAMIC, MANUAL and SCA findings).

The XML report's application (``app_name``) is the ``asset`` of its static flaws and vulnerable
components (what a full import covers); a dynamic flaw's resource is its URL's origin.

Severity (Veracode's 0-5 scale, same in XML and JSON): 5 Very High -> critical, 4 High -> high,
3 Medium -> medium, 2 Low -> low, 1 Very Low -> low, 0 Informational -> info.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, parse_dt, text, to_float, to_int
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cve_ids, cvss_version, cwe_ids
from pmap.findings.formats.sniff import json_head, xml_head
from pmap.findings.formats.xml_reader import clear_element, iter_xml

KEY_XML = "veracode_xml"
KEY_JSON = "veracode_json"
SEVERITIES = {
    "5": Severity.CRITICAL,
    "4": Severity.HIGH,
    "3": Severity.MEDIUM,
    "2": Severity.LOW,
    "1": Severity.LOW,
    "0": Severity.INFO,
}
_NS = "veracode.com/schema/reports/export"


def _vc_date(value: Any) -> datetime | None:
    """Veracode XML dates look like "2020-06-01 10:02:01 UTC"."""
    if isinstance(value, str) and value.endswith(" UTC"):
        value = value[:-4] + "+00:00"
    return parse_dt(value)


def _host_port(url: str | None) -> tuple[str | None, int | None, str | None]:
    if not url:
        return None, None, None
    try:
        parts = urlsplit(url)
        return parts.hostname, parts.port, parts.scheme or None
    except ValueError:
        return None, None, None


def _xml_flaw(flaw: Any) -> ParsedFinding:
    a = flaw.attrib
    title = text(a.get("categoryname")) or text(a.get("type"))
    if not title:
        raise ReportError(KEY_XML, "a flaw has no categoryname", f"line {flaw.sourceline}")
    url = text(a.get("url"))
    host, port, scheme = _host_port(url)
    directory, name = a.get("sourcefilepath") or "", a.get("sourcefile") or ""
    # Veracode splits the path: sourcefilepath is the directory, sourcefile the name
    file_path = (directory + name) or None if not url else None
    status = None
    if (a.get("remediation_status") or "").lower() == "fixed":
        status = "fixed"
    elif (a.get("mitigation_status") or "").lower() == "accepted":
        status = "mitigated"
    return ParsedFinding(
        title=title,
        vendor_severity=text(a.get("severity")),
        description=text(a.get("description")),
        cwe_ids=cwe_ids(a.get("cweid")),
        rule_id=text(a.get("categoryid")),
        host=host,
        port=port,
        protocol=scheme,
        url=url,
        parameter=text(a.get("vuln_parameter")),
        file_path=file_path,
        line=to_int(a.get("line")) if not url else None,
        first_seen=_vc_date(a.get("date_first_occurrence")),
        status=status,
        extra={k: v for k, v in (("issue_id", text(a.get("issueid"))), ("module", text(a.get("module"))),
                                 ("kind", "dynamic" if url else "static")) if v},
    )


def _xml_component(comp: Any) -> Iterator[ParsedFinding]:
    a = comp.attrib
    library = text(a.get("library")) or text(a.get("file_name"))
    version = text(a.get("version"))
    paths = [text(p.get("value")) for p in comp.iter() if isinstance(p.tag, str) and p.tag.endswith("file_path")]
    for vuln in comp.iter():
        if not (isinstance(vuln.tag, str) and vuln.tag.rsplit("}", 1)[-1] == "vulnerability"):
            continue
        v = vuln.attrib
        cve = text(v.get("cve_id"))
        if not cve:
            raise ReportError(KEY_XML, "a component vulnerability has no cve_id", f"line {vuln.sourceline}")
        mitigated = (v.get("mitigation") or "").lower() == "true"
        yield ParsedFinding(
            title=f"{cve} in {library} {version}" if version else f"{cve} in {library}",
            vendor_severity=text(v.get("severity")),
            description=text(v.get("cve_summary")),
            cve_ids=cve_ids(cve),
            cwe_ids=cwe_ids(v.get("cwe_id")),
            other_ids=[cve] if not cve_ids(cve) else [],
            rule_id=cve,
            cvss_score=to_float(v.get("cvss_score")),
            file_path=next((p for p in paths if p), None),
            package_name=library,
            package_version=version,
            first_seen=_vc_date(v.get("first_found_date")),
            status="mitigated" if mitigated else None,
            extra={k: val for k, val in (("component_id", text(a.get("component_id"))),
                                         ("mitigated_at", text(v.get("mitigated_date")))) if val},
        )


def parse_xml(report: Report) -> Iterator[ParsedFinding]:
    """Stream the flaws and vulnerable components of a Veracode detailed XML report."""
    checked = False
    app: str | None = None
    for tag, elem in iter_xml(report.stream, KEY_XML, ("flaw", "component", "detailedreport")):
        if not checked:
            root = elem.getroottree().getroot()
            if root.tag.rsplit("}", 1)[-1] != "detailedreport":
                raise not_a(KEY_XML, "a Veracode detailed XML report", "the root element is not detailedreport",
                            "line 1")
            app = text(root.get("app_name"))
            checked = True
        if tag == "flaw":
            flaw = _xml_flaw(elem)
            if flaw.url is None:  # a static flaw; a dynamic one's resource is its URL's origin
                flaw.asset = app
            yield flaw
            clear_element(elem)
        elif tag == "component":
            for finding in _xml_component(elem):
                finding.asset = app
                yield finding
            clear_element(elem)
    if not checked:
        raise not_a(KEY_XML, "a Veracode detailed XML report", "no detailedreport element", "line 1")


# --- REST findings JSON ---------------------------------------------------------------------------

_JSON_RESOLUTION = {"mitigated": "mitigated", "potential_false_positive": "false_positive"}


def _component_name(filename: str | None, version: str | None) -> str | None:
    """"guava-30.0-jre.jar" with version "30.0-jre" -> "guava.jar" (the version is its own field)."""
    if filename and version:
        return re.sub(r"-" + re.escape(version) + r"(?=\.[A-Za-z]+$|$)", "", filename)
    return filename


def _json_finding(f: Any, application: str | None = None) -> ParsedFinding:
    if not isinstance(f, dict):
        raise ReportError(KEY_JSON, "a finding is not a JSON object", "findings[]")
    d = as_dict(f.get("finding_details"))
    st = as_dict(f.get("finding_status"))
    scan = (text(f.get("scan_type")) or "").upper()
    cwe = as_dict(d.get("cwe"))
    category = text(as_dict(d.get("finding_category")).get("name"))
    status = None
    if (text(st.get("status")) or "").upper() == "CLOSED":
        status = "fixed"
    if (text(st.get("resolution_status")) or "").upper() == "APPROVED":
        status = _JSON_RESOLUTION.get((text(st.get("resolution")) or "").lower(), status)
    common: dict[str, Any] = dict(
        vendor_severity=text(d.get("severity")),
        description=text(f.get("description")),
        cwe_ids=cwe_ids(cwe.get("id")),
        first_seen=parse_dt(st.get("first_found_date")),
        last_seen=parse_dt(st.get("last_seen_date")),
        status=status,
        repository=application,
    )
    extra = {k: v for k, v in (("issue_id", text(f.get("issue_id"))), ("scan_type", scan),
                               ("policy_violation", f.get("violates_policy") is True or None)) if v}
    if scan == "SCA":
        cve = as_dict(d.get("cve"))
        cvss3 = as_dict(cve.get("cvss3"))
        vid = text(cve.get("name"))
        version = text(d.get("version"))
        name = _component_name(text(d.get("component_filename")), version)
        vector3 = text(cvss3.get("vector"))
        if vector3 and not vector3.startswith("CVSS:"):
            vector3 = "CVSS:3.1/" + vector3  # Veracode drops the prefix of its (3.1) vectors
        if not vid:
            raise ReportError(KEY_JSON, "an SCA finding has no cve.name", "findings[].finding_details.cve")
        paths = [text(as_dict(p).get("path")) for p in as_list(d.get("component_path"))]
        return ParsedFinding(
            title=f"{vid} in {name} {version}" if version else f"{vid} in {name}",
            cve_ids=cve_ids(vid),
            other_ids=[] if cve_ids(vid) else [vid],
            rule_id=vid,
            cvss_version=cvss_version(vector3) if vector3 else None,
            cvss_vector=vector3,
            cvss_score=to_float(cvss3.get("score")) if cvss3 else to_float(cve.get("cvss")),
            file_path=next((p for p in paths if p), None),
            package_name=name,
            package_version=version,
            references=[u for u in (text(cve.get("href")),) if u],
            extra=extra,
            **common,
        )
    title = category or text(cwe.get("name")) or text(d.get("plugin"))
    if not title:
        raise ReportError(KEY_JSON, "a finding has no category, CWE or plugin name", "findings[]")
    if scan == "DYNAMIC" or d.get("url") or d.get("hostname"):
        url = text(d.get("url"))
        host, port, scheme = _host_port(url)
        return ParsedFinding(
            title=title,
            rule_id=text(as_dict(d.get("finding_category")).get("id")),
            host=host or text(d.get("hostname")),
            port=port or to_int(d.get("port")),
            protocol=scheme,
            url=url,
            parameter=text(d.get("vulnerable_parameter")),
            extra=extra,
            **common,
        )
    return ParsedFinding(
        title=title,
        rule_id=text(as_dict(d.get("finding_category")).get("id")),
        file_path=text(d.get("file_path")),
        line=to_int(d.get("file_line_number")),
        extra={**extra, **{k: v for k, v in (("module", text(d.get("module"))),
                                              ("procedure", text(d.get("procedure")))) if v}},
        **common,
    )


def api_finding(finding: Any, application: str | None) -> ParsedFinding:
    """One finding of the Findings API (``_embedded.findings[]``) as this format reads it, in ``application``
    (its profile name, so the same issue id of two applications stays two findings)."""
    return _json_finding(finding, application)


def parse_json(report: Report) -> Iterator[ParsedFinding]:
    """Stream the findings of a Veracode REST findings page (embedded or plain list)."""
    src, head = report.stream, report.json
    prefix = "_embedded.findings.item" if "_embedded" in head.paths else "findings.item"
    for f in json_reader.items_required(src, prefix, KEY_JSON, "a Veracode findings JSON"):
        yield _json_finding(f)


def detect_xml(head: bytes, filename: str | None) -> bool:
    """Root ``detailedreport`` in Veracode's export namespace."""
    info = xml_head(head)
    return info is not None and info.name == "detailedreport" and (
        _NS in info.namespace.replace("&#x2f;", "/").replace("&#x3a;", ":") or "veracode" in info.text[:4096].lower()
    )


def detect_json(head: bytes, filename: str | None) -> bool:
    """Findings with Veracode's ``finding_details`` + ``finding_status`` (or ``scan_type``)."""
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    for base in ("_embedded.findings.item", "findings.item"):
        if info.has(f"{base}.finding_details") and info.any(f"{base}.finding_status", f"{base}.scan_type"):
            return True
    return False


XML_FORMAT = ReportFormat(
    key=KEY_XML,
    title="Veracode detailed XML report",
    detect=detect_xml,
    read=parse_xml,
    syntax="xml",
    xml_roots=("detailedreport",),
    what="a Veracode detailed XML report",
    map_severity=map_by_table(SEVERITIES),
)
JSON_FORMAT = ReportFormat(
    key=KEY_JSON,
    title="Veracode findings JSON (REST API)",
    detect=detect_json,
    read=parse_json,
    syntax="json",
    json_root="object",
    what="a Veracode findings JSON",
    map_severity=map_by_table(SEVERITIES),
)
