"""Semgrep JSON: the CLI's ``semgrep --json`` output and the Semgrep API's supply-chain ``vulns`` page.

Severity (Semgrep's documented scale): CRITICAL -> critical; ERROR and HIGH -> high; WARNING and
MEDIUM -> medium; INFO and LOW -> low (Semgrep documents INFO as "low severity");
EXPERIMENT and INVENTORY (non-security rule modes) -> info.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, parse_dt, text, to_int, uniq
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cve_ids, cwe_ids, ghsa_ids, is_placeholder
from pmap.findings.formats.sniff import json_head

KEY = "semgrep_json"
WHAT = "a Semgrep JSON report"

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
    if is_placeholder(vendor_fp):  # "requires login" on every result of a run without an account: no identity
        vendor_fp = None
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
        extra={k: v for k, v in (("fingerprint", vendor_fp), ("confidence", text(meta.get("confidence")))) if v},
        # Semgrep's match-based fingerprint tells apart two matches of a rule on one line (and is the same for a
        # match that only moved): added to the location (docs/finding-identity.md)
        identity=[f"fingerprint={vendor_fp}"] if vendor_fp else [],
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


def _api_status(f: dict[str, Any]) -> str | None:
    """A web API finding's status: fixed is ``fixed``; an ignore is a false positive or an acceptance."""
    status = (text(f.get("status")) or text(f.get("state")) or "").lower()
    triage = (text(f.get("triage_state")) or "").lower()
    if status == "fixed":
        return "fixed"
    if status in ("ignored", "muted") or triage == "ignored":
        return "false_positive" if (text(f.get("triage_reason")) or "").lower() == "false_positive" else "accepted"
    return None


def api_finding(f: Any) -> ParsedFinding:
    """One finding of the web API's ``GET /deployments/{slug}/findings`` (Code) as this format reads it."""
    if not isinstance(f, dict):
        raise ReportError(KEY, "a finding is not a JSON object", "findings[]")
    rule = text(f.get("rule_name"))
    message = text(f.get("rule_message"))
    if not rule:
        raise ReportError(KEY, "a finding has no rule_name", "findings[]")
    loc = as_dict(f.get("location"))
    meta = as_dict(f.get("rule"))
    return ParsedFinding(
        title=_first_line(message) or rule,
        vendor_severity=text(f.get("severity")),
        description=message,
        cwe_ids=cwe_ids(meta.get("cwe_names")),
        rule_id=rule,
        repository=text(as_dict(f.get("repository")).get("name")),
        file_path=text(loc.get("file_path")),
        line=to_int(loc.get("line")),
        first_seen=parse_dt(f.get("relevant_since")) or parse_dt(f.get("created_at")),
        status=_api_status(f),
        extra={k: v for k, v in (("finding_id", text(f.get("id"))), ("ref", text(f.get("ref"))),
                                 ("confidence", text(f.get("confidence")))) if v},
    )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream Semgrep CLI ``results`` (or API ``vulns``) as findings."""
    src, head = report.stream, report.json
    if "vulns" in head.paths:
        for v in json_reader.iter_json_items(src, "vulns.item", KEY):
            yield _api_vuln(v)
        return
    for r in json_reader.items_required(src, "results.item", KEY, WHAT):
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
    read=parse,
    syntax="json",
    json_root="object",
    what=WHAT,
    map_severity=map_by_table(SEVERITIES),
)
