"""Nmap XML output (``-oX``): open ports, ``vulners`` script results and NSE ``vulns`` library results.

Network discovery has no severity of its own: an open port is an informational observation
(vendor severity ``info``); ``vulners`` entries carry a CVSS score and are rated by its band;
NSE vulnerability tables state VULNERABLE / LIKELY VULNERABLE without a score. The same
open-port reading serves masscan's nmap-compatible XML.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import clean, compact, cvss_score, epoch_dt, evidence, port_of
from pmap.findings.formats.identifiers import cve_ids
from pmap.findings.formats.resource import covered_resource
from pmap.findings.formats.sniff import head_text, xml_root
from pmap.findings.formats.xml_reader import child, children, clear_element, iter_xml

KEY = "nmap_xml"
OPEN_PORT_SEVERITY = "info"  # nmap and masscan rate nothing; an open port is an observation
_CPE = re.compile(r"cpe:/[aho]:([^:]+):([^:]+)(?::([^:]+))?")
_NSE_STATES = ("VULNERABLE", "LIKELY VULNERABLE", "VULNERABLE (EXPLOITABLE)", "VULNERABLE (DOS)")

# open ports are "info"; nmap has no other severity, so vulners/NSE findings fall to the CVSS
# band of the score they carry, or Unknown
SEVERITY_TABLE = {"info": Severity.INFO}


def detect(head: bytes, filename: str | None) -> bool:
    """An ``nmaprun`` root written by nmap (masscan writes ``scanner="masscan"``)."""
    root = xml_root(head_text(head))
    return root is not None and root[0] == "nmaprun" and 'scanner="masscan"' not in root[1]


def host_identity(host: Any) -> tuple[str | None, str | None]:
    """(hostname, ip) of an nmap ``host`` element: user-given or PTR name, IPv4 then IPv6."""
    ip = None
    for addr in children(host, "address"):
        if addr.get("addrtype") in ("ipv4", "ipv6") and ip is None:
            ip = clean(addr.get("addr"))
    name = None
    names = child(host, "hostnames")
    if names is not None:
        found = {h.get("type"): clean(h.get("name")) for h in children(names, "hostname")}
        name = found.get("user") or found.get("PTR") or next((v for v in found.values() if v), None)
    return name, ip


def open_port_findings(host: Any, seen: datetime | None,
                       title_suffix: bool = False) -> Iterator[tuple[ParsedFinding, Any]]:
    """One finding per open port of a host, with the port element (for script results)."""
    name, ip = host_identity(host)
    ports = child(host, "ports")
    if ports is None:
        return
    for port_el in children(ports, "port"):
        state = child(port_el, "state")
        if state is None or state.get("state") != "open":
            continue
        proto = (clean(port_el.get("protocol")) or "tcp").lower()
        port = port_of(port_el.get("portid"))
        service = child(port_el, "service")
        svc = service.attrib if service is not None else {}
        cpes = [c.text.strip() for c in children(service, "cpe") if c.text] if service is not None else []
        title = f"Open port: {port_el.get('portid')}/{proto}"
        yield ParsedFinding(
            title=f"{title} on {ip or name}" if title_suffix else title,
            vendor_severity=OPEN_PORT_SEVERITY,
            description=_service_text(svc),
            host=name,
            ip=ip,
            port=port,
            protocol=proto,
            last_seen=seen,
            extra=compact({
                "service": clean(svc.get("name")),
                "product": clean(svc.get("product")),
                "version": clean(svc.get("version")),
                "extra_info": clean(svc.get("extrainfo")),
                "cpe": cpes,
                "reason": clean(state.get("reason")),
            }),
        ), port_el


def _service_text(svc: Any) -> str | None:
    parts = [f"{k}: {svc.get(k)}" for k in ("name", "product", "version", "extrainfo") if svc.get(k)]
    return "; ".join(parts) or None


def _elems(table: Any) -> dict[str, str]:
    return {e.get("key", ""): (e.text or "").strip() for e in children(table, "elem")}


def _vulners(script: Any, base: ParsedFinding) -> Iterator[ParsedFinding]:
    for component in children(script, "table"):
        cpe = _CPE.match(component.get("key") or "")
        for vuln in children(component, "table"):
            attrs = _elems(vuln)
            vid = clean(attrs.get("id"))
            if not vid:
                continue
            vtype = (attrs.get("type") or "").lower()
            yield ParsedFinding(
                title=vid,
                cve_ids=cve_ids(vid) if vtype == "cve" else [],
                other_ids=[] if vtype == "cve" else [vid],
                rule_id=vid,
                cvss_score=cvss_score(attrs.get("cvss")),
                host=base.host,
                ip=base.ip,
                port=base.port,
                protocol=base.protocol,
                package_name=cpe.group(2) if cpe else None,
                package_version=cpe.group(3) if cpe else None,
                references=[f"https://vulners.com/{vtype}/{vid}"] if vtype else [],
                last_seen=base.last_seen,
                extra=compact({"script": "vulners", "type": vtype, "is_exploit": attrs.get("is_exploit") == "true",
                               "cpe": component.get("key")}),
            )


def _nse_vulns(script: Any, base: ParsedFinding) -> Iterator[ParsedFinding]:
    sid = clean(script.get("id")) or "nse"
    for table in children(script, "table"):
        attrs = _elems(table)
        state = (attrs.get("state") or "").upper()
        if not any(state.startswith(s) for s in _NSE_STATES):
            continue
        ids: list[str] = []
        ids_table = next((t for t in children(table, "table") if t.get("key") == "ids"), None)
        if ids_table is not None:
            ids = [(e.text or "").split(":", 1)[-1] for e in children(ids_table, "elem")]
        refs_table = next((t for t in children(table, "table") if t.get("key") == "refs"), None)
        refs = [(e.text or "").strip() for e in children(refs_table, "elem")] if refs_table is not None else []
        desc_table = next((t for t in children(table, "table") if t.get("key") == "description"), None)
        listed = (" ".join((e.text or "").strip() for e in children(desc_table, "elem"))
                  if desc_table is not None else None)
        description = attrs.get("description") or listed
        key = table.get("key") or attrs.get("title") or sid
        yield ParsedFinding(
            title=attrs.get("title") or key,
            description=clean(description),
            cve_ids=cve_ids(ids, key),
            rule_id=f"{sid}:{key}",
            host=base.host,
            ip=base.ip,
            port=base.port,
            protocol=base.protocol,
            references=[r for r in refs if r.startswith(("http://", "https://"))],
            last_seen=base.last_seen,
            extra=compact({"script": sid, "state": state, "output": evidence(script.get("output"))}),
        )


def _script_findings(scripts: Iterator[Any], base: ParsedFinding) -> Iterator[ParsedFinding]:
    for script in scripts:
        if script.get("id") == "vulners":
            yield from _vulners(script, base)
        else:
            yield from _nse_vulns(script, base)


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from nmap XML: open ports and vulnerability script results, per host."""
    for _tag, host in iter_xml(report.stream, KEY, ("host",)):
        root = host.getparent()
        seen = epoch_dt(host.get("starttime")) or (epoch_dt(root.get("start")) if root is not None else None)
        status = child(host, "status")
        if status is not None and status.get("state") == "up":  # scanned: covered even with no open port
            name, ip = host_identity(host)
            report.cover(covered_resource(ParsedFinding("", host=name, ip=ip)))
        for finding, port_el in open_port_findings(host, seen):
            yield from _script_findings(children(port_el, "script"), finding)
            yield finding
        hostscript = child(host, "hostscript")
        if hostscript is not None:
            name, ip = host_identity(host)
            base = ParsedFinding(title="host", host=name, ip=ip, last_seen=seen)
            yield from _script_findings(children(hostscript, "script"), base)
        clear_element(host)


FORMAT = ReportFormat(
    key=KEY,
    title="Nmap XML (-oX)",
    detect=detect,
    read=parse,
    syntax="xml",
    xml_roots=("nmaprun",),
    what="an nmap XML report",
    map_severity=map_by_table(SEVERITY_TABLE),
)
