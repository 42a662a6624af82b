"""Tenable Nessus ``.nessus`` v2 XML (``NessusClientData_v2``), also Tenable WAS and Security Center exports.

The hot path of report import: files reach hundreds of MB with long ``plugin_output``. The file
is streamed with end events; ``HostProperties`` is read once per host (it precedes the host's
``ReportItem`` elements), each ``ReportItem`` becomes one finding and is freed immediately.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from pmap.findings.formats.base import (
    ParsedFinding,
    ReportFormat,
    Severity,
    clear_element,
    map_by_table,
)
from pmap.findings.formats.vm_dast._io import (
    expect_xml_root,
    head_text,
    iter_report_xml,
    local,
    xml_root,
)
from pmap.findings.formats.vm_dast._util import (
    clean,
    compact,
    cves_in,
    cvss_score,
    cvss_version_of,
    cwes_in,
    dedupe,
    epoch_dt,
    evidence,
    parse_dt,
    port_of,
    probability,
    split_url,
)

KEY = "nessus"

# Nessus ReportItem@severity is 0-4 (Info, Low, Medium, High, Critical); the same scale appears
# as risk_factor None/Low/Medium/High/Critical. Both spellings map; CVSS bands are the fallback.
SEVERITY_TABLE = {
    "0": Severity.INFO,
    "1": Severity.LOW,
    "2": Severity.MEDIUM,
    "3": Severity.HIGH,
    "4": Severity.CRITICAL,
    "none": Severity.INFO,
    "info": Severity.INFO,
    "informational": Severity.INFO,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}

# advisory cross-references worth keeping as ids (xref "TYPE:value"); OSVDB/WASC/OWASP are noise
_XREF_IDS = {"IAVA", "IAVB", "IAVT", "MSFT", "MSKB", "RHSA", "USN", "DSA", "GLSA", "CISA-KNOWN-EXPLOITED", "CERT"}
_IP_RE = re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$|^[0-9a-fA-F:]+:[0-9a-fA-F:.]*$")
_HOST_DATE_FORMATS = ("%a %b %d %H:%M:%S %Y",)


def detect(head: bytes, filename: str | None) -> bool:
    """A ``NessusClientData_v2`` root element."""
    root = xml_root(head_text(head))
    return root is not None and root[0] == "NessusClientData_v2"


def _host_info(props: Any, name: str) -> dict[str, Any]:
    tags: dict[str, str] = {}
    if props is not None:
        for tag in props:
            n = tag.get("name")
            if n in ("host-ip", "host-fqdn", "host-rdns", "netbios-name", "HOST_END", "HOST_END_TIMESTAMP", "HOST_START", "operating-system") and tag.text:
                tags[n] = tag.text.strip()
    info: dict[str, Any] = {"name": name}
    if "://" in name:  # Tenable WAS: the "host" is the scanned application's URL
        host, port, scheme = split_url(name)
        info.update(url=name, host=host, ip=tags.get("host-ip"), scheme=scheme, url_port=port)
    else:
        fqdn = tags.get("host-fqdn") or tags.get("host-rdns")
        if fqdn and "://" in fqdn:
            fqdn = split_url(fqdn)[0]
        ip = tags.get("host-ip") or (name if _IP_RE.match(name) else None)
        info.update(host=fqdn or (None if name == ip else name) or ip, ip=ip)
    seen: datetime | None = epoch_dt(tags.get("HOST_END_TIMESTAMP")) or parse_dt(tags.get("HOST_END"), *_HOST_DATE_FORMATS)
    info["seen"] = seen
    info["os"] = tags.get("operating-system")
    return info


def _finding(item: Any, host: dict[str, Any]) -> ParsedFinding:
    a = item.attrib
    fields: dict[str, list[str]] = {}
    for c in item:
        text = c.text
        if text is None:
            continue
        tag = c.tag
        if tag[0] == "{":  # compliance items use the cm: namespace
            tag = local(tag)
        if tag in fields:
            fields[tag].append(text)
        else:
            fields[tag] = [text]

    def one(name: str) -> str | None:
        vals = fields.get(name)
        return clean(vals[0]) if vals else None

    title = clean(a.get("pluginName")) or one("plugin_name") or f"Nessus plugin {a.get('pluginID', '?')}"
    xrefs = [x.strip() for x in fields.get("xref", [])]
    other_ids = dedupe(x for x in xrefs if x.split(":", 1)[0].upper() in _XREF_IDS)

    score, vector = None, None
    for score_tag, vector_tag in (("cvss3_base_score", "cvss3_vector"), ("cvssv3", "cvss3_vector"),
                                  ("cvss4_base_score", "cvss4_vector"), ("cvss_base_score", "cvss_vector"),
                                  ("cvss", "cvss_vector")):
        score = cvss_score(one(score_tag))
        if score is not None:
            vector = one(vector_tag)
            break
    version = None
    if vector:
        vector = vector.removeprefix("CVSS2#")
        version = cvss_version_of(vector) or ("3.0" if "/S:" in vector else "2.0")
    elif score is not None:
        version = "2.0" if score_tag in ("cvss_base_score", "cvss") else ("4.0" if "4" in score_tag else "3.0")

    port = port_of(a.get("port"))
    url = host.get("url")
    refs = dedupe(r for sa in fields.get("see_also", []) for r in sa.split())
    description = one("description")
    synopsis = one("synopsis")
    if synopsis and description and synopsis not in description:
        description = f"{synopsis}\n\n{description}"
    solution = one("solution")
    return ParsedFinding(
        title=title,
        vendor_severity=clean(a.get("severity")) or one("risk_factor"),
        description=description or synopsis,
        cve_ids=cves_in(fields.get("cve", [])),
        cwe_ids=cwes_in(fields.get("cwe", []), [x for x in xrefs if x.upper().startswith("CWE:")]),
        other_ids=other_ids,
        rule_id=clean(a.get("pluginID")),
        cvss_version=version,
        cvss_vector=vector,
        cvss_score=score,
        host=host.get("host"),
        ip=host.get("ip"),
        port=port if port is not None else (host.get("url_port") if url else None),
        protocol=(clean(a.get("protocol")) or "").lower() or None,
        url=url,
        remediation=solution if solution and solution.lower() != "n/a" else None,
        references=refs,
        last_seen=host.get("seen"),
        extra=compact({
            "plugin_family": clean(a.get("pluginFamily")),
            "service": clean(a.get("svc_name")),
            "risk_factor": one("risk_factor"),
            "plugin_output": evidence(one("plugin_output")),
            "vpr_score": cvss_score(one("vpr_score")),  # VPR is 0-10 too
            "epss_score": probability(one("epss_score")),
            "exploit_available": one("exploit_available"),
            "os": host.get("os"),
        }),
    )


def parse(stream: IO[bytes]) -> Iterator[ParsedFinding]:
    """Stream findings from a .nessus v2 file, one per ReportItem."""
    stream = expect_xml_root(stream, KEY, ("NessusClientData_v2",), "a Nessus v2 report")
    host: dict[str, Any] | None = None
    for tag, elem in iter_report_xml(stream, KEY, ("HostProperties", "ReportItem", "ReportHost")):
        if tag == "ReportItem":
            if host is None:
                parent = elem.getparent()
                host = _host_info(None, (parent.get("name") if parent is not None else None) or "")
            yield _finding(elem, host)
            clear_element(elem)
        elif tag == "HostProperties":
            parent = elem.getparent()
            host = _host_info(elem, (parent.get("name") if parent is not None else None) or "")
            clear_element(elem)
        elif tag == "ReportHost":
            host = None
            clear_element(elem)


FORMAT = ReportFormat(
    key=KEY,
    title="Tenable Nessus (.nessus v2 XML)",
    detect=detect,
    parse=parse,
    map_severity=map_by_table(SEVERITY_TABLE),
    extensions=("nessus", "xml"),
)

__all__ = ["FORMAT", "SEVERITY_TABLE", "detect", "parse"]
