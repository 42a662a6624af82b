"""The Tenable Security Center findings pull: ``POST /analysis`` (type vuln, tool vulndetails), paged.

The cumulative database holds the vulnerabilities SC still sees, the patched one those it saw mitigated
(status "fixed"). Analysis records are JSON, which no report format reads; their fields are those of SC's
own vulnerability-details CSV export, which the ``tenable_csv`` format reads (``Plugin``, ``Plugin Name``,
``IP Address``, ``DNS Name``, ``Plugin Text``, ``First Discovered``, ``Last Observed``...), so each record
becomes one such row and a synced finding reads, and is identified, like the same row of an uploaded CSV.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pmap.connectors.base import FindingsFeed, FindingsPull, OperationContext
from pmap.connectors.vendors._support import dig, fail, parse_when, text
from pmap.core.outbound import OutboundClient
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.vm_dast import tenable_csv

#: records per analysis page (SC answers ``endOffset - startOffset`` records at most)
PAGE = 100
SYNC_FORMAT = tenable_csv.KEY
#: source type -> the time filter SC documents for it (days ago, ``end:start``) and the state it means
_SOURCES = (("cumulative", "lastSeen", None), ("patched", "lastMitigated", "fixed"))

Envelope = Callable[[OutboundClient, Mapping[str, Any]], dict[str, Any]]


def _date(value: Any) -> str:
    when = parse_when(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if when else ""


def row_of(record: Mapping[str, Any], state: str | None) -> dict[str, str]:
    """One row of SC's vulnerability-details CSV for one analysis record (cells as ``""`` when absent)."""
    severity = record.get("severity")
    row = {
        "plugin": text(record.get("pluginID")),
        "plugin name": text(record.get("pluginName")),
        "family": text(dig(record, "family", "name")),
        "severity": text(severity.get("name")) if isinstance(severity, Mapping) else text(severity),
        "ip address": text(record.get("ip")),
        "dns name": text(record.get("dnsName")) or text(record.get("netbiosName")),
        "port": text(record.get("port")),
        "protocol": text(record.get("protocol")),
        "cve": text(record.get("cve")),
        "cvss v3 base score": text(record.get("cvssV3BaseScore")),
        "cvss v3 vector": text(record.get("cvssV3Vector")),
        "cvss v2 base score": text(record.get("baseScore")),
        "cvss v2 vector": text(record.get("cvssVector")),
        "synopsis": text(record.get("synopsis")),
        "description": text(record.get("description")),
        "solution": text(record.get("solution")),
        "see also": text(record.get("seeAlso")),
        "plugin text": text(record.get("pluginText")),
        "cpe": text(record.get("cpe")),
        "cross references": text(record.get("xref")),
        "vpr score": text(record.get("vprScore")),
        "epss score": text(record.get("epssScore")),
        "state": state,
    }
    cells = {k: v or "" for k, v in row.items()}
    cells["first discovered"] = _date(record.get("firstSeen"))
    cells["last observed"] = _date(record.get("lastSeen"))
    return cells


def _days_since(since: datetime) -> int:
    """Whole days back to ``since``, rounded up: a day read twice is re-read (an update), never missed."""
    aware = since if since.tzinfo else since.replace(tzinfo=UTC)
    return max(1, math.ceil((datetime.now(UTC) - aware).total_seconds() / 86400))


def _pages(ctx: OperationContext, c: OutboundClient, post: Envelope, source: str, filters: list[dict[str, Any]]
           ) -> Iterator[list[Any]]:
    """One source type's records, a page at a time, until ``totalRecords`` are read or a page comes short."""
    start = 0
    while True:
        body = post(c, {"type": "vuln", "sourceType": source,
                     "query": {"type": "vuln", "tool": "vulndetails", "startOffset": start,
                               "endOffset": start + PAGE, "filters": filters}})
        results = body.get("results")
        if not isinstance(results, list):
            raise fail(ctx, f"the {source} analysis answered no results list", step="response")
        total = text(body.get("totalRecords"))
        yield results
        start += len(results)
        if len(results) < PAGE or not results or (total is not None and total.isdigit() and start >= int(total)):
            return


def pull(ctx: OperationContext, request: FindingsPull, post: Envelope) -> FindingsFeed:
    """The feed: cumulative vulnerabilities, then patched ones (status "fixed"), each page read lazily."""
    days = _days_since(request.since) if request.since is not None else None

    def findings() -> Iterator[ParsedFinding]:
        with ctx.client() as c:
            for source, time_filter, state in _SOURCES:
                filters = [] if days is None else [{"filterName": time_filter, "operator": "=",
                                                     "value": f"0:{days}"}]
                for records in _pages(ctx, c, post, source, filters):
                    rows = [row_of(r, state) for r in records if isinstance(r, Mapping)]
                    del records
                    yield from tenable_csv.findings_of_rows(rows)

    return FindingsFeed(format=SYNC_FORMAT, findings=findings(), complete=request.since is None)
