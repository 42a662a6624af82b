"""Burp Suite issue export (XML, ``<issues burpVersion=...>``), Professional and DAST/Enterprise."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats.base import (
    ParsedFinding,
    ReportFormat,
    Severity,
    clear_element,
    map_by_table,
)
from pmap.findings.formats.vm_dast._io import (
    child,
    expect_xml_root,
    head_text,
    iter_report_xml,
    text_of,
    xml_root,
)
from pmap.findings.formats.vm_dast._util import (
    clean,
    compact,
    cwes_in,
    evidence,
    split_url,
    strip_html,
    urls_in,
)

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
    return ParsedFinding(
        title=text_of(child(issue, "name")) or "Burp issue",
        vendor_severity=text_of(child(issue, "severity")),
        description="\n\n".join(p for p in (detail, background) if p) or None,
        cwe_ids=cwes_in(re.findall(r"CWE-\d+", classifications or "")),
        rule_id=text_of(child(issue, "type")),
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


def parse(stream: IO[bytes]) -> Iterator[ParsedFinding]:
    """Stream findings from a Burp XML export, one per issue."""
    stream = expect_xml_root(stream, KEY, ("issues",), "a Burp Suite XML export")
    for _tag, elem in iter_report_xml(stream, KEY, ("issue",)):
        yield _issue(elem)
        clear_element(elem)


FORMAT = ReportFormat(
    key=KEY,
    title="Burp Suite XML issue export",
    detect=detect,
    parse=parse,
    map_severity=map_by_table(SEVERITY_TABLE),
)
