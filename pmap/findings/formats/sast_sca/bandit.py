"""Bandit (Python SAST) JSON report: ``bandit -f json``.

Severity (Bandit's scale): HIGH -> high, MEDIUM -> medium, LOW -> low; UNDEFINED maps to nothing.
Bandit's separate confidence (HIGH/MEDIUM/LOW) is kept in ``extra['confidence']``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, text, to_int
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cwe_ids
from pmap.findings.formats.sniff import json_head

KEY = "bandit_json"
SEVERITIES = {"high": Severity.HIGH, "medium": Severity.MEDIUM, "low": Severity.LOW}


def _finding(r: Any) -> ParsedFinding:
    if not isinstance(r, dict):
        raise ReportError(KEY, "a result is not a JSON object", "results[]")
    issue = text(r.get("issue_text"))
    test_id = text(r.get("test_id"))
    if not issue and not test_id:
        raise ReportError(KEY, "a result has neither issue_text nor test_id", "results[]")
    cwe = as_dict(r.get("issue_cwe"))
    more = text(r.get("more_info"))
    return ParsedFinding(
        title=issue or test_id or "",
        vendor_severity=text(r.get("issue_severity")),
        description=issue,
        cwe_ids=cwe_ids(cwe.get("id")),
        rule_id=test_id,
        file_path=text(r.get("filename")),
        line=to_int(r.get("line_number")),
        references=[more] if more else [],
        extra={k: v for k, v in (("confidence", text(r.get("issue_confidence"))),
                                 ("test_name", text(r.get("test_name")))) if v},
    )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the ``results`` of a Bandit JSON report."""
    src = report.stream
    for r in json_reader.items_required(src, "results.item", KEY, "Bandit JSON report"):
        yield _finding(r)


def detect(head: bytes, filename: str | None) -> bool:
    """``results[].test_id`` with ``issue_severity``, or Bandit's ``metrics._totals`` + ``generated_at``."""
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    if info.has("results.item.test_id", "results.item.issue_severity"):
        return True
    # an empty report, or one whose per-file metrics push results past the head
    return info.has("generated_at", "metrics._totals") and info.any(
        "metrics._totals.SEVERITY.HIGH", "metrics._totals.CONFIDENCE.HIGH"
    )


FORMAT = ReportFormat(
    key=KEY,
    title="Bandit JSON",
    detect=detect,
    read=parse,
    syntax="json",
    json_root="object",
    what="a Bandit JSON report",
    map_severity=map_by_table(SEVERITIES),
)
