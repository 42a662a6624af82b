"""Masscan output: JSON (``-oJ`` array, ``-oD`` lines), XML (``-oX``) and list (``-oL``/``-oG``).

Each open port is one informational finding, as for nmap. An empty file is an empty scan
(masscan writes nothing when no port answered).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, map_by_table
from pmap.findings.formats.convert import as_dict, as_str, compact, epoch_dt, port_of
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.json_reader import iter_json_items, iter_json_lines
from pmap.findings.formats.sniff import HEAD_SIZE, first_json_byte, head_text, xml_root
from pmap.findings.formats.vm_dast.nmap import (
    OPEN_PORT_SEVERITY,
    SEVERITY_TABLE,
    open_port_findings,
)
from pmap.findings.formats.xml_reader import check_xml_root, clear_element, iter_xml

KEY = "masscan"
_LIST_LINE = re.compile(r"^(open|closed)\s+(tcp|udp|sctp|icmp)\s+(\d+)\s+(\S+)\s+(\d+)\s*$")
_GREP_LINE = re.compile(r"Host:\s+(\S+).*?Ports:\s+(\d+)/(open|closed)/(\w+)/")
_JSON_HINT = re.compile(r'"ports"\s*:\s*\[\s*\{\s*"port"\s*:|"rec_type"\s*:\s*"(?:status|banner)"')


def detect(head: bytes, filename: str | None) -> bool:
    """Masscan JSON (ip/timestamp/ports keys), ``nmaprun scanner="masscan"`` XML or ``#masscan`` lists."""
    text = head_text(head)
    stripped = text.lstrip()
    if stripped.startswith("<"):
        root = xml_root(text)
        return root is not None and root[0] == "nmaprun" and 'scanner="masscan"' in root[1]
    if stripped[:1] in ("[", "{"):
        return bool(_JSON_HINT.search(text[:4096]))
    return stripped.startswith(("#masscan", "# Masscan"))


def _port_finding(ip: str, port: Any, proto: Any, status: Any, extra: dict[str, Any], seen: Any,
                  where: str) -> ParsedFinding | None:
    if str(status or "open").lower() != "open":
        return None
    number = port_of(port)
    if number is None:
        raise ReportError(KEY, f"invalid port {str(port)[:20]!r}", where)
    protocol = (as_str(proto) or "tcp").lower()
    return ParsedFinding(
        title=f"Open port: {number}/{protocol}",
        vendor_severity=OPEN_PORT_SEVERITY,
        ip=ip,
        port=number,
        protocol=protocol,
        last_seen=epoch_dt(seen),
        extra=compact(extra),
    )


def _json_host(entry: Any, where: str) -> Iterator[ParsedFinding]:
    if not isinstance(entry, dict):
        raise ReportError(KEY, f"host entry must be a JSON object, got {type(entry).__name__}", where)
    if entry.get("finished") is not None and "ip" not in entry:
        return  # masscan < 1.3 closes its array with {"finished": 1}
    ip = as_str(entry.get("ip"))
    if not ip:
        raise ReportError(KEY, "host entry has no 'ip'", where)
    if "ports" in entry:
        ports = entry["ports"]
        if not isinstance(ports, list):
            raise ReportError(KEY, "'ports' must be an array", where)
        for p in ports:
            if not isinstance(p, dict):
                raise ReportError(KEY, "port entry must be a JSON object", where)
            service = as_dict(p.get("service"))
            f = _port_finding(ip, p.get("port"), p.get("proto"), p.get("status"),
                              {"reason": as_str(p.get("reason")), "ttl": p.get("ttl"),
                               "service": as_str(service.get("name")),
                               "banner": as_str(service.get("banner"))}, entry.get("timestamp"), where)
            if f is not None:
                yield f
    elif "port" in entry:  # -oD: one record per line, status under "data"
        data = as_dict(entry.get("data"))
        if entry.get("rec_type", "status") != "status":
            return  # banner records add detail, not ports
        f = _port_finding(ip, entry.get("port"), entry.get("proto"), data.get("status"),
                          {"reason": as_str(data.get("reason")), "ttl": data.get("ttl")}, entry.get("timestamp"), where)
        if f is not None:
            yield f
    else:
        raise ReportError(KEY, "host entry has neither 'ports' nor 'port'", where)


def _parse_json(stream: IO[bytes], first: str) -> Iterator[ParsedFinding]:
    if first == "[":
        for index, entry in enumerate(iter_json_items(stream, "item", KEY)):
            yield from _json_host(entry, f"$[{index}]")
        return
    # a lone object is not masscan -oJ output (always an array); -oD writes one object per line
    for index, entry in enumerate(iter_json_lines(stream, KEY)):
        if not isinstance(entry, dict) or ("port" not in entry and "ports" not in entry):
            raise ReportError(KEY, "masscan JSON must be an array of hosts (or -oD records with 'port')",
                              f"line {index + 1}")
        yield from _json_host(entry, f"line {index + 1}")


def _parse_xml(report: Report) -> Iterator[ParsedFinding]:
    check_xml_root(report.head, KEY, ("nmaprun",), "a masscan XML report")
    stream = report.stream
    for _tag, host in iter_xml(stream, KEY, ("host",)):
        seen = epoch_dt(host.get("endtime"))
        for finding, _port_el in open_port_findings(host, seen):
            yield finding
        clear_element(host)


def _parse_lines(stream: IO[bytes]) -> Iterator[ParsedFinding]:
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LIST_LINE.match(line)
        if m:
            f = _port_finding(m.group(4), m.group(3), m.group(2), m.group(1), {}, m.group(5), f"line {lineno}")
        else:
            g = _GREP_LINE.search(line)
            if not g:
                raise ReportError(KEY, "not a masscan report: unrecognised line", f"line {lineno}")
            f = _port_finding(g.group(1), g.group(2), g.group(4), g.group(3), {}, None, f"line {lineno}")
        if f is not None:
            yield f


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream open-port findings from masscan JSON, XML or list output."""
    head, stream = report.head, report.stream
    text = head_text(head).lstrip()
    if not text:
        if len(head) < HEAD_SIZE:
            return
        raise ReportError(KEY, "not a masscan report: no content in the first 64 KiB", "line 1")
    first = first_json_byte(head)
    if first in ("[", "{"):
        yield from _parse_json(stream, first)
    elif first == "<":
        yield from _parse_xml(report)
    elif text.startswith(("#", "Timestamp:")) or _LIST_LINE.match(text.split("\n", 1)[0].strip()):
        yield from _parse_lines(stream)
    else:
        raise ReportError(KEY, "not a masscan report: expected JSON, XML or list output", "line 1")


FORMAT = ReportFormat(
    key=KEY,
    title="Masscan (JSON, XML, list)",
    detect=detect,
    read=parse,
    map_severity=map_by_table(SEVERITY_TABLE),
    empty_is_clean=True,  # masscan writes nothing when no port answered
)
