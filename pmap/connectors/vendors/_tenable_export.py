"""Tenable VM vulnerability-export records (JSON chunks) written as a Tenable VM CSV export.

The export API answers JSON records that no report format reads; the ``tenable_csv`` format reads
Tenable VM's own CSV column names (``asset.*``, ``definition.*``), so the records are written in
that layout and the importer treats them like a CSV downloaded from the Tenable VM UI.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pmap.connectors.vendors._support import dig, parse_when, text
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.vm_dast import tenable_csv

# column names the tenable_csv reader knows (Tenable VM's own, plus "first seen"/"last seen")
COLUMNS = (
    "definition.id", "definition.name", "definition.family", "definition.severity",
    "asset.display_fqdn", "asset.display_ipv4_address", "asset.display_ipv6_address", "asset.port", "protocol",
    "definition.cve", "definition.cvss3.base_score", "definition.cvss3.base_vector",
    "definition.cvss2.base_score", "definition.cvss2.base_vector", "definition.synopsis", "definition.description",
    "definition.solution", "definition.see_also", "output", "state", "first seen", "last seen",
    "definition.vpr.score", "definition.epss.score",
)


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        return text(value[0]) if value else None
    return text(value)


def _date(value: Any) -> str | None:
    when = parse_when(value)
    # a format the CSV reader parses without guessing (it is UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if when else None


def _joined(value: Any, sep: str) -> str | None:
    if isinstance(value, list):
        return sep.join(str(v) for v in value if v not in (None, "")) or None
    return text(value)


def row_of(record: Mapping[str, Any]) -> dict[str, str | None]:
    """One CSV row for one export record."""
    asset, plugin, port = record.get("asset") or {}, record.get("plugin") or {}, record.get("port") or {}
    return {
        "definition.id": text(plugin.get("id")),
        "definition.name": text(plugin.get("name")),
        "definition.family": text(plugin.get("family")),
        "definition.severity": text(record.get("severity")) or text(plugin.get("risk_factor")),
        "asset.display_fqdn": text(asset.get("fqdn")) or text(asset.get("hostname")),
        "asset.display_ipv4_address": _first(asset.get("ipv4")),
        "asset.display_ipv6_address": _first(asset.get("ipv6")),
        "asset.port": text(port.get("port")),
        "protocol": text(port.get("protocol")),
        "definition.cve": _joined(plugin.get("cve"), ","),
        "definition.cvss3.base_score": text(plugin.get("cvss3_base_score")),
        "definition.cvss3.base_vector": text(plugin.get("cvss3_vector")) or text(dig(plugin, "cvss3_vector", "raw")),
        "definition.cvss2.base_score": text(plugin.get("cvss_base_score")),
        "definition.cvss2.base_vector": text(plugin.get("cvss_vector")) or text(dig(plugin, "cvss_vector", "raw")),
        "definition.synopsis": text(plugin.get("synopsis")),
        "definition.description": text(plugin.get("description")),
        "definition.solution": text(plugin.get("solution")),
        "definition.see_also": _joined(plugin.get("see_also"), " "),
        "output": text(record.get("output")),
        "state": text(record.get("state")),
        "first seen": _date(record.get("first_found")),
        "last seen": _date(record.get("last_found")),
        "definition.vpr.score": text(dig(plugin, "vpr", "score")),
        "definition.epss.score": text(plugin.get("epss_score")),
    }


_PLACEHOLDERS = frozenset({"-", "'-", "N/A", "n/a"})  # what convert.clean drops, as the CSV reader does
# years from 1000 only: strftime writes year 999 as "999"
_ISO_UTC = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")


def _clean(value: Any) -> str | None:
    """``convert.clean(text(value))`` in one step: what the CSV reader reads back from ``text(value)``."""
    if type(value) is str:
        out = value.strip()
    elif value is None or isinstance(value, (dict, list, bool)):
        return None
    else:
        out = str(value).strip()
    return out if out and out not in _PLACEHOLDERS else None


def _clean_date(value: Any) -> str | None:
    """``_date(value)`` cleaned; the export's own form (``2024-01-09T03:04:05.123Z``, UTC) read without the
    general parser's rewriting and time zone conversion."""
    if type(value) is str and _ISO_UTC.fullmatch(value):
        try:
            return datetime.fromisoformat(value[:19]).isoformat(" ")
        except ValueError:
            return None  # parse_when refuses it too (month 13, hour 25, ...)
    return _clean(_date(value))


def fields_of(record: Mapping[str, Any]) -> dict[str, str | None]:
    """One record as the tenable_csv reader's fields (``tenable_csv.findings_of_fields``): each field's value
    is what the reader takes from :func:`row_of` of the record written as CSV, read straight from the record."""
    asset, plugin, port = record.get("asset") or {}, record.get("plugin") or {}, record.get("port") or {}
    ipv4 = asset.get("ipv4")
    ipv6 = asset.get("ipv6")
    cve, see_also = plugin.get("cve"), plugin.get("see_also")
    vpr = plugin.get("vpr")
    return {
        "plugin": _clean(plugin.get("id")),
        "title": _clean(plugin.get("name")),
        "family": _clean(plugin.get("family")),
        "severity": _clean(text(record.get("severity")) or text(plugin.get("risk_factor"))),
        "host": _clean(text(asset.get("fqdn")) or text(asset.get("hostname"))),
        "ip": _clean(_first(ipv4) if isinstance(ipv4, list) else ipv4)
              or _clean(_first(ipv6) if isinstance(ipv6, list) else ipv6),
        "port": _clean(port.get("port")),
        "protocol": _clean(port.get("protocol")),
        "cve": _clean(_joined(cve, ",") if isinstance(cve, list) else cve),
        "cvss3": _clean(plugin.get("cvss3_base_score")),
        "cvss3_vector": _clean(text(plugin.get("cvss3_vector")) or text(dig(plugin, "cvss3_vector", "raw"))),
        "cvss2": _clean(plugin.get("cvss_base_score")),
        "cvss2_vector": _clean(text(plugin.get("cvss_vector")) or text(dig(plugin, "cvss_vector", "raw"))),
        "synopsis": _clean(plugin.get("synopsis")),
        "description": _clean(plugin.get("description")),
        "solution": _clean(plugin.get("solution")),
        "see_also": _clean(_joined(see_also, " ") if isinstance(see_also, list) else see_also),
        "output": _clean(record.get("output")),
        "state": _clean(record.get("state")),
        "first_seen": _clean_date(record.get("first_found")),
        "last_seen": _clean_date(record.get("last_found")),
        "vpr": _clean(vpr.get("score") if isinstance(vpr, Mapping) else None),
        "epss": _clean(plugin.get("epss_score")),
    }


def findings(records: Iterable[object]) -> Iterator[ParsedFinding]:
    """The records' findings, exactly as the ``tenable_csv`` format reads :func:`to_csv` of them, without
    writing and re-reading the CSV (a sync of 100,000 findings spent over a second on that alone), nor making
    the CSV row of each record (another 1.5 s of CPU)."""
    return tenable_csv.findings_of_fields(
        fields_of(record) for record in records
        if isinstance(record, Mapping) and isinstance(record.get("plugin"), Mapping))


def to_csv(records: Iterable[object]) -> bytes:
    """The records as CSV bytes (header first), skipping records without a plugin."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        if isinstance(record, Mapping) and isinstance(record.get("plugin"), Mapping):
            writer.writerow(row_of(record))
    return out.getvalue().encode("utf-8")
