"""GitHub vulnerability alerts JSON: GraphQL ``vulnerabilityAlerts`` (Dependabot) pages at any nesting
— one repository (``data.repository``), a search over repositories (``data.search.nodes[]``), an
organization's or user's repositories (``data.organization.repositories.nodes[]``, ``edges[].node``) —
and the REST API's alert arrays: Dependabot (``/dependabot/alerts``), code scanning (``/code-scanning/alerts``)
and secret scanning (``/secret-scanning/alerts``), of a repository, an organization or an enterprise (the
organization and enterprise lists name each alert's ``repository``, which is the findings' repository, so the
same alert kind in two repositories stays two findings; a repository's own list names none).

Secret scanning alerts: the title is the secret type's display name, the rule the ``secret_type``, the place
``first_location_detected`` (path and line, when GitHub gives it), CWE-798; the alert ``number`` is part of
the identity (two leaked keys of one type in a repository are two findings, located or not). The ``secret``
itself is never kept. GitHub gives these alerts no severity: they are unmapped (unknown) unless a rule sets
one; ``validity`` (active/inactive/unknown) is kept in ``extra``. A resolved alert is ``fixed`` when revoked
(or resolved without a reason), ``false_positive`` (false positive, pattern edited or deleted) or ``accepted``
(won't fix, used in tests).

Severity (GitHub's scales): advisories CRITICAL, HIGH, MODERATE -> medium, LOW; code scanning
``security_severity_level`` critical/high/medium/low, else the rule severity error -> high,
warning -> medium, note -> info (as SARIF levels).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, parse_dt, text, to_float, to_int, uniq
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cvss3_base_score, cvss_version, cwe_ids, cwes_in_text, vuln_ids
from pmap.findings.formats.sniff import json_head

KEY = "github_vulnerability_json"
WHAT = "a GitHub vulnerability alerts JSON"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "note": Severity.INFO,
}


def _status(state: str | None, dismissed: Any, reason: str | None) -> str | None:
    state = (state or "").lower()
    if state == "fixed":
        return "fixed"
    if state in ("dismissed", "auto_dismissed") or (dismissed and dismissed != "None"):
        false_positive = (reason or "").lower() in ("inaccurate", "false positive", "false_positive")
        return "false_positive" if false_positive else "accepted"
    return None


def _graphql_alert(a: Any, repo: str | None) -> ParsedFinding:
    if not isinstance(a, dict):
        raise ReportError(KEY, "an alert is not a JSON object", "vulnerabilityAlerts.nodes[]")
    sv = as_dict(a.get("securityVulnerability"))
    adv = as_dict(sv.get("advisory"))
    pkg = as_dict(sv.get("package"))
    ids = [text(as_dict(i).get("value")) for i in as_list(adv.get("identifiers"))]
    cves, others = vuln_ids([i for i in ids if i])
    title = text(adv.get("summary")) or (others[0] if others else cves[0] if cves else None)
    if not title:
        raise ReportError(KEY, "an alert has no advisory summary or identifier", "vulnerabilityAlerts.nodes[]")
    cvss = as_dict(adv.get("cvss"))
    vector = text(cvss.get("vectorString"))
    patched = text(as_dict(sv.get("firstPatchedVersion")).get("identifier"))
    cwes = [as_dict(c).get("cweId") for c in as_list(as_dict(adv.get("cwes")).get("nodes"))]
    return ParsedFinding(
        title=title,
        vendor_severity=text(sv.get("severity")) or text(adv.get("severity")),
        description=text(adv.get("description")),
        cve_ids=cves,
        cwe_ids=cwe_ids(cwes),
        other_ids=others,
        rule_id=(others[0] if others else cves[0] if cves else None),
        cvss_version=cvss_version(vector),
        cvss_vector=vector,
        cvss_score=to_float(cvss.get("score")) or cvss3_base_score(vector),
        repository=repo,
        file_path=text(a.get("vulnerableManifestPath")),
        package_name=text(pkg.get("name")),
        package_version=text(a.get("vulnerableRequirements")),
        fixed_version=patched,
        references=uniq(text(as_dict(r).get("url")) for r in as_list(adv.get("references"))),
        first_seen=parse_dt(a.get("createdAt")),
        status=_status(text(a.get("state")), a.get("dismissedAt"), text(a.get("dismissReason"))),
        extra={k: v for k, v in (("alert_id", text(a.get("id"))), ("ecosystem", text(pkg.get("ecosystem")))) if v},
    )


# a resolved secret scanning alert's resolution -> PMAP's status (see the module doc)
_SECRET_RESOLUTIONS = {"revoked": "fixed", "false_positive": "false_positive", "pattern_edited": "false_positive",
                       "pattern_deleted": "false_positive", "wont_fix": "accepted", "used_in_tests": "accepted"}


def _secret_alert(a: dict[str, Any], common: dict[str, Any]) -> ParsedFinding:
    stype = text(a.get("secret_type"))
    name = text(a.get("secret_type_display_name")) or stype
    if not name:
        raise ReportError(KEY, "a secret scanning alert has no secret type", "[].secret_type")
    loc = as_dict(a.get("first_location_detected"))
    resolved = (text(a.get("state")) or "").lower() == "resolved"
    number = to_int(a.get("number"))
    # the (possibly partial) secret is never copied: a.get("secret")
    return ParsedFinding(
        title=f"Leaked secret: {name}",
        description=f"GitHub secret scanning found a {name} secret" + (f" in {loc['path']}." if loc.get("path")
                                                                         else "."),
        cwe_ids=[798],
        rule_id=stype or name,
        file_path=text(loc.get("path")),
        line=to_int(loc.get("start_line")),
        remediation="Revoke and rotate the secret, then remove it from the repository and its history.",
        identity=[f"alert:{number}"] if number is not None else [],
        **{**common,
           "status": (_SECRET_RESOLUTIONS.get((text(a.get("resolution")) or "").lower(), "fixed")
                      if resolved else None),
           "extra": {**common["extra"], **{k: v for k, v in (("validity", text(a.get("validity"))),) if v}}},
    )


def _rest_alert(a: Any) -> ParsedFinding:
    if not isinstance(a, dict):
        raise ReportError(KEY, "an alert is not a JSON object", "[]")
    repo = as_dict(a.get("repository"))  # organization and enterprise lists only
    common: dict[str, Any] = {  # the fields every alert kind shares
        "first_seen": parse_dt(a.get("created_at")),
        "status": _status(text(a.get("state")), a.get("dismissed_at"), text(a.get("dismissed_reason"))),
        "references": [u for u in (text(a.get("html_url")),) if u],
        "repository": text(repo.get("full_name")) or text(repo.get("name")),
        "extra": {k: v for k, v in (("number", to_int(a.get("number"))),) if v is not None},
    }
    if "secret_type" in a or "secret_type_display_name" in a:  # secret scanning
        return _secret_alert(a, common)
    if "rule" in a:  # code scanning
        rule = as_dict(a.get("rule"))
        inst = as_dict(a.get("most_recent_instance"))
        loc = as_dict(inst.get("location"))
        tags = [t for t in as_list(rule.get("tags")) if isinstance(t, str)]
        title = text(rule.get("description")) or text(rule.get("name")) or text(rule.get("id"))
        if not title:
            raise ReportError(KEY, "a code scanning alert has no rule", "[].rule")
        return ParsedFinding(
            title=title,
            vendor_severity=text(rule.get("security_severity_level")) or text(rule.get("severity")),
            description=text(as_dict(inst.get("message")).get("text")) or text(rule.get("full_description")),
            cwe_ids=cwes_in_text(*[t.replace("external/cwe/", "").replace("cwe-", "CWE-") for t in tags]),
            rule_id=text(rule.get("id")),
            file_path=text(loc.get("path")),
            line=to_int(loc.get("start_line")),
            tool=text(as_dict(a.get("tool")).get("name")),
            **common,
        )
    adv = as_dict(a.get("security_advisory"))
    vuln = as_dict(a.get("security_vulnerability"))
    dep = as_dict(a.get("dependency"))
    pkg = as_dict(dep.get("package")) or as_dict(vuln.get("package"))
    cves, others = vuln_ids(text(adv.get("ghsa_id")), text(adv.get("cve_id")),
                            [text(as_dict(i).get("value")) for i in as_list(adv.get("identifiers"))])
    title = text(adv.get("summary")) or (others[0] if others else None)
    if not title:
        raise ReportError(KEY, "an alert is neither a code scanning nor a Dependabot alert", "[]")
    cvss = as_dict(adv.get("cvss"))
    vector = text(cvss.get("vector_string"))
    return ParsedFinding(
        title=title,
        vendor_severity=text(vuln.get("severity")) or text(adv.get("severity")),
        description=text(adv.get("description")),
        cve_ids=cves,
        cwe_ids=cwe_ids([as_dict(c).get("cwe_id") for c in as_list(adv.get("cwes"))]),
        other_ids=others,
        rule_id=text(adv.get("ghsa_id")) or (cves[0] if cves else None),
        cvss_version=cvss_version(vector),
        cvss_vector=vector,
        cvss_score=to_float(cvss.get("score")) or None,
        file_path=text(dep.get("manifest_path")),
        package_name=text(pkg.get("name")),
        fixed_version=text(as_dict(vuln.get("first_patched_version")).get("identifier")),
        **common,
    )


def rest_alert(alert: Any) -> ParsedFinding:
    """One alert of the REST API (code scanning, Dependabot or secret scanning) as this format reads it."""
    return _rest_alert(alert)


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream alerts from a GraphQL page (repository or search) or a REST alert array."""
    src, head = report.stream, report.json
    if head.root == "array":
        for a in json_reader.iter_json_items(src, "item", KEY):
            yield _rest_alert(a)
        return
    if "data.search" in head.paths:
        for repo in json_reader.iter_json_items(src, "data.search.nodes.item", KEY):
            repo = as_dict(repo)
            name = text(repo.get("nameWithOwner")) or text(repo.get("name"))
            for a in as_list(as_dict(repo.get("vulnerabilityAlerts")).get("nodes")):
                yield _graphql_alert(a, name)
        return
    if "data.repository" in head.paths:
        repo = text(head.values.get("data.repository.nameWithOwner")) or text(head.values.get("data.repository.name"))
        for a in json_reader.items_required(src, "data.repository.vulnerabilityAlerts.nodes.item", KEY, WHAT):
            yield _graphql_alert(a, repo)
        return
    if "data" in head.paths:  # any other nesting: organization, user or viewer repositories, edges, ...
        yield from _graphql_anywhere(json_reader.load_json(src, KEY))
        return
    raise not_a(KEY, WHAT, "expected a GraphQL 'data' page or a REST alert array")


def _graphql_anywhere(doc: Any) -> Iterator[ParsedFinding]:
    """Every ``vulnerabilityAlerts`` connection under ``data``, at any depth (a GraphQL page is one
    small document: at most 100 nodes per connection), each alert with the repository holding it.

    Connections are read as ``nodes[]`` and as ``edges[].node``; the repository is the object that
    holds the connection (``nameWithOwner``, else ``<owner login>/<name>``, else ``name``).
    """
    data = as_dict(doc).get("data")
    if not isinstance(data, dict):
        raise not_a(KEY, WHAT, "the GraphQL page has no 'data' object")
    # an explicit stack, not recursion: the depth guard allows 256 levels; popped in document order
    stack: list[tuple[Any, str | None]] = [(data, None)]
    found: list[tuple[Any, str | None]] = []
    connections = 0
    while stack:
        node, owner = stack.pop()
        if isinstance(node, list):
            stack.extend((item, owner) for item in reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        # an organization or user (``login``), or a repository's ``owner``, owns the repositories below
        login = text(node.get("login")) or text(as_dict(node.get("owner")).get("login")) or owner
        alerts = node.get("vulnerabilityAlerts")
        if isinstance(alerts, dict):
            connections += 1
            name = text(node.get("name"))
            repo = text(node.get("nameWithOwner")) or (f"{login}/{name}" if login and name else name)
            found.extend((a, repo) for a in as_list(alerts.get("nodes")))
            found.extend((as_dict(e).get("node"), repo) for e in as_list(alerts.get("edges")))
        stack.extend((v, login) for k, v in reversed(node.items()) if k != "vulnerabilityAlerts")
    if not connections:
        raise not_a(KEY, WHAT, "the GraphQL page holds no 'vulnerabilityAlerts' connection", "$.data")
    for a, repo in found:
        yield _graphql_alert(a, repo)


def detect(head: bytes, filename: str | None) -> bool:
    """GraphQL ``vulnerabilityAlerts`` pages, or REST alert arrays (``security_advisory``, code
    scanning ``rule`` + ``most_recent_instance``, or secret scanning ``secret_type``)."""
    info = json_head(head)
    if info is None:
        return False
    if info.root == "object":
        return info.any("data.repository.vulnerabilityAlerts", "data.search.nodes.item.vulnerabilityAlerts") or any(
            p.endswith(".vulnerabilityAlerts") and p.startswith("data.") for p in info.paths)
    return info.has("item.number", "item.security_advisory") or info.has(
        "item.rule", "item.most_recent_instance"
    ) or info.has("item.number", "item.secret_type")


FORMAT = ReportFormat(
    key=KEY,
    title="GitHub vulnerability alerts JSON (GraphQL / REST)",
    detect=detect,
    read=parse,
    syntax="json",
    what=WHAT,
    map_severity=map_by_table(SEVERITIES),
)
