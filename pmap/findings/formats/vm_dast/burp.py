"""Burp Suite issue export (XML, ``<issues burpVersion=...>``), Professional and DAST/Enterprise, and the issues
of Burp Suite DAST's GraphQL API (``scan(id) { issues }``, :func:`api_issue`), which a sync reads as this format."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_str, clean, compact, evidence, split_url, strip_html, urls_in
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cwe_ids
from pmap.findings.formats.sniff import head_text, xml_root
from pmap.findings.formats.xml_reader import child, clear_element, iter_xml, text_of

KEY = "burp_xml"

# Burp issue severity: High, Medium, Low, Information ("False positive" is a triage state);
# confidence (Certain/Firm/Tentative) is kept in extra, it does not change severity.
SEVERITY_TABLE = {
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "information": Severity.INFO,
    "info": Severity.INFO,
}
# "[name cookie]", "[q parameter]", "[X-Forwarded-For HTTP header]", "[id JSON parameter]" ...
_INSERTION = re.compile(
    r"\[(?P<name>.+?)\s+(?:(?:URL|body|JSON|XML|multipart|REST|cookie)\s+)?"
    r"(?:parameter(?:\s+name)?|cookie|HTTP header|header)\]\s*$",
    re.IGNORECASE,
)
# Burp's documented "Extension generated issue" type (0x08000000): every issue an extension (BApp) raises
# carries it, so the type tells nothing apart; the issue's name is what names the problem
GENERIC_TYPES = frozenset({"134217728", "0x08000000", "08000000"})


def identity(type_index: str | None, name: str | None) -> list[str]:
    """The identity parts of an issue (see docs/finding-identity.md): its name when its type is generic, since
    different extension issues on one URL and parameter share type 134217728; none otherwise, so the fingerprints
    of Burp's own issue types stay what earlier releases stored."""
    if type_index is not None and type_index.strip().lower() in GENERIC_TYPES and name:
        return [name.strip()]
    return []


def detect(head: bytes, filename: str | None) -> bool:
    """An ``<issues>`` root carrying Burp's ``burpVersion`` attribute."""
    text = head_text(head)
    root = xml_root(text)
    return root is not None and root[0] == "issues" and ("burpVersion" in root[1] or "<serialNumber>" in text)


def _issue(issue: Any) -> ParsedFinding:
    host_el = child(issue, "host")
    base = text_of(host_el) or ""
    path = text_of(child(issue, "path")) or ""
    url = (base.rstrip("/") + path) if base else (path or None)
    host, port, _scheme = split_url(base)
    location = text_of(child(issue, "location")) or ""
    m = _INSERTION.search(location)
    background = strip_html(text_of(child(issue, "issueBackground")))
    detail = strip_html(text_of(child(issue, "issueDetail")))
    classifications = text_of(child(issue, "vulnerabilityClassifications"))
    remediation = [strip_html(text_of(child(issue, "remediationDetail"))),
                   strip_html(text_of(child(issue, "remediationBackground")))]
    name = text_of(child(issue, "name"))
    type_index = text_of(child(issue, "type"))
    return ParsedFinding(
        title=name or "Burp issue",
        vendor_severity=text_of(child(issue, "severity")),
        description="\n\n".join(p for p in (detail, background) if p) or None,
        cwe_ids=cwe_ids(re.findall(r"CWE-\d+", classifications or "")),
        rule_id=type_index,
        identity=identity(type_index, name),
        host=host,
        ip=clean(host_el.get("ip")) if host_el is not None else None,
        port=port,
        url=url,
        parameter=m.group("name").strip() if m else None,
        remediation="\n\n".join(p for p in remediation if p) or None,
        references=urls_in(text_of(child(issue, "references")), classifications),
        status="false_positive" if (text_of(child(issue, "severity")) or "").lower() == "false positive" else None,
        extra=compact({
            "confidence": text_of(child(issue, "confidence")),
            "serial_number": text_of(child(issue, "serialNumber")),
            "location": location or None,
            "detail": evidence(detail),
        }),
    )


def api_issue(issue: Any) -> ParsedFinding:
    """One issue of the GraphQL API's ``scan(id) { issues { ... } }`` as the XML export's issue reads: the issue
    type's index is the rule, ``origin`` + ``path`` the URL, the issue's own HTML before the type's."""
    if not isinstance(issue, dict):
        raise ReportError(KEY, "an issue is not a JSON object", "scan.issues[]")
    kind = as_dict(issue.get("issue_type"))
    name = as_str(kind.get("name"))
    if not name:
        raise ReportError(KEY, "an issue has no issue_type.name", "scan.issues[]")
    origin = as_str(issue.get("origin")) or ""
    path = as_str(issue.get("path")) or ""
    host, port, _scheme = split_url(origin)
    detail = strip_html(as_str(issue.get("description_html")))
    background = strip_html(as_str(kind.get("description_html")))
    classifications = as_str(kind.get("vulnerability_classifications_html"))
    remediation = [strip_html(as_str(issue.get("remediation_html"))), strip_html(as_str(kind.get("remediation_html")))]
    severity = as_str(issue.get("severity"))
    return ParsedFinding(
        title=name,
        vendor_severity=severity,
        description="\n\n".join(p for p in (detail, background) if p) or None,
        cwe_ids=cwe_ids(re.findall(r"CWE-\d+", classifications or "")),
        rule_id=as_str(kind.get("type_index")),
        identity=identity(as_str(kind.get("type_index")), name),
        host=host,
        port=port,
        url=(origin.rstrip("/") + path) if origin else (path or None),
        remediation="\n\n".join(p for p in remediation if p) or None,
        references=urls_in(as_str(kind.get("references_html")), classifications),
        status="false_positive" if (severity or "").lower().replace(" ", "_") == "false_positive" else None,
        extra=compact({
            "confidence": as_str(issue.get("confidence")),
            "serial_number": as_str(issue.get("serial_number")),
            "novelty": as_str(issue.get("novelty")),
            "detail": evidence(detail),
        }),
    )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from a Burp XML export, one per issue."""
    for _tag, elem in iter_xml(report.stream, KEY, ("issue",)):
        yield _issue(elem)
        clear_element(elem)


FORMAT = ReportFormat(
    key=KEY,
    title="Burp Suite XML issue export",
    detect=detect,
    read=parse,
    syntax="xml",
    xml_roots=("issues",),
    what="a Burp Suite XML export",
    map_severity=map_by_table(SEVERITY_TABLE),
)
