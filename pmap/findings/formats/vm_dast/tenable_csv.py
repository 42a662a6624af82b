"""Tenable CSV exports: Nessus (Pro/Expert/WAS), Tenable Security Center and Tenable VM (``asset.*``/``definition.*``).

The three products name their columns differently; each field is read through an alias list.
Nessus writes one row per CVE of a plugin result, so consecutive rows for the same plugin on
the same host/port are merged into one finding (streaming: only the pending row is held).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import cast

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, map_by_table
from pmap.findings.formats.convert import (
    clean,
    compact,
    cvss_score,
    evidence,
    parse_dt,
    port_of,
    probability,
    split_url,
    uniq,
)
from pmap.findings.formats.identifiers import cve_ids, cvss_version, cwe_ids
from pmap.findings.formats.readers import iter_csv
from pmap.findings.formats.sniff import csv_header_line
from pmap.findings.formats.vm_dast.nessus import SEVERITY_TABLE

KEY = "tenable_csv"

_ALIASES: dict[str, tuple[str, ...]] = {
    "plugin": ("plugin id", "plugin", "definition.id"),
    "title": ("name", "plugin name", "definition.name"),
    "severity": ("risk", "severity", "definition.severity", "risk factor"),
    "host": ("host", "dns name", "asset.display_fqdn", "asset.host_name", "asset.name", "netbios name"),
    "ip": ("ip address", "asset.display_ipv4_address", "asset.display_ipv6_address"),
    "port": ("port", "asset.port"),
    "protocol": ("protocol",),
    "cve": ("cve", "definition.cve"),
    "cvss3": ("cvss v3.0 base score", "cvssv3", "cvss v3 base score", "definition.cvss3.base_score"),
    "cvss3_vector": ("cvss v3 vector", "cvss v3.0 vector", "definition.cvss3.base_vector"),
    "cvss4": ("cvss v4.0 base score", "cvss v4 base score", "definition.cvss4.base_score"),
    "cvss4_vector": ("cvss v4 vector", "cvss v4.0 vector", "definition.cvss4.base_vector"),
    "cvss2": ("cvss v2.0 base score", "cvss v2 base score", "cvss", "definition.cvss2.base_score"),
    "cvss2_vector": ("cvss v2 vector", "cvss v2.0 vector", "definition.cvss2.base_vector"),
    "synopsis": ("synopsis", "definition.synopsis"),
    "description": ("description", "definition.description"),
    "solution": ("solution", "steps to remediate", "definition.solution"),
    "see_also": ("see also", "definition.see_also"),
    "output": ("plugin output", "plugin text", "output"),
    "cpe": ("cpe", "definition.cpe"),
    "cwe": ("cwe", "definition.cwe"),
    "xref": ("cross references", "xref"),
    "first_seen": ("first discovered", "first_observed", "first seen"),
    "last_seen": ("last observed", "last_seen", "last seen"),
    "state": ("state", "vulnerability state"),
    "family": ("family", "definition.family"),
    "vpr": ("vulnerability priority rating", "vpr score", "definition.vpr.score"),
    "epss": ("epss score", "definition.epss.score"),
}
_CPE = re.compile(r"cpe:(?:/[aho]|2\.3:[aho]):([^:\s]+):([^:\s]+)(?::([^:\s]+))?", re.IGNORECASE)
_DATE_FORMATS = ("%b %d, %Y %H:%M:%S %Z", "%b %d, %Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M:%S")


def _is_header(cells: list[str]) -> bool:
    s = set(cells)
    return bool(s & {"plugin id", "plugin", "definition.id"}) and bool(s & {"name", "plugin name", "definition.name"})


def detect(head: bytes, filename: str | None) -> bool:
    """A CSV whose first line has Tenable's plugin id and plugin name columns."""
    return _is_header(csv_header_line(head))


#: how a row is read: ``get(row, field)`` is the field's clean value (None for absent, blank or a placeholder)
Getter = Callable[[Mapping[str, str | None], str], str | None]


def _get(row: Mapping[str, str | None], field: str) -> str | None:
    """A CSV row's value of ``field``: its first alias column with a :func:`clean` value."""
    for alias in _ALIASES[field]:
        v = clean(row.get(alias))
        if v is not None:
            return v
    return None


#: a row already keyed by field, its values already clean (see :func:`findings_of_fields`)
_field = cast(Getter, dict.get)


def _cvss(row: Mapping[str, str | None], get: Getter) -> tuple[str | None, str | None, float | None]:
    for score_f, vec_f, default in (("cvss3", "cvss3_vector", "3.0"), ("cvss4", "cvss4_vector", "4.0"),
                                    ("cvss2", "cvss2_vector", "2.0")):
        score = cvss_score(get(row, score_f))
        vector = get(row, vec_f)
        if score is None and vector is None:
            continue
        if vector and vector.startswith("CVSS2#"):
            vector = vector[len("CVSS2#"):]
        if vector and default == "3.0" and not vector.startswith("CVSS:"):
            vector = f"CVSS:3.0/{vector}"  # Security Center drops the prefix
        return (cvss_version(vector) or default), vector, score
    return None, None, None


def _row_finding(row: Mapping[str, str | None], get: Getter) -> ParsedFinding | None:
    title = get(row, "title")
    if title is None:
        return None  # blank filler rows in Security Center exports
    host = get(row, "host")
    ip = get(row, "ip")
    url = None
    port = port_of(get(row, "port"))
    protocol = (get(row, "protocol") or "").lower() or None
    if host and "://" in host:  # Tenable WAS rows carry the application URL
        url = host
        host, url_port, _scheme = split_url(host)
        port = port or url_port
    elif host and re.fullmatch(r"(?:\d{1,3}\.){3}\d{1,3}", host):
        ip = ip or host  # Nessus puts the address in "Host" when it has no name
        host = None if host == ip else host
    version, vector, score = _cvss(row, get)
    cpe = _CPE.search(get(row, "cpe") or "")
    xrefs = get(row, "xref") or ""
    synopsis, description = get(row, "synopsis"), get(row, "description")
    if synopsis and description and synopsis not in description:
        description = f"{synopsis}\n\n{description}"
    solution = get(row, "solution")
    state = get(row, "state")
    return ParsedFinding(
        title=title,
        vendor_severity=get(row, "severity"),
        description=description or synopsis,
        cve_ids=cve_ids(get(row, "cve")),
        cwe_ids=cwe_ids(get(row, "cwe"), re.findall(r"CWE[:#-]\s*\d+", xrefs, re.IGNORECASE)),
        rule_id=get(row, "plugin"),
        cvss_version=version,
        cvss_vector=vector,
        cvss_score=score,
        host=host,
        ip=ip,
        port=port,
        protocol=protocol if protocol not in ("http", "https") else None,
        url=url,
        package_name=cpe.group(2) if cpe else None,
        package_version=cpe.group(3) if cpe and cpe.group(3) not in (None, "-", "*") else None,
        remediation=solution if solution and solution.lower() != "n/a" else None,
        references=uniq((get(row, "see_also") or "").split()),
        first_seen=parse_dt(get(row, "first_seen"), *_DATE_FORMATS),
        last_seen=parse_dt(get(row, "last_seen"), *_DATE_FORMATS),
        status=state.lower() if state else None,
        extra=compact({
            "plugin_family": get(row, "family"),
            "plugin_output": evidence(get(row, "output")),
            "vpr_score": cvss_score(get(row, "vpr")),  # VPR is 0-10 too
            "epss_score": probability(get(row, "epss")),
            "service": protocol if protocol in ("http", "https") else None,
        }),
    )


def _same_result(a: ParsedFinding, b: ParsedFinding) -> bool:
    def identity(f: ParsedFinding) -> tuple[object, ...]:
        return (f.rule_id, f.title, f.host, f.ip, f.port, f.protocol, f.url)

    return identity(a) == identity(b)


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from a Tenable CSV export, merging per-CVE rows of one plugin result."""
    return findings_of_rows(row for _line, row in iter_csv(report.stream, KEY, _is_header))


def findings_of_rows(rows: Iterable[Mapping[str, str]]) -> Iterator[ParsedFinding]:
    """Findings of Tenable CSV rows (``{lower-cased column: cell}``, an empty cell as ``""``), merging per-CVE
    rows of one plugin result."""
    return _merged(rows, _get)


def findings_of_fields(rows: Iterable[Mapping[str, str | None]]) -> Iterator[ParsedFinding]:
    """Findings of rows already read into fields (a dict ``{field: value}``, the fields being the keys of
    ``_ALIASES``): each value what :func:`_get` reads from the CSV row of the same data, i.e. the first alias
    column's :func:`clean` value (absent or None where there is none). A Tenable VM sync hands its
    export records here, so a synced finding and the same finding in an uploaded CSV are read, and identified,
    alike, without a row of every CSV column made and searched alias by alias for each record."""
    return _merged(rows, _field)


def _merged(rows: Iterable[Mapping[str, str | None]], get: Getter) -> Iterator[ParsedFinding]:
    pending: ParsedFinding | None = None
    for row in rows:
        finding = _row_finding(row, get)
        if finding is None:
            continue
        if pending is not None and _same_result(pending, finding):
            pending.cve_ids = uniq([*pending.cve_ids, *finding.cve_ids])
            continue
        if pending is not None:
            yield pending
        pending = finding
    if pending is not None:
        yield pending


FORMAT = ReportFormat(
    key=KEY,
    title="Tenable CSV (Nessus, Security Center, Tenable VM)",
    detect=detect,
    read=parse,
    # Nessus "Risk" (None/Low/Medium/High/Critical), Security Center and Tenable VM "Severity"
    # (Info/Low/Medium/High/Critical) and the numeric 0-4 form share the Nessus scale
    map_severity=map_by_table(SEVERITY_TABLE),
)
