"""Bandit (Python SAST) JSON report: ``bandit -f json``.

Severity (Bandit's scale): HIGH -> high, MEDIUM -> medium, LOW -> low; UNDEFINED maps to nothing.
Bandit's separate confidence (HIGH/MEDIUM/LOW) is kept in ``extra['confidence']``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats.base import ParsedFinding, ReportError, ReportFormat, Severity, map_by_table
from pmap.findings.formats.sast_sca import _json
from pmap.findings.formats.sast_sca._util import as_dict, cwe_ids, json_head, not_a, text, to_int

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


def parse(stream: IO[bytes]) -> Iterator[ParsedFinding]:
    """Stream the ``results`` of a Bandit JSON report."""
    src = _json.rewindable(stream)
    start = src.tell()
    head = json_head(src.read(65536))
    src.seek(start)
    if head is None or head.root != "object":
        if not src.read(1):
            raise ReportError(KEY, "empty file: no JSON document", "byte 0")
        raise not_a(KEY, "Bandit JSON report", "the file is not a JSON object")
    for r in _json.items_required(src, "results.item", KEY, "Bandit JSON report"):
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
    parse=parse,
    map_severity=map_by_table(SEVERITIES),
)
