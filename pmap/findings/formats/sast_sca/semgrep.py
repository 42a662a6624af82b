"""Semgrep JSON: the CLI's ``semgrep --json`` output and the Semgrep API's supply-chain ``vulns`` page.

Severity (Semgrep's documented scale): CRITICAL -> critical; ERROR and HIGH -> high; WARNING and
MEDIUM -> medium; INFO and LOW -> low (Semgrep documents INFO as "low severity");
EXPERIMENT and INVENTORY (non-security rule modes) -> info.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats.base import ParsedFinding, ReportError, ReportFormat, Severity, map_by_table
from pmap.findings.formats.sast_sca import _json
from pmap.findings.formats.sast_sca._util import (
    as_dict,
    as_list,
    cve_ids,
    cwe_ids,
    ghsa_ids,
    json_head,
    not_a,
    parse_dt,
    text,
    to_int,
    uniq,
)

KEY = "semgrep_json"
WHAT = "Semgrep JSON report"

SEVERITIES = {
    "critical": Severity.CRITICAL,
    "error": Severity.HIGH,
    "high": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "info": Severity.LOW,
    "low": Severity.LOW,
    "experiment": Severity.INFO,
    "inventory": Severity.INFO,
}


def _first_line(value: str | None, limit: int = 200) -> str | None:
    if not value:
        return None
    line = value.strip().splitlines()[0].strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _cli_result(r: Any) -> ParsedFinding:
    if not isinstance(r, dict):
        raise ReportError(KEY, "a result is not a JSON object", "results[]")
    check_id = text(r.get("check_id"))
    extra = as_dict(r.get("extra"))
    meta = as_dict(extra.get("metadata"))
    message = text(extra.get("message"))
    if not check_id and not message:
        raise ReportError(KEY, "a result has neither check_id nor message", "results[]")
    sca = as_dict(as_dict(extra.get("sca_info")).get("dependency_match"))
    dep = as_dict(sca.get("found_dependency"))
    refs = [u for u in as_list(meta.get("references")) if isinstance(u, str)]
    refs += [u for u in (text(meta.get("source")), text(meta.get("shortlink"))) if u]
    vendor_fp = text(extra.get("fingerprint"))
    cve_src = [text(meta.get("sca-vuln-database-identifier")), check_id]
    return ParsedFinding(
        title=_first_line(message) or check_id or "",
        vendor_severity=text(extra.get("severity")),
        description=message,
        cve_ids=cve_ids(*cve_src),
        cwe_ids=cwe_ids(meta.get("cwe")),
        other_ids=ghsa_ids(*refs),
        rule_id=check_id,
        file_path=text(r.get("path")),
        line=to_int(as_dict(r.get("start")).get("line")),
        package_name=text(dep.get("package")),
        package_version=text(dep.get("version")),
        remediation=text(extra.get("fix")),
        references=uniq(refs),
        status="suppressed" if extra.get("is_ignored") is True else None,
        extra={k: v for k, v in (("fingerprint", vendor_fp if vendor_fp != "requires login" else None),
                                 ("confidence", text(meta.get("confidence")))) if v},
    )


def _api_vuln(v: Any) -> ParsedFinding:
    if not isinstance(v, dict):
        raise ReportError(KEY, "a vuln is not a JSON object", "vulns[]")
    adv = as_dict(v.get("advisory"))
    refs = as_dict(adv.get("references"))
    dep = as_dict(v.get("matchedDependency"))
    loc = as_dict(v.get("dependencyFileLocation"))
    safe = as_dict(v.get("closestSafeDependency"))
    triage = as_dict(v.get("triage"))
    urls = [u for u in as_list(refs.get("urls")) if isinstance(u, str)]
    title = text(v.get("title")) or text(adv.get("title"))
    if not title:
        raise ReportError(KEY, "a vuln has no title", "vulns[]")
    state = (text(triage.get("status")) or "").lower()
    return ParsedFinding(
        title=title,
        vendor_severity=text(adv.get("severity")) or text(v.get("severity")),
        description=text(adv.get("description")),
        cve_ids=cve_ids(refs.get("cveIds")),
        cwe_ids=cwe_ids(refs.get("cweIds")),
        other_ids=ghsa_ids(*urls),
        rule_id=text(adv.get("ruleId")),
        repository=text(v.get("repositoryName")),
        file_path=text(loc.get("path")),
        line=to_int(loc.get("startLine")),
        package_name=text(dep.get("name")),
        package_version=text(dep.get("versionSpecifier")),
        fixed_version=text(safe.get("versionSpecifier")),
        references=uniq(urls),
        first_seen=parse_dt(v.get("openedAt")),
        status={"closed": "fixed", "ignored": "accepted", "fixed": "fixed"}.get(state),
        extra={k: val for k, val in (("reachability", text(v.get("exposureType"))),) if val},
    )


def parse(stream: IO[bytes]) -> Iterator[ParsedFinding]:
    """Stream Semgrep CLI ``results`` (or API ``vulns``) as findings."""
    src = _json.rewindable(stream)
    start = src.tell()
    head = json_head(src.read(65536))
    src.seek(start)
    if head is None or head.root != "object":
        if not src.read(1):
            raise ReportError(KEY, "empty file: no JSON document", "byte 0")
        raise not_a(KEY, WHAT, "the file is not a JSON object")
    if "vulns" in head.paths:
        for v in _json.iter_items(src, "vulns.item", KEY):
            yield _api_vuln(v)
        return
    for r in _json.items_required(src, "results.item", KEY, WHAT):
        yield _cli_result(r)


def detect(head: bytes, filename: str | None) -> bool:
    """``results[].check_id`` (CLI), an empty CLI report, or API ``vulns[].advisory.ruleId``."""
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    if info.has("results.item.check_id") or info.has("vulns.item.advisory.ruleId"):
        return True
    # an empty CLI report: exactly Semgrep's top-level keys, no results
    keys = info.top_keys()
    return "results" in keys and "errors" in keys and keys <= {
        "results", "errors", "paths", "version", "interfile_languages_used", "skipped_rules", "time",
        "engine_requested",
    } and not any(p.startswith("results.item") for p in info.paths)


FORMAT = ReportFormat(
    key=KEY,
    title="Semgrep JSON",
    detect=detect,
    parse=parse,
    map_severity=map_by_table(SEVERITIES),
)
