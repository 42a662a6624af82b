"""Tenable Nessus ``.nessus`` v2 XML (``NessusClientData_v2``), also Tenable WAS and Security Center exports.

The hot path of report import: files reach hundreds of MB with long ``plugin_output``. The file
is streamed with end events; ``HostProperties`` is read once per host (it precedes the host's
``ReportItem`` elements), each ``ReportItem`` becomes one finding and is freed immediately.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import (
    clean,
    compact,
    cvss_score,
    epoch_dt,
    evidence,
    parse_dt,
    port_of,
    probability,
    split_url,
    uniq,
)
from pmap.findings.formats.identifiers import cve_ids, cvss_version, cwe_ids
from pmap.findings.formats.resource import covered_resource
from pmap.findings.formats.sniff import head_text, xml_root
from pmap.findings.formats.xml_reader import clear_element, iter_xml, local

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
_HOST_TAGS = frozenset({"host-ip", "host-fqdn", "host-rdns", "netbios-name", "HOST_END", "HOST_END_TIMESTAMP",
                        "HOST_START", "operating-system"})


def detect(head: bytes, filename: str | None) -> bool:
    """A ``NessusClientData_v2`` root element."""
    root = xml_root(head_text(head))
    return root is not None and root[0] == "NessusClientData_v2"


def _host_info(props: Any, name: str) -> dict[str, Any]:
    tags: dict[str, str] = {}
    if props is not None:
        for tag in props:
            n = tag.get("name")
            if n in _HOST_TAGS and tag.text:
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
    seen: datetime | None = (epoch_dt(tags.get("HOST_END_TIMESTAMP"))
                             or parse_dt(tags.get("HOST_END"), *_HOST_DATE_FORMATS))
    info["seen"] = seen
    info["os"] = tags.get("operating-system")
    return info


#: children that may repeat and are all kept; every other child is read once (its first occurrence)
_REPEATED = frozenset(("xref", "see_also", "cve", "cwe"))
#: (score, vector) children in order of preference: CVSS v3, v4, then v2
_CVSS_TAGS = (("cvss3_base_score", "cvss3_vector"), ("cvssv3", "cvss3_vector"), ("cvss4_base_score", "cvss4_vector"),
              ("cvss_base_score", "cvss_vector"), ("cvss", "cvss_vector"))
_NO_LIST: list[str] = []


def _children(item: Any) -> tuple[dict[str, str], dict[str, list[str]]]:
    """One pass over a ReportItem's children: the first text of each, and every text of the repeated ones."""
    first: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for c in item:
        text = c.text
        if text is None:
            continue
        tag = c.tag
        if tag[0] == "{":  # compliance items use the cm: namespace
            tag = local(tag)
        if tag in _REPEATED:
            texts = repeated.get(tag)
            if texts is None:
                repeated[tag] = [text]
            else:
                texts.append(text)
        elif tag not in first:
            first[tag] = text
    return first, repeated


def _cvss(first: dict[str, str]) -> tuple[float | None, str | None, str | None]:
    """(score, vector, version) from the preferred CVSS children the item has."""
    for score_tag, vector_tag in _CVSS_TAGS:
        raw = first.get(score_tag)
        if raw is None:
            continue
        score = cvss_score(clean(raw))
        if score is None:
            continue
        vector = clean(first.get(vector_tag))
        if vector:
            vector = vector.removeprefix("CVSS2#")
            return score, vector, cvss_version(vector) or ("3.0" if "/S:" in vector else "2.0")
        version = "2.0" if score_tag in ("cvss_base_score", "cvss") else ("4.0" if "4" in score_tag else "3.0")
        return score, None, version
    return None, None, None


def _compliance_identity(first: dict[str, str]) -> list[str]:
    check = clean(first.get("compliance-check-id")) or clean(first.get("compliance-check-name"))
    return [f"compliance={check}"] if check else []


def _finding(item: Any, host: dict[str, Any]) -> ParsedFinding:
    # the hot path of a large import: one pass over the children, then only dict lookups
    a = item.attrib
    first, repeated = _children(item)
    get = first.get
    title = clean(a.get("pluginName")) or clean(get("plugin_name")) or f"Nessus plugin {a.get('pluginID', '?')}"
    xrefs = [x.strip() for x in repeated.get("xref", _NO_LIST)]
    score, vector, version = _cvss(first)
    port = port_of(a.get("port"))
    url = host.get("url")
    see_also = repeated.get("see_also")
    refs = uniq(r for text in see_also for r in text.split()) if see_also else []
    description = clean(get("description"))
    synopsis = clean(get("synopsis"))
    if synopsis and description and synopsis not in description:
        description = f"{synopsis}\n\n{description}"
    solution = clean(get("solution"))
    risk_factor = clean(get("risk_factor"))
    cwes = repeated.get("cwe")
    cwe_xrefs = [x for x in xrefs if x[:4].upper() == "CWE:"] if xrefs else _NO_LIST
    return ParsedFinding(
        title=title,
        vendor_severity=clean(a.get("severity")) or risk_factor,
        description=description or synopsis,
        cve_ids=cve_ids(repeated.get("cve", _NO_LIST)),
        cwe_ids=cwe_ids(cwes, cwe_xrefs) if cwes or cwe_xrefs else [],
        other_ids=uniq(x for x in xrefs if x.split(":", 1)[0].upper() in _XREF_IDS) if xrefs else [],
        rule_id=clean(a.get("pluginID")),
        # a compliance plugin (Unix/Windows Compliance Checks, ...) reports every audit check of a host under one
        # plugin id and port 0: the check (cm:compliance-check-id, else its name) is what tells them apart
        identity=_compliance_identity(first),
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
            "risk_factor": risk_factor,
            "plugin_output": evidence(get("plugin_output")),
            "vpr_score": cvss_score(clean(get("vpr_score"))),  # VPR is 0-10 too
            "epss_score": probability(clean(get("epss_score"))),
            "exploit_available": clean(get("exploit_available")),
            "os": host.get("os"),
            "compliance_check": clean(get("compliance-check-name")),
        }),
    )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from a .nessus v2 file, one per ReportItem."""
    host: dict[str, Any] | None = None
    items = 0
    for tag, elem in iter_xml(report.stream, KEY, ("HostProperties", "ReportItem", "ReportHost")):
        if tag == "ReportItem":
            if host is None:
                parent = elem.getparent()
                host = _host_info(None, (parent.get("name") if parent is not None else None) or "")
            items += 1
            yield _finding(elem, host)
            clear_element(elem)
        elif tag == "HostProperties":
            parent = elem.getparent()
            host = _host_info(elem, (parent.get("name") if parent is not None else None) or "")
            clear_element(elem)
        elif tag == "ReportHost":
            if not items:  # scanned, nothing found: its findings of earlier scans are resolved
                info = host or _host_info(None, elem.get("name") or "")
                report.cover(covered_resource(ParsedFinding("", host=info.get("host"), ip=info.get("ip"),
                                                            url=info.get("url"))))
            host, items = None, 0
            clear_element(elem)


FORMAT = ReportFormat(
    key=KEY,
    title="Tenable Nessus (.nessus v2 XML)",
    detect=detect,
    read=parse,
    syntax="xml",
    xml_roots=("NessusClientData_v2",),
    what="a Nessus v2 report",
    map_severity=map_by_table(SEVERITY_TABLE),
)

__all__ = ["FORMAT", "SEVERITY_TABLE", "detect", "parse"]
