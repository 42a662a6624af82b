"""Gitleaks JSON report (v8 ``RuleID``/``StartLine`` objects and the legacy v7 ``rule``/``offender`` ones).

The secret itself (``Secret``, ``Match``, ``offender``, ``line``) is never copied into a finding:
findings name the rule, file, line and commit only.

Severity: Gitleaks has no severity scale; every finding is a credential committed to a repository,
which PMAP rates high (DefectDojo does the same). The mapping is fixed, not derived from the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats.base import ParsedFinding, ReportError, ReportFormat, Severity, SeverityResult
from pmap.findings.formats.sast_sca import _json
from pmap.findings.formats.sast_sca._util import as_list, json_head, not_a, parse_dt, text, to_int

KEY = "gitleaks_json"
WHAT = "Gitleaks JSON report"


def _tags(value: Any) -> list[str]:
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return [t for t in (text(v) for v in as_list(value)) if t]


def _finding(item: Any) -> ParsedFinding:
    if not isinstance(item, dict):
        raise ReportError(KEY, "a leak is not a JSON object", "[]")
    if "RuleID" in item or "Description" in item:  # v8
        rule = text(item.get("RuleID")) or text(item.get("Description"))
        desc = text(item.get("Description")) or rule
        path, line = text(item.get("File")), to_int(item.get("StartLine"))
        commit, date = text(item.get("Commit")), item.get("Date")
        tags, repo = _tags(item.get("Tags")), None
    else:  # v7 and older
        rule = text(item.get("rule"))
        desc = rule
        path, line = text(item.get("file")), to_int(item.get("lineNumber"))
        commit, date = text(item.get("commit")), item.get("date")
        tags, repo = _tags(item.get("tags")), text(item.get("repoURL")) or None
    if not rule:
        raise ReportError(KEY, "a leak names no rule (RuleID/rule)", "[]")
    where = f" in {path}" if path else ""
    extra: dict[str, Any] = {}
    if commit:
        extra["commit"] = commit
    if tags:
        extra["tags"] = tags
    return ParsedFinding(
        title=f"Hard-coded secret ({desc}){where}",
        vendor_severity=None,
        description=f"Gitleaks rule {rule!r} matched a secret{where}"
        + (f" at line {line}" if line else "") + (f" (commit {commit})" if commit else "") + ".",
        cwe_ids=[798],
        rule_id=rule,
        repository=repo,
        file_path=path,
        line=line,
        remediation="Revoke and rotate the secret, then remove it from the repository history.",
        first_seen=parse_dt(date),
        extra=extra,
    )


def parse(stream: IO[bytes]) -> Iterator[ParsedFinding]:
    """Stream the leaks of a Gitleaks JSON array (``null`` means no leaks)."""
    src = _json.rewindable(stream)
    start = src.tell()
    first = src.read(65536)
    src.seek(start)
    body = first.lstrip(b"\xef\xbb\xbf").strip()
    if body == b"null":
        return
    head = json_head(first)
    if head is None or head.root != "array":
        if not body:
            raise ReportError(KEY, "empty file: no JSON document", "byte 0")
        raise not_a(KEY, WHAT, "expected a JSON array of leaks")
    for item in _json.iter_items(src, "item", KEY):
        yield _finding(item)


def map_severity(finding: ParsedFinding) -> SeverityResult:
    """Every Gitleaks finding is a leaked secret: high (Gitleaks itself has no severity)."""
    return SeverityResult(Severity.HIGH, "vendor")


def detect(head: bytes, filename: str | None) -> bool:
    """A JSON array of objects with v8 ``RuleID``+``Secret``/``Match`` or v7 ``rule``+``offender``."""
    info = json_head(head)
    if info is None or info.root != "array":
        return False
    return info.has("item.RuleID", "item.StartLine") or info.has("item.rule", "item.offender")


FORMAT = ReportFormat(
    key=KEY,
    title="Gitleaks JSON",
    detect=detect,
    parse=parse,
    map_severity=map_severity,
)
