"""Invicti (formerly Netsparker) and Acunetix 360 JSON vulnerability reports, and Invicti Enterprise's issue
list (``GET /api/1.0/issues/allissues``, :func:`api_issue`), which a sync reads as ``invicti_json``.

Acunetix 360 is built on the Invicti engine and exports the same document
(``{"Generated", "Target", "Vulnerabilities": [...]}``); the two keys share this parser and are
told apart by the vendor named in the report text. A report naming neither is Invicti's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import (
    as_dict,
    as_str,
    compact,
    cvss_score,
    evidence,
    only_list,
    parse_dt,
    split_url,
    strip_html,
    urls_in,
)
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cve_ids, cvss_version, cwe_ids
from pmap.findings.formats.json_reader import iter_json_items
from pmap.findings.formats.sniff import HEAD_SIZE, first_json_byte, head_text

# Invicti / Acunetix 360 severity: Critical, High, Medium, Low, Information, BestPractice
# (a recommendation, mapped to Info); CVSS bands are the fallback
SEVERITY_TABLE = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "information": Severity.INFO,
    "informational": Severity.INFO,
    "bestpractice": Severity.INFO,
}
_SHAPE = re.compile(r'"Vulnerabilities"\s*:\s*\[')
_SHAPE_HINT = re.compile(r'"Target"\s*:\s*\{')  # Trivy also has "Vulnerabilities", with a string Target
_SHAPE_KEYS = re.compile(r'"(?:ScanId|Certainty|Generated)"\s*:')
_ACUNETIX = re.compile(r"Acunetix ?360|acunetix\.com", re.IGNORECASE)
_DATE = ("%d/%m/%Y %I:%M %p", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M")
_UTC_SUFFIX = re.compile(r"^(.*?)\s*\(UTC(?:([+-])(\d{2}):(\d{2}))?\)\s*$")


def _dt(value: str | None) -> datetime | None:
    """Invicti dates: day-first, optionally suffixed with the offset as ``(UTC-06:00)``."""
    if not value:
        return None
    m = _UTC_SUFFIX.match(value)
    if not m:
        return parse_dt(value, *_DATE)
    base = parse_dt(m.group(1), *_DATE)
    if base is None or not m.group(2):
        return base
    offset = timedelta(hours=int(m.group(3)), minutes=int(m.group(4)))
    return base.replace(tzinfo=timezone(-offset if m.group(2) == "-" else offset))
_STATES = {"acceptedrisk": "risk_accepted", "falsepositive": "false_positive", "fixedunconfirmed": "fixed",
           "fixedconfirmed": "fixed", "fixedcantretest": "fixed", "ignored": "ignored", "revived": "reopened",
           "present": "open", "new": "open"}


def _is_shape(text: str) -> bool:
    return bool(_SHAPE.search(text)) and bool(_SHAPE_HINT.search(text)) and bool(_SHAPE_KEYS.search(text))


_INVICTI = re.compile(r"Netsparker|Invicti", re.IGNORECASE)


def _names_acunetix(text: str, filename: str | None) -> bool:
    # the report text names its product in descriptions and references; a report with no
    # vulnerabilities names none, and then the file name is the only hint
    if _ACUNETIX.search(text):
        return True
    return not _INVICTI.search(text) and "acunetix" in (filename or "").lower()


def detect_acunetix360(head: bytes, filename: str | None) -> bool:
    """An Invicti-engine JSON report that names Acunetix 360 (or, naming no vendor, is so named)."""
    text = head_text(head)
    return first_json_byte(head) == "{" and _is_shape(text) and _names_acunetix(text, filename)


def detect_invicti(head: bytes, filename: str | None) -> bool:
    """An Invicti/Netsparker JSON report (the engine's shape, not Acunetix 360's)."""
    text = head_text(head)
    return first_json_byte(head) == "{" and _is_shape(text) and not _names_acunetix(text, filename)


def _status(state: str | None) -> str | None:
    if not state:
        return None
    states = [_STATES.get(s.strip().lower().replace(" ", ""), s.strip().lower()) for s in state.split(",")]
    for preferred in ("false_positive", "risk_accepted", "fixed", "ignored", "reopened"):
        if preferred in states:
            return preferred
    return states[0] if states else None


def _cvss(classification: dict[str, Any]) -> tuple[float | None, str | None, str | None]:
    for key in ("Cvss40", "Cvss31", "Cvss"):
        block = classification.get(key)
        if not isinstance(block, dict):
            continue
        vector = as_str(block.get("Vector"))
        base = block.get("BaseScore")
        score = cvss_score(base.get("Value") if isinstance(base, dict) else base)
        if score is not None or vector:
            return score, vector, cvss_version(vector) or {"Cvss40": "4.0", "Cvss31": "3.1"}.get(key, "3.0")
    return None, None, None


_GENERATED = re.compile(r'"Generated"\s*:\s*"([^"]+)"')


def _finding(v: dict[str, Any], generated: datetime | None) -> ParsedFinding:
    classification = as_dict(v.get("Classification"))
    score, vector, version = _cvss(classification)
    url = as_str(v.get("Url"))
    host, port, _scheme = split_url(url)
    request = as_dict(v.get("HttpRequest"))
    params = only_list(request.get("Parameters"))
    vulnerable = [as_str(p.get("Name")) for p in params if isinstance(p, dict) and p.get("Vulnerable")]
    known = only_list(v.get("KnownVulnerabilities"))
    description = strip_html(as_str(v.get("Description")))
    impact = strip_html(as_str(v.get("Impact")))
    return ParsedFinding(
        title=as_str(v.get("Name")) or as_str(v.get("Type")) or "Invicti vulnerability",
        vendor_severity=as_str(v.get("Severity")),
        description="\n\n".join(p for p in (description, f"Impact: {impact}" if impact else None) if p) or None,
        cve_ids=cve_ids([as_str(k.get("Title")) for k in known if isinstance(k, dict)], as_str(v.get("Name"))),
        cwe_ids=cwe_ids(as_str(classification.get("Cwe"))),
        rule_id=as_str(v.get("Type")),
        cvss_version=version,
        cvss_vector=vector,
        cvss_score=score,
        host=host,
        port=port,
        url=url,
        parameter=next((p for p in vulnerable if p), None),
        remediation=strip_html(as_str(v.get("RemedialProcedure"))) or strip_html(as_str(v.get("RemedialActions"))),
        references=urls_in(as_str(v.get("ExternalReferences")), as_str(v.get("RemedyReferences"))),
        first_seen=_dt(as_str(v.get("FirstSeenDate"))),
        # older exports have no per-issue dates; the report's generation time bounds the observation
        last_seen=_dt(as_str(v.get("LastSeenDate"))) or generated,
        status=_status(as_str(v.get("State"))),
        extra=compact({
            "certainty": v.get("Certainty") if isinstance(v.get("Certainty"), int) else None,
            "confirmed": v.get("Confirmed") if isinstance(v.get("Confirmed"), bool) else None,
            "lookup_id": as_str(v.get("LookupId")),
            "method": as_str(request.get("Method")),
            "proof": evidence(strip_html(as_str(v.get("ProofOfConcept")))),
            "owasp": as_str(classification.get("Owasp")),
            "capec": as_str(classification.get("Capec")),
        }),
    )


def api_issue(item: Any, read_date: Callable[[str | None], datetime | None] = _dt) -> ParsedFinding:
    """One issue of Invicti Enterprise's ``GET /api/1.0/issues/allissues`` list as ``invicti_json`` reads the
    report's vulnerability: ``Title`` is the name, ``VulnerabilityDetail``/``Remedy`` (or ``Actions``) the texts,
    ``Id`` the lookup id; the issue's dates are in the account's own format, read by ``read_date``."""
    if not isinstance(item, dict):
        raise ReportError("invicti_json", "an issue is not a JSON object", "List[]")
    if not as_str(item.get("Title")) and not as_str(item.get("Type")):
        raise ReportError("invicti_json", "an issue has neither Title nor Type", "List[]")
    classification = dict(as_dict(item.get("Classification")))
    vector = as_str(item.get("Cvss31VectorString")) or as_str(item.get("CvssVectorString"))
    if vector and not any(isinstance(classification.get(k), dict) for k in ("Cvss40", "Cvss31", "Cvss")):
        classification["Cvss31" if "CVSS:3.1" in vector else "Cvss"] = {"Vector": vector}
    params = [{"Name": p.get("Name"), "Vulnerable": True} for p in only_list(item.get("Parameters"))
              if isinstance(p, dict) and p.get("Name")]
    finding = _finding({
        "Name": item.get("Title"), "Type": item.get("Type"), "Severity": item.get("Severity"), "Url": item.get("Url"),
        "State": item.get("State"), "Certainty": item.get("Certainty"),
        "Confirmed": item.get("LatestVulnerabilityIsConfirmed"), "LookupId": item.get("Id"),
        "Classification": classification, "Description": item.get("VulnerabilityDetail"),
        "Impact": item.get("Impact"), "RemedialProcedure": item.get("Remedy") or item.get("Actions"),
        "ExternalReferences": item.get("ExternalReferences"), "RemedyReferences": item.get("RemedyReferences"),
        "ProofOfConcept": item.get("ProofOfConcept"), "HttpRequest": {"Parameters": params},
        "KnownVulnerabilities": [],
    }, None)
    finding.first_seen = read_date(as_str(item.get("FirstSeenDate")))
    finding.last_seen = read_date(as_str(item.get("LastSeenDate")))
    website = as_str(item.get("WebsiteName"))
    if website:
        finding.extra["website"] = website
    return finding


def _parser(key: str, vendor: str) -> Callable[[Report], Iterator[ParsedFinding]]:
    def parse(report: Report) -> Iterator[ParsedFinding]:
        head, stream = report.head, report.stream
        if not _SHAPE.search(head_text(head)):
            raise ReportError(key, f"not {vendor} JSON report: missing 'Vulnerabilities'", "$")
        if len(head) < HEAD_SIZE and "Vulnerabilities" not in report.json.top_keys():
            # the whole file is in the head and its 'Vulnerabilities' are nested: another tool's (Trivy's results)
            raise ReportError(key, f"not {vendor} JSON report: no top-level 'Vulnerabilities'", "$")
        m = _GENERATED.search(head_text(head))
        generated = _dt(m.group(1)) if m else None
        for index, item in enumerate(iter_json_items(stream, "Vulnerabilities.item", key)):
            if not isinstance(item, dict):
                raise ReportError(key, "vulnerability must be a JSON object", f"$.Vulnerabilities[{index}]")
            yield _finding(item, generated)

    parse.__doc__ = f"Stream findings from {vendor} JSON report, one per vulnerability."
    return parse


INVICTI_JSON = ReportFormat(
    key="invicti_json",
    title="Invicti / Netsparker JSON report",
    detect=detect_invicti,
    read=_parser("invicti_json", "an Invicti/Netsparker"),
    syntax="json",
    json_root="object",
    what="an Invicti/Netsparker JSON report",
    map_severity=map_by_table(SEVERITY_TABLE),
)

ACUNETIX360_JSON = ReportFormat(
    key="acunetix360_json",
    title="Acunetix 360 JSON report",
    detect=detect_acunetix360,
    read=_parser("acunetix360_json", "an Acunetix 360"),
    syntax="json",
    json_root="object",
    what="an Acunetix 360 JSON report",
    map_severity=map_by_table(SEVERITY_TABLE),
)
