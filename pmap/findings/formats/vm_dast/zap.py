"""OWASP ZAP reports: the XML report (``OWASPZAPReport``), the traditional JSON report
(``{"@programName": "ZAP", "site": [...]}``) and the API's alert list (``{"alerts": [...]}``).

An alert lists the URLs it was seen on (``instances``); each instance is one finding, since PMAP
tracks a web issue per URL and parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import (
    as_str,
    clean,
    compact,
    evidence,
    parse_dt,
    split_url,
    strip_html,
    to_int,
    urls_in,
)
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cwe_ids
from pmap.findings.formats.json_reader import iter_json_items
from pmap.findings.formats.sniff import head_text, xml_root
from pmap.findings.formats.xml_reader import child, children, clear_element, iter_xml, local

# ZAP riskcode 0-3 = Informational, Low, Medium, High (the API spells the words); confidence 0
# means the alert was marked a false positive, which is a status rather than a severity.
SEVERITY_TABLE = {
    "0": Severity.INFO,
    "1": Severity.LOW,
    "2": Severity.MEDIUM,
    "3": Severity.HIGH,
    "informational": Severity.INFO,
    "info": Severity.INFO,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
}
# ZAP's "Script Active Scan Rules" (50000) and "Script Passive Scan Rules" (50001): every alert a user script
# without its own metadata raises carries the script rule's id, so the alert's name is what names the problem
GENERIC_RULES = frozenset({"50000", "50001"})
_INSTANCE_FIELDS = ("uri", "url", "method", "param", "attack", "evidence", "otherinfo")
#: ZAP dates its report ("Tue, 12 May 2020 20:57:30") in the scanning host's local time, with no offset:
#: read as UTC, which is closer to the sighting than the import time
_GENERATED_FORMATS = ("%a, %d %b %Y %H:%M:%S",)
_JSON_GENERATED = re.compile(r'"@generated"\s*:\s*"([^"]{1,64})"')


def _findings(alert: dict[str, Any], instances: list[dict[str, Any]], site: str | None,
              seen: datetime | None = None) -> Iterator[ParsedFinding]:
    title = as_str(alert.get("name")) or as_str(alert.get("alert")) or "ZAP alert"
    rule = as_str(alert.get("alertRef")) or as_str(alert.get("pluginid")) or as_str(alert.get("pluginId"))
    risk = as_str(alert.get("riskcode")) or as_str(alert.get("risk"))
    confidence = as_str(alert.get("confidence"))
    refs = as_str(alert.get("reference"))
    wasc = to_int(as_str(alert.get("wascid")))
    common: dict[str, Any] = {
        "title": title,
        "vendor_severity": risk,
        "description": strip_html(as_str(alert.get("desc")) or as_str(alert.get("description"))),
        "cwe_ids": cwe_ids([c for c in [as_str(alert.get("cweid"))] if c and c not in ("-1", "0")]),
        "rule_id": rule,
        "remediation": strip_html(as_str(alert.get("solution"))),
        "references": urls_in(refs),
        # docs/finding-identity.md: the name joins the identity under a generic script rule only
        "identity": [title] if rule in GENERIC_RULES else [],
    }
    if not instances:  # old reports put a single uri/param on the alert itself
        instances = [{k: alert.get(k) for k in _INSTANCE_FIELDS}]
    for inst in instances:
        url = as_str(inst.get("uri")) or as_str(inst.get("url")) or site
        host, port, _scheme = split_url(url)
        yield ParsedFinding(
            host=host,
            port=port,
            url=url,
            parameter=as_str(inst.get("param")),
            status="false_positive" if confidence in ("0", "False Positive") else None,
            last_seen=seen,
            extra=compact({
                "confidence": confidence,
                "method": as_str(inst.get("method")),
                "attack": evidence(as_str(inst.get("attack"))),
                "evidence": evidence(as_str(inst.get("evidence"))),
                "other_info": evidence(strip_html(as_str(inst.get("otherinfo")) or as_str(alert.get("otherinfo"))
                                                  or as_str(alert.get("other")))),
                "wasc_id": wasc if wasc and wasc > 0 else None,
            }),
            **{**common, "identity": list(common["identity"])},
        )


# --- XML --------------------------------------------------------------------------------------

def detect_xml(head: bytes, filename: str | None) -> bool:
    """An ``OWASPZAPReport`` root element."""
    root = xml_root(head_text(head))
    return root is not None and root[0] == "OWASPZAPReport"


def _xml_dict(elem: Any, skip: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in elem:
        name = local(c.tag)
        if name and name != skip:
            out[name] = c.text
    return out


def parse_xml(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from a ZAP XML report, one per alert instance."""
    seen: datetime | None = None
    for _tag, elem in iter_xml(report.stream, "zap_xml", ("alertitem",)):
        alert = _xml_dict(elem, "instances")
        inst_el = child(elem, "instances")
        instances = [_xml_dict(i, "") for i in children(inst_el, "instance")] if inst_el is not None else []
        alerts_el = elem.getparent()
        site_el = alerts_el.getparent() if alerts_el is not None else None
        site = clean(site_el.get("name")) if site_el is not None else None
        if seen is None and site_el is not None and site_el.getparent() is not None:
            seen = parse_dt(site_el.getparent().get("generated"), *_GENERATED_FORMATS)
        yield from _findings(alert, instances, site, seen)
        clear_element(elem)


# --- JSON -------------------------------------------------------------------------------------

_JSON_REPORT = re.compile(r'"@programName"\s*:\s*"(?:OWASP )?ZAP"|"@version"\s*:\s*"[^"]*"\s*,\s*"@generated"')
_JSON_API = re.compile(r'^\s*\{\s*"alerts"\s*:\s*\[')


def detect_json(head: bytes, filename: str | None) -> bool:
    """ZAP's JSON report (``@programName``/``site``) or the API alert list (``pluginId``, ``risk``)."""
    text = head_text(head)
    if _JSON_REPORT.search(text) and '"site"' in text:
        return True
    return bool(_JSON_API.match(text)) and '"pluginId"' in text and '"risk"' in text


def _api_instance(alert: dict[str, Any]) -> list[dict[str, Any]]:
    """The API's alert is one URL already: its own single instance."""
    return [{"uri": alert.get("url"), "param": alert.get("param"), "method": alert.get("method"),
             "attack": alert.get("attack"), "evidence": alert.get("evidence"), "otherinfo": alert.get("other")}]


def api_alert(alert: Any) -> Iterator[ParsedFinding]:
    """One alert of the API's alert list (``/JSON/alert/view/alerts/``) as this format reads it."""
    if not isinstance(alert, dict):
        raise ReportError("zap_json", "alert must be a JSON object", "$.alerts[]")
    yield from _findings(alert, _api_instance(alert), None)


def parse_json(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings from a ZAP JSON report or API alert list, one per alert instance."""
    head, stream = report.head, report.stream
    api = bool(_JSON_API.match(head_text(head)))
    generated = _JSON_GENERATED.search(head_text(head))  # "@generated" precedes "site" in ZAP's report
    seen = parse_dt(generated.group(1), *_GENERATED_FORMATS) if generated else None
    if not api and '"site"' not in head_text(head):
        raise ReportError("zap_json", "not a ZAP JSON report: missing 'site'", "$")
    prefix = "alerts.item" if api else "site.item.alerts.item"
    for index, alert in enumerate(iter_json_items(stream, prefix, "zap_json")):
        if not isinstance(alert, dict):
            raise ReportError("zap_json", "alert must be a JSON object", f"$.{prefix} #{index}")
        raw = alert.get("instances")
        instances = [i for i in raw if isinstance(i, dict)] if isinstance(raw, list) else []
        if api:  # the API returns one entry per URL already
            instances = _api_instance(alert)
        yield from _findings(alert, instances, None, seen)


ZAP_XML = ReportFormat(
    key="zap_xml",
    title="OWASP ZAP XML report",
    detect=detect_xml,
    read=parse_xml,
    syntax="xml",
    xml_roots=("OWASPZAPReport",),
    what="a ZAP XML report",
    map_severity=map_by_table(SEVERITY_TABLE),
)

ZAP_JSON = ReportFormat(
    key="zap_json",
    title="OWASP ZAP JSON report / API alerts",
    detect=detect_json,
    read=parse_json,
    syntax="json",
    json_root="object",
    what="a ZAP JSON report",
    map_severity=map_by_table(SEVERITY_TABLE),
)
