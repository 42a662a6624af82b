"""ProjectDiscovery nuclei results: JSON lines (``-jsonl``, older ``-json``) or a JSON array (``-je``).

Nuclei v2 spells keys ``templateID``/``matched``, v3 ``template-id``/``matched-at``; both are read.
A result is identified by its template and matcher (``[template-id:matcher-name]`` in nuclei's
own output), so one template matching several technologies yields several findings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import (
    as_dict,
    as_list,
    as_str,
    compact,
    cvss_score,
    evidence,
    parse_dt,
    port_of,
    split_url,
    uniq,
    urls_in,
)
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cve_ids, cvss_version, cwe_ids
from pmap.findings.formats.json_reader import iter_json_items, iter_json_lines
from pmap.findings.formats.sniff import HEAD_SIZE, first_json_byte, head_text

KEY = "nuclei_json"

# nuclei template severities: info, low, medium, high, critical, unknown (unknown stays Unknown)
SEVERITY_TABLE = {
    "info": Severity.INFO,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
_MARKERS = re.compile(
    r'"(?:template-id|templateID|template)"\s*:\s*"[^"]*".*?"info"\s*:\s*\{|"info"\s*:\s*\{.*?"(?:template-id|templateID)"',
    re.DOTALL,
)


def detect(head: bytes, filename: str | None) -> bool:
    """Nuclei results: JSON (lines or array) with template-id and info keys."""
    first = first_json_byte(head)
    if first not in ("{", "["):
        return False
    text = head_text(head)[:20000]
    return bool(_MARKERS.search(text)) and ('"matched-at"' in text or '"matched"' in text or '"host"' in text)


def _location(item: dict[str, Any]) -> tuple[str | None, str | None, int | None]:
    """(url, host, port) of a result: matched-at may be a URL or ``host:port``."""
    matched = (as_str(item.get("matched-at")) or as_str(item.get("matched")) or as_str(item.get("url"))
               or as_str(item.get("host")))
    if matched:
        matched = re.sub(r"^/+(?=https?://)", "", matched)  # javascript templates emit "/http://host/"
    if matched and "://" in matched:
        host, port, _scheme = split_url(matched)
        return matched, host, port
    if matched:
        m = re.match(r"^\[?([^\]]+?)\]?(?::(\d+))?$", matched)
        if m:
            return None, m.group(1), port_of(m.group(2)) or port_of(item.get("port"))
    return None, as_str(item.get("ip")), port_of(item.get("port"))


def _finding(item: dict[str, Any]) -> ParsedFinding:
    info = as_dict(item.get("info"))
    cls = as_dict(info.get("classification"))
    template = as_str(item.get("template-id")) or as_str(item.get("templateID")) or as_str(item.get("template"))
    matcher = as_str(item.get("matcher-name")) or as_str(item.get("matcher_name"))
    # a template with named extractors and no matcher name (dns/ssl/tech inventories) reports each extractor as a
    # result of its own: the extractor's name then tells them apart, as matcher-name does in the rule id
    extractor = None if matcher else as_str(item.get("extractor-name")) or as_str(item.get("extractor_name"))
    url, host, port = _location(item)
    vector = as_str(cls.get("cvss-metrics"))
    tags = info.get("tags")
    tag_list = [t.strip() for t in (tags.split(",") if isinstance(tags, str) else as_list(tags))
                if isinstance(t, str) and t.strip()]
    extracted = [str(x) for x in as_list(item.get("extracted-results") or item.get("extracted_results"))]
    refs = info.get("reference")
    return ParsedFinding(
        title=as_str(info.get("name")) or template or "nuclei result",
        vendor_severity=as_str(info.get("severity")),
        description=as_str(info.get("description")),
        cve_ids=cve_ids(as_list(cls.get("cve-id"))),
        cwe_ids=cwe_ids(as_list(cls.get("cwe-id"))),
        rule_id=f"{template}:{matcher}" if template and matcher else template,
        identity=[f"extractor={extractor}"] if extractor else [],
        cvss_version=cvss_version(vector),
        cvss_vector=vector,
        cvss_score=cvss_score(cls.get("cvss-score")),
        host=host,
        ip=as_str(item.get("ip")),
        port=port,
        url=url,
        remediation=as_str(info.get("remediation")),
        references=uniq(urls_in(*as_list(refs)) if refs else []),
        last_seen=parse_dt(as_str(item.get("timestamp"))),
        extra=compact({
            "template": template,
            "matcher": matcher,
            "extractor": extractor,
            "type": as_str(item.get("type")),
            "tags": tag_list,
            "extracted": evidence("\n".join(extracted)) if extracted else None,
            "curl": evidence(as_str(item.get("curl-command"))),
        }),
    )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from nuclei JSON lines or a JSON array, one per result."""
    head, stream = report.head, report.stream
    first = first_json_byte(head)
    if first == "":
        if len(head) < HEAD_SIZE:
            return  # nuclei writes an empty file when nothing matched
        raise ReportError(KEY, "not nuclei JSON output: no content in the first 64 KiB", "line 1")
    if first == "[":
        items: Iterator[Any] = iter_json_items(stream, "item", KEY)
    elif first == "{":
        items = iter_json_lines(stream, KEY)
    else:
        raise ReportError(KEY, "not nuclei JSON output: expected JSON lines or an array", "line 1")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ReportError(KEY, "result must be a JSON object", f"result {index + 1}")
        if not isinstance(item.get("info"), dict) and not (item.get("template-id") or item.get("templateID")):
            raise ReportError(KEY, "not a nuclei result: missing 'info' and 'template-id'", f"result {index + 1}")
        yield _finding(item)


FORMAT = ReportFormat(
    key=KEY,
    title="Nuclei JSON / JSON lines",
    detect=detect,
    read=parse,
    map_severity=map_by_table(SEVERITY_TABLE),
    empty_is_clean=True,  # nuclei writes an empty file (or none) when nothing matched
)
