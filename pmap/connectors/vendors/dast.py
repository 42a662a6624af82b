"""DAST scanners: Burp Suite DAST (Enterprise), OWASP ZAP, Invicti Enterprise and Acunetix.

Each offers a connection test (plus a role report where the vendor exposes roles); findings are
imported from the report files these products export, or pulled from the vendor's API by a sync. ZAP
also launches scans (spider, then active scan of a target URL) and fetches their alerts; Invicti launches a
scan from an earlier one's configuration; Burp Suite DAST launches a one-off scan of a site
(``create_schedule_item``) and imports its issues, written as its XML issue export; Acunetix launches a scan
of a target (``POST /scans`` with the connection's scan profile) and imports its session's vulnerabilities,
written as its XML export.

Syncs (``pull_findings``), one page in memory at a time:

- ZAP: every alert of the running session, ``GET /JSON/alert/view/alerts/`` paged by ``start``/``count``
  until a short page, read as ``zap_json``. ZAP keeps no fixed state and no change time (an alert fixed
  since is simply absent from the session's list), so every pull is full and complete; an alert whose
  confidence is "False Positive" is a false positive.
- Acunetix: ``GET /api/v1/vulnerabilities`` with no status in ``q`` (every status: open, fixed, ignored,
  false_positive), cursor paging (``c``/``l``, the answer's ``pagination.next_cursor``), read as
  ``acunetix_xml``: fixed is fixed, ignored and false_positive are suppressed. The list's only time filter
  (``date``) is on detection, not on a change of status, so every pull is full and complete.
- Invicti Enterprise: ``GET /issues/allissues`` paged by ``page`` (from 1) and ``pageSize`` until
  ``IsLastPage``, read as ``invicti_json``: FixedConfirmed, FixedUnconfirmed and FixedCantRetest are fixed,
  FalsePositive and AcceptedRisk suppressed, Present and Revived open. Its only time filter,
  ``lastSeenDate``, is on the last sighting, not on a change of state (an issue fixed since would be
  missed), so every pull is full and complete.
- Burp Suite DAST: the GraphQL API's site tree, each site's latest succeeded scan (``scans(site_id:,
  sort_column: end, sort_order: desc)``, paged by ``offset``/``limit`` until one succeeded), and that scan's
  ``issues(start:, count:)`` until a short page, read as ``burp_xml``. A scan's issues are the site's state,
  with no fixed state and no change-time filter: every pull is full and complete (an issue the latest scan no
  longer reports is resolved).
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    FetchesFindings,
    FindingsFeed,
    FindingsPull,
    LaunchesScans,
    OperationContext,
    PermissionReport,
    Probe,
    ReportArtifact,
    ReportsScanStatus,
    ScanRef,
    ScanState,
    SyncsFindings,
)
from pmap.connectors.vendors._support import (
    DOWNLOAD_MAX_BYTES,
    check,
    dig,
    expiry,
    fail,
    host_of,
    json_of,
    parse_when,
    permission_report,
    poll,
    text,
    vendor_detail,
)
from pmap.core.errors import FieldProblem, ScanLaunchUnavailable, UpstreamError, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.vm_dast import acunetix as acunetix_format
from pmap.findings.formats.vm_dast import burp as burp_format
from pmap.findings.formats.vm_dast import invicti as invicti_format
from pmap.findings.formats.vm_dast import zap as zap_format


class ApiKey(Credentials):
    """One API key."""

    api_key: SecretStr = Field(description="API key")


# --- Burp Suite DAST --------------------------------------------------------------------------------

class BurpConnection(ConnectionSettings):
    base_url: str = Field(description="Burp Suite DAST server, e.g. https://burp.example.com")
    scan_configuration_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20,
        description="scan configurations of a launched scan (ids); empty: the site's own")


_BURP_QUERY = "query PmapConnectionTest { site_tree { sites { id } } }"


#: issues per page of ``scan(id) { issues(start:, count:) }``, scans per page of a site's ``scans``
BURP_ISSUE_PAGE = 100
BURP_SCAN_PAGE = 20
_BURP_MAX_PAGES = 100_000
_BURP_SITES = "query PmapSites { site_tree { sites { id name } } }"
_BURP_SCANS = ("query PmapSiteScans($site: ID!, $offset: Int!, $limit: Int!) { scans(site_id: $site, "
               "offset: $offset, limit: $limit, sort_column: end, sort_order: desc) { id status } }")
_BURP_ISSUES = ("query PmapScanIssues($scan: ID!, $start: Int!, $count: Int!) { scan(id: $scan) { id "
                "issues(start: $start, count: $count) { serial_number severity confidence novelty path origin "
                "description_html remediation_html issue_type { type_index name description_html remediation_html "
                "vulnerability_classifications_html references_html } } } }")


def _burp_refused(errors: list[Any]) -> bool:
    """A GraphQL error list that refuses the API user (its code a 401/403, or its message naming a permission)."""
    code = dig(errors, 0, "extensions", "code")
    return code in (401, 403, "401", "403") or "permission" in str(dig(errors, 0, "message") or "").lower()


def _burp_query(ctx: OperationContext, c: Any, query: str, variables: dict[str, Any], what: str) -> Any:
    """The ``data`` of one read-only GraphQL query; a refused one (HTTP 200 with errors) is step permission
    when it names a 401/403 or a permission, else step response."""
    # a read-only query: safe to retry when rate-limited
    resp = check(ctx, c.post("/graphql/v1", headers={"Authorization": ctx.secret("api_key")},
                             json={"query": query, "variables": variables}, retry_unsafe=True), what)
    body = json_of(ctx, resp, what)
    errors = body.get("errors") or []
    if errors:
        if _burp_refused(errors):
            raise fail(ctx, f"the Burp API user may not read {what}: give it a role that can view sites and scans",
                       step="permission", resp=resp)
        raise fail(ctx, f"the GraphQL query of {what} failed", step="response", resp=resp)
    data = body.get("data")
    if not isinstance(data, dict):
        raise fail(ctx, f"the GraphQL answer of {what} has no data", step="response")
    return data


def _burp_latest_scan(ctx: OperationContext, c: Any, site: str) -> str | None:
    """The id of the site's latest succeeded scan (newest end first), or None when it has none."""
    for page in range(_BURP_MAX_PAGES):
        scans = _burp_query(ctx, c, _BURP_SCANS, {"site": site, "offset": page * BURP_SCAN_PAGE,
                                                  "limit": BURP_SCAN_PAGE}, "the site's scans").get("scans")
        if not isinstance(scans, list):
            raise fail(ctx, "Burp's answer has no scans list", step="response")
        for scan in scans:
            if isinstance(scan, dict) and text(scan.get("status")) == "succeeded" and text(scan.get("id")):
                return text(scan.get("id"))
        if len(scans) < BURP_SCAN_PAGE:
            return None
    return None


def _burp_findings(ctx: OperationContext) -> Iterator[ParsedFinding]:
    with ctx.client() as c:
        sites = dig(_burp_query(ctx, c, _BURP_SITES, {}, "the site tree"), "site_tree", "sites")
        if not isinstance(sites, list):
            raise fail(ctx, "the GraphQL answer has no site_tree.sites list", step="response")
        for site in sites:
            site_id = text(site.get("id")) if isinstance(site, dict) else None
            if not site_id:
                raise fail(ctx, "a site of Burp's site tree has no id", step="response")
            scan = _burp_latest_scan(ctx, c, site_id)
            if scan is None:
                continue  # never scanned to completion: nothing to report yet
            for issue in _burp_issues(ctx, c, scan):
                try:
                    finding = burp_format.api_issue(issue)
                except ReportError as exc:
                    raise fail(ctx, f"an issue could not be read: {exc.message}", step="response") from None
                yield finding


def _burp_issues(ctx: OperationContext, c: OutboundClient, scan: str) -> Iterator[Any]:
    """Every issue of a scan as Burp lists it: ``scan(id) { issues(start:, count:) }`` page by page until a short
    page."""
    for page in range(_BURP_MAX_PAGES):
        issues = dig(_burp_query(ctx, c, _BURP_ISSUES, {"scan": scan, "start": page * BURP_ISSUE_PAGE,
                                                        "count": BURP_ISSUE_PAGE}, "the scan's issues"),
                     "scan", "issues")
        if not isinstance(issues, list):
            raise fail(ctx, "Burp's answer has no scan.issues list", step="response")
        yield from issues
        if len(issues) < BURP_ISSUE_PAGE:
            return


_BURP_LAUNCH = ("mutation PmapLaunchScan($input: CreateScheduleItemInput!) { create_schedule_item(input: $input) "
                "{ schedule_item { id } } }")
_BURP_ITEM_SCANS = ("query PmapScheduledScan($item: ID!) { scans(schedule_item_id: $item, offset: 0, limit: 1) "
                    "{ id status } }")
# Burp's ScanStatus -> ScanState.status (anything else, e.g. running or paused: still under way)
_BURP_STATES = {"succeeded": "completed", "failed": "failed", "cancelled": "canceled", "canceled": "canceled",
                "queued": "queued"}
_BURP_SEVERITIES = {"high": "High", "medium": "Medium", "low": "Low", "info": "Information",
                    "false_positive": "False positive"}


def _burp_site(value: str) -> str:
    """A Burp site id is a number; anything else is the caller's mistake."""
    site = str(value or "").strip()
    if not site.isdigit():
        raise ValidationFailed("a Burp Suite DAST scan is launched on a site, named by its id (digits)",
                               fields=[FieldProblem("scan_id", "must be a site id (digits)")])
    return site


_BURP_ITEM = "schedule_item:"  # a launch's run reference names what it is: a site's and an item's ids may be equal


def _burp_item(value: str | None) -> str:
    """The schedule item id of a launch's run reference (``schedule_item:<id>``)."""
    item = str(value or "").strip().removeprefix(_BURP_ITEM)
    if not item.isdigit():
        raise ValidationFailed("a Burp Suite DAST launch is followed by its schedule item's id (digits)",
                               fields=[FieldProblem("run_id", "must be schedule_item:<digits>")])
    return item


def _burp_xml(issues: list[dict[str, Any]]) -> bytes:
    """A scan's issues (the API's shape) as Burp's XML issue export (``burp_xml``) reads them: the issue type's
    index as ``type``, ``origin`` as ``host``, the issue's HTML as its detail, the type's as its background."""
    root = ET.Element("issues", burpVersion="Burp Suite DAST (GraphQL API)", exportTime=datetime.now(UTC).isoformat())
    for issue in issues:
        found = issue.get("issue_type")
        kind: dict[str, Any] = found if isinstance(found, dict) else {}
        node = ET.SubElement(root, "issue")
        severity = text(issue.get("severity")) or ""
        for tag, value in (("serialNumber", issue.get("serial_number")), ("type", kind.get("type_index")),
                           ("name", kind.get("name")), ("host", issue.get("origin")), ("path", issue.get("path")),
                           ("location", issue.get("path")),
                           ("severity", _BURP_SEVERITIES.get(severity.lower(), severity)),
                           ("confidence", (text(issue.get("confidence")) or "").capitalize() or None),
                           ("issueBackground", kind.get("description_html")),
                           ("remediationBackground", kind.get("remediation_html")),
                           ("references", kind.get("references_html")),
                           ("vulnerabilityClassifications", kind.get("vulnerability_classifications_html")),
                           ("issueDetail", issue.get("description_html")),
                           ("remediationDetail", issue.get("remediation_html"))):
            ET.SubElement(node, tag).text = text(value)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


class BurpConnector(Connector, FetchesFindings, LaunchesScans, ReportsScanStatus, SyncsFindings):
    """Burp Suite DAST GraphQL API: ``Authorization: <api key>`` with no scheme.

    A launch's scan id is a site's id: ``create_schedule_item`` with no schedule scans it now (with the connection's
    scan configurations, else the site's own); the launch follows that schedule item's scan
    (``scans(schedule_item_id:)``), and reads its issues as the sync does."""

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        """``create_schedule_item`` for the site, no schedule (a one-off scan, now): the schedule item's id."""
        site = _burp_site(scan_id)
        scan_input: dict[str, Any] = {"site_ids": [site]}
        configurations = list(getattr(ctx.connection, "scan_configuration_ids", None) or [])
        if configurations:
            scan_input["scan_configuration_ids"] = configurations
        with ctx.client() as c:
            # a mutation: never retried (a second one would schedule a second scan)
            resp = check(ctx, c.post("/graphql/v1", headers={"Authorization": ctx.secret("api_key")},
                                     json={"query": _BURP_LAUNCH, "variables": {"input": scan_input}}),
                         f"launching a scan of site {site}")
        body = json_of(ctx, resp, "the scan launch")
        errors = body.get("errors") or []
        if errors and _burp_refused(errors):
            refused = fail(ctx, "the Burp API user may not start scans: launch it in Burp Suite DAST itself, or give "
                                "the API user a role that can create and run scans", step="permission", resp=resp)
            raise ScanLaunchUnavailable(refused.message, step="permission", upstream_status=resp.status)
        if errors:
            raise fail(ctx, f"Burp refused to launch a scan of site {site}", step="response", resp=resp)
        item = text(dig(body, "data", "create_schedule_item", "schedule_item", "id"))
        if not item:
            raise fail(ctx, "Burp scheduled the scan without a schedule item id", step="response")
        return ScanRef(scan_id=site, run_id=_BURP_ITEM + _burp_item(item))

    def _scan(self, ctx: OperationContext, c: Any, scan: ScanRef) -> dict[str, Any] | None:
        """The scan of the launch's schedule item; None while Burp has not created it yet."""
        scans = _burp_query(ctx, c, _BURP_ITEM_SCANS, {"item": _burp_item(scan.run_id)}, "the launched scan")
        listed = scans.get("scans")
        if not isinstance(listed, list):
            raise fail(ctx, "Burp's answer has no scans list", step="response")
        first = listed[0] if listed else None
        return first if isinstance(first, dict) else None

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        """``scans(schedule_item_id:) { id status }``: no scan yet is queued."""
        with ctx.client() as c:
            found = self._scan(ctx, c, scan)
        status = (text(found.get("status")) if found else None) or "queued"
        return ScanState(scan_id=scan.scan_id, status=_BURP_STATES.get(status.lower(), "running"),
                         detail=f"Burp scan status: {status}")

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """The launched scan's issues (``scan(id) { issues(start:, count:) }`` until a short page), written as
        Burp's XML issue export (``burp_xml``)."""
        issues: list[dict[str, Any]] = []
        with ctx.client() as c:
            found = self._scan(ctx, c, scan)
            scan_id = text(found.get("id")) if found else None
            if not scan_id:
                raise fail(ctx, "Burp lists no scan for the launch's schedule item", step="response")
            for issue in _burp_issues(ctx, c, scan_id):
                if not isinstance(issue, dict) or not text(dig(issue, "issue_type", "name")):
                    raise fail(ctx, "an issue of the scan has no issue_type.name", step="response")
                issues.append(issue)
        return ReportArtifact(name=f"burp_scan_{scan_id}.xml", format=burp_format.KEY, content=_burp_xml(issues))

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The issues of each site's latest succeeded scan, page by page, read as ``burp_xml``; always a full,
        complete pull (a scan's issues are the site's state; Burp keeps no fixed state)."""
        return FindingsFeed(format=burp_format.KEY, findings=_burp_findings(ctx), complete=True)

    def test_connection(self, ctx: OperationContext) -> Probe:
        """A minimal GraphQL query (the site tree); GraphQL errors are read for permission failures."""
        with ctx.client() as c:
            # a read-only query: safe to retry when rate-limited
            resp = check(ctx, c.post("/graphql/v1", headers={"Authorization": ctx.secret("api_key")},
                                     json={"query": _BURP_QUERY}, retry_unsafe=True), "the GraphQL API")
        body = json_of(ctx, resp, "GraphQL answer")
        errors = body.get("errors") or []
        if errors:
            # GraphQL reports a refused query with HTTP 200 and an error carrying the status
            code = dig(errors, 0, "extensions", "code")
            if code in (401, 403, "401", "403") or "permission" in str(dig(errors, 0, "message") or "").lower():
                raise fail(ctx, "the Burp API user may not read the site tree: give it a role that can view "
                                "sites and scans", step="permission", resp=resp)
            raise fail(ctx, "the GraphQL query failed", step="response", resp=resp)
        sites = dig(body, "data", "site_tree", "sites")
        if not isinstance(sites, list):
            raise fail(ctx, "the GraphQL answer has no site_tree.sites list", step="response")
        return Probe(product="Burp Suite DAST", message=f"connected and authenticated ({len(sites)} sites visible)")


# --- OWASP ZAP -------------------------------------------------------------------------------------

class ZapConnection(ConnectionSettings):
    base_url: str = Field(description="ZAP API address, e.g. http://zap.internal:8080")


_ZAP_KEY_HINT = "check the API key (ZAP: Tools > Options > API)"
_ZAP_SILENT = ("ZAP closes the connection without answering when the API key is wrong or missing, or when this "
               "address is not permitted to use the API (Tools > Options > API), unless 'Report permission errors "
               "via API' is on")


_ZAP_PAGE = 500  # alerts per page of /JSON/alert/view/alerts/
_ZAP_MAX_ALERTS = 200_000


def _zap_target(scan_id: str) -> str:
    """ZAP scans a target URL: the launch's scan id is that URL (http or https)."""
    value = str(scan_id).strip()
    if not value.lower().startswith(("http://", "https://")) or any(ch.isspace() for ch in value):
        raise ValidationFailed("a ZAP scan is launched on a target URL (http:// or https://)",
                               fields=[FieldProblem("scan_id", "must be an http or https URL")])
    return value


def _zap_get(ctx: OperationContext, c: Any, path: str, params: dict[str, Any], what: str) -> dict[str, Any]:
    """One ZAP API call: a bad key (400 bad_api_key) is step auth, another ZAP error code step response."""
    resp = c.get(path, headers={"X-ZAP-API-Key": ctx.secret("api_key")}, params=params)
    if resp.status == 400:
        code = _zap_code(resp)
        if code == "bad_api_key":
            raise fail(ctx, f"ZAP refused the API key: {_ZAP_KEY_HINT}", step="auth", resp=resp)
        raise fail(ctx, f"ZAP refused {what} ({code or 'an error'})", step="response", resp=resp)
    body = json_of(ctx, check(ctx, resp, what, auth=(401, 403), permission=(), auth_hint=_ZAP_KEY_HINT), what)
    return body


def _zap_started(ctx: OperationContext, body: dict[str, Any], what: str) -> str:
    scan = text(body.get("scan"))
    if scan is None or not scan.isdigit():
        raise fail(ctx, f"ZAP started {what} without a scan id", step="response")
    return scan


def _zap_alert_pages(ctx: OperationContext, base_url: str | None) -> Iterator[list[Any]]:
    """The pages of ``/JSON/alert/view/alerts/`` (those under ``base_url`` when given), ``start``/``count``
    paging until a short page, at most :data:`_ZAP_MAX_ALERTS` alerts."""
    read = 0
    with ctx.client() as c:
        while read < _ZAP_MAX_ALERTS:
            params: dict[str, Any] = {"start": read, "count": _ZAP_PAGE}
            if base_url:
                params["baseurl"] = base_url
            page = _zap_get(ctx, c, "/JSON/alert/view/alerts/", params, "the alerts").get("alerts")
            if not isinstance(page, list):
                raise fail(ctx, "ZAP's alerts answer has no alerts list", step="response")
            yield page
            read += len(page)
            if len(page) < _ZAP_PAGE:
                return


def _zap_findings(ctx: OperationContext) -> Iterator[ParsedFinding]:
    for page in _zap_alert_pages(ctx, None):
        for alert in page:
            try:
                yield from zap_format.api_alert(alert)
            except ReportError as exc:
                raise fail(ctx, f"an alert could not be read: {exc.message}", step="response") from None


class ZapConnector(Connector, FetchesFindings, LaunchesScans, ReportsScanStatus, SyncsFindings):
    """ZAP: ``X-ZAP-API-Key``. A wrong key gets no answer by default (ZAP closes the connection); with
    ``api.reportpermerrors`` it is HTTP 400 ``{"code": "bad_api_key"}``. ZAP itself never answers 401/403.
    A launch spiders the target URL, then actively scans it; the results are the alerts under that URL."""

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        """Spider ``scan_id`` (a URL) until done (ZAP scans only what it has crawled), then start the active scan."""
        url = _zap_target(scan_id)
        with ctx.client() as c:
            spider = _zap_started(ctx, _zap_get(ctx, c, "/JSON/spider/action/scan/", {"url": url, "recurse": "true"},
                                                "the spider"), "the spider")

            def crawled() -> bool | None:
                body = _zap_get(ctx, c, "/JSON/spider/view/status/", {"scanId": spider}, "the spider status")
                return True if text(body.get("status")) == "100" else None

            poll(ctx, crawled, what=f"the ZAP spider of {url}")
            active = _zap_started(ctx, _zap_get(ctx, c, "/JSON/ascan/action/scan/", {"url": url, "recurse": "true"},
                                                "the active scan"), "the active scan")
        return ScanRef(scan_id=url, run_id=active)

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        """The active scan's progress (``/JSON/ascan/view/status/``): 100 is completed."""
        if not scan.run_id or not scan.run_id.isdigit():
            raise ValidationFailed("a ZAP scan's status needs the active scan's id",
                                   fields=[FieldProblem("run_id", "must be digits")])
        with ctx.client() as c:
            body = _zap_get(ctx, c, "/JSON/ascan/view/status/", {"scanId": scan.run_id}, "the active scan status")
        progress = text(body.get("status")) or "0"
        return ScanState(scan_id=scan.scan_id, status="completed" if progress == "100" else "running",
                         detail=f"ZAP active scan {progress}%")

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """Every alert of ZAP's session, page by page, read as ``zap_json``; always a full, complete pull
        (ZAP has no fixed state and no change time: a fixed alert is gone from the list)."""
        return FindingsFeed(format=zap_format.ZAP_JSON.key, findings=_zap_findings(ctx), complete=True)

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """The alerts under the target URL (``/JSON/alert/view/alerts/?baseurl=``, page by page), as ZAP's
        alert list, which the ``zap_json`` format reads."""
        url = _zap_target(scan.scan_id)
        alerts: list[Any] = []
        for page in _zap_alert_pages(ctx, url):
            alerts.extend(page)
        return ReportArtifact(name="zap_alerts.json", format="zap_json",
                              content=json.dumps({"alerts": alerts}).encode())

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /JSON/core/view/version/`` with the key."""
        with ctx.client() as c:
            try:
                resp = c.get("/JSON/core/view/version/", headers={"X-ZAP-API-Key": ctx.secret("api_key")})
            except UpstreamError as exc:
                if exc.step == "http" and exc.upstream_status is None:  # connected, but no HTTP answer
                    raise UpstreamError(f"{exc.message}; {_ZAP_SILENT}", step="http") from None
                raise
        if resp.status == 400 and _zap_code(resp) == "bad_api_key":
            raise fail(ctx, f"{host_of(resp)} refused the API key (bad_api_key): {_ZAP_KEY_HINT}", step="auth",
                       resp=resp)
        # 401/403 come from a proxy in front of ZAP, not from ZAP
        check(ctx, resp, "GET /JSON/core/view/version/", auth=(401, 403), permission=(), auth_hint=_ZAP_KEY_HINT)
        version = text(json_of(ctx, resp, "version").get("version"))
        if version is None:
            raise fail(ctx, "ZAP's version answer has no version", step="response")
        return Probe(product="ZAP", version=version)


def _zap_code(resp: OutboundResponse) -> str | None:
    """The ``code`` of a ZAP API error body (``{"code": "bad_api_key", "message": ...}``), if any."""
    try:
        body = resp.json()
    except UpstreamError:  # not JSON
        return None
    return text(body.get("code")) if isinstance(body, dict) else None


# --- Invicti Enterprise ------------------------------------------------------------------------------

class InvictiCredentials(Credentials):
    """Invicti API credentials (HTTP Basic ``USERID:API-TOKEN``)."""

    user_id: str = Field(min_length=1, description="API user ID")
    api_token: SecretStr = Field(description="API token")


class InvictiConnection(ConnectionSettings):
    base_url: str = Field(default="https://www.netsparkercloud.com/api/1.0",
                          description="Invicti API base, e.g. https://www.netsparkercloud.com/api/1.0")


_ACCOUNT_DATE_FORMATS = ("%m/%d/%Y %I:%M %p", "%d/%m/%Y %I:%M %p", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M",
                         "%m/%d/%Y", "%d/%m/%Y")


def _account_date(value: Any) -> datetime | None:
    """An Invicti subscription date: ISO-8601, or the account's own format (``12/30/2022 04:00 PM``;
    ``dd/MM/yyyy`` accounts exist). A date that reads two ways (``03/04/2025``) is None: never guess."""
    when = parse_when(value)
    if when is not None or not isinstance(value, str):
        return when
    readings: set[datetime] = set()
    for fmt in _ACCOUNT_DATE_FORMATS:
        try:
            readings.add(datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC))
        except ValueError:
            continue
    return readings.pop() if len(readings) == 1 else None


def _invicti_end(lic: dict[str, Any]) -> tuple[datetime | None, str | None]:
    """When the subscription ends and the product: the latest ISO ``EndDate`` of the active entries of
    ``Licenses`` (unambiguous), else ``SubscriptionEndDate`` when it reads one way only."""
    entries = [e for e in lic.get("Licenses") or [] if isinstance(e, dict)]
    dated = [(when, e) for e in entries if e.get("IsActive") is not False
             and (when := parse_when(e.get("EndDate"))) is not None]
    if not dated:
        dated = [(when, e) for e in entries if (when := parse_when(e.get("EndDate"))) is not None]
    if dated:
        when, entry = max(dated, key=lambda pair: pair[0])
        return when, text(entry.get("ProductDefinition"))
    product = text(entries[0].get("ProductDefinition")) if entries else None
    return _account_date(lic.get("SubscriptionEndDate")), product


# Invicti scan task states -> ScanState.status (anything else: still under way)
_INVICTI_STATES = {"complete": "completed", "failed": "failed", "cancelled": "canceled", "canceled": "canceled",
                   "queued": "queued", "delayed": "queued"}


def _invicti_id(value: str | None, what: str) -> str:
    """An Invicti scan id is a GUID; anything else is the caller's mistake."""
    try:
        return str(uuid.UUID(str(value or "").strip()))
    except ValueError:
        raise ValidationFailed(f"an Invicti {what} id is a GUID",
                               fields=[FieldProblem("scan_id", "must be a GUID")]) from None


#: issues per page of ``/issues/allissues`` (Invicti takes 1 to 200; an issue carries its HTML texts)
INVICTI_PAGE = 100
_INVICTI_MAX_PAGES = 100_000


def _invicti_issues(ctx: OperationContext) -> Iterator[ParsedFinding]:
    """Every issue of the account, page by page (``page`` from 1) until ``IsLastPage``."""
    auth = (ctx.credentials.user_id, ctx.secret("api_token"))
    with ctx.client() as c:
        for page in range(1, _INVICTI_MAX_PAGES + 1):
            resp = check(ctx, c.get("/issues/allissues", auth=auth, params={"page": page, "pageSize": INVICTI_PAGE}),
                         "listing issues", permission_hint="the API user's role must allow viewing issues")
            body = json_of(ctx, resp, "the issues page")
            del resp
            items = body.get("List")
            if items is None and body.get("TotalItemCount") == 0:
                items = []
            if not isinstance(items, list):
                raise fail(ctx, "Invicti's issues page has no List", step="response")
            for item in items:
                try:
                    finding = invicti_format.api_issue(item, _account_date)
                except ReportError as exc:
                    raise fail(ctx, f"an issue could not be read: {exc.message}", step="response") from None
                yield finding
            if not items or body.get("IsLastPage") is True or body.get("HasNextPage") is False:
                return
        raise fail(ctx, f"Invicti listed more than {_INVICTI_MAX_PAGES} pages of issues", step="response")


class InvictiConnector(Connector, FetchesFindings, LaunchesScans, ReportsScanStatus, SyncsFindings):
    """Invicti Enterprise: ``/account/me`` proves the token; ``/account/license`` gives the subscription. A launch
    starts a new scan with an earlier scan's configuration (``scans/newfromscan``); its vulnerabilities report is
    the ``invicti_json`` format."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """Every issue of the account (present, fixed, accepted, false positive), page by page, read as
        ``invicti_json``; always a full, complete pull (``lastSeenDate`` filters on sightings, not changes)."""
        return FindingsFeed(format=invicti_format.INVICTI_JSON.key, findings=_invicti_issues(ctx), complete=True)

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        """``POST /scans/newfromscan`` with the earlier scan's id: the new scan task's ``Id``."""
        base = _invicti_id(scan_id, "scan")
        with ctx.client() as c:
            resp = check(ctx, c.post("/scans/newfromscan", auth=(ctx.credentials.user_id, ctx.secret("api_token")),
                                     json=base), f"launching a scan from {base}", ok=(200, 201),
                         permission_hint="the API user's role must allow starting scans")
        task = text(json_of(ctx, resp, "scan task").get("Id"))
        if not task:
            raise fail(ctx, "Invicti started the scan without a task id", step="response")
        return ScanRef(scan_id=base, run_id=task)

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        """``GET /scans/status/{id}``: the task's ``State``."""
        task = _invicti_id(scan.run_id, "scan task")
        with ctx.client() as c:
            body = json_of(ctx, check(ctx, c.get(vendor_path("/scans/status/{task}", task=task),
                                                 auth=(ctx.credentials.user_id, ctx.secret("api_token"))),
                                      "scan status"), "scan status")
        state = str(body.get("State") or "unknown")
        return ScanState(scan_id=scan.scan_id, status=_INVICTI_STATES.get(state.lower(), "running"),
                         detail=f"Invicti state: {state}")

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """``GET /scans/report/?format=Json&type=Vulnerabilities`` of the launched task."""
        task = _invicti_id(scan.run_id, "scan task")
        with ctx.client() as c:
            resp = check(ctx, c.get("/scans/report/", auth=(ctx.credentials.user_id, ctx.secret("api_token")),
                                    params={"id": task, "format": "Json", "type": "Vulnerabilities"},
                                    max_bytes=DOWNLOAD_MAX_BYTES), "the vulnerabilities report")
        return ReportArtifact(name=f"invicti_{task}.json", format="invicti_json", content=resp.content)

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /account/me``, then the license when the account may read it."""
        auth = (ctx.credentials.user_id, ctx.secret("api_token"))
        with ctx.client() as c:
            me = json_of(ctx, check(ctx, c.get("/account/me", auth=auth), "GET /account/me"), "account")
            resp = c.get("/account/license", auth=auth)
            lic = None if resp.status == 403 else json_of(ctx, check(ctx, resp, "GET /account/license"), "license")
        warnings: list[str] = []
        license_ = None
        if lic is not None:
            enabled = lic.get("IsSubscriptionEnabled")
            ends, product = _invicti_end(lic)
            license_, notes = expiry(ends, what="Invicti subscription", kind=product or "subscription",
                                     expired=(enabled is False) or None,
                                     extra={"site_limit": lic.get("SubscriptionMaximumSiteLimit"),
                                            "sites": lic.get("SubscriptionSiteCount")})
            warnings.extend(notes)
        # /account/me names the user but not its role (UserHealthCheckApiModel); a 403 on the license says enough
        note = "" if lic is not None else "; the license is not readable with this user's role"
        return Probe(product="Invicti Enterprise", license=license_, warnings=warnings,
                     message=f"authenticated as {text(me.get('DisplayName')) or 'the API user'}{note}")


# --- Acunetix --------------------------------------------------------------------------------------

#: Acunetix's built-in Full Scan profile (the scan profiles' fixed ids: 11111111-1111-1111-1111-11111111111N)
ACUNETIX_FULL_SCAN = "11111111-1111-1111-1111-111111111111"


class AcunetixConnection(ConnectionSettings):
    base_url: str = Field(description="Acunetix API base, e.g. https://acunetix.example.com:3443/api/v1")
    scan_profile_id: uuid.UUID = Field(default=uuid.UUID(ACUNETIX_FULL_SCAN),
                                       description="the scan profile of a launched scan (default: Full Scan, "
                                                   "11111111-1111-1111-1111-111111111111)")


_ACUNETIX_ROOT = "System Administrator (the root account)"


#: vulnerabilities per page (``l``): Acunetix answers at most 100
ACUNETIX_PAGE = 100
_ACUNETIX_MAX_PAGES = 100_000


def _acunetix_next(body: dict[str, Any], read: int, listed: int) -> str | None:
    """The cursor of the next page: the answer's ``pagination.next_cursor``; without one, the offset read so far
    while ``pagination.count`` says more remain (or, with no count either, after a full page): Acunetix's cursors
    are offsets (``c=0``, ``c=100``), and a pull stopped short would be taken as complete, resolving the rest."""
    pagination = body.get("pagination")
    pagination = pagination if isinstance(pagination, dict) else {}
    following = text(pagination.get("next_cursor"))
    if following is not None:
        return following
    total = pagination.get("count")
    if isinstance(total, int) and not isinstance(total, bool):
        return str(read) if read < total else None
    return str(read) if listed >= ACUNETIX_PAGE else None


def _acunetix_pages(ctx: OperationContext, headers: dict[str, str], path: str,
                    what: str) -> Iterator[list[Any]]:
    """The pages of a vulnerability list (``/vulnerabilities``, a scan result's ``.../vulnerabilities``), one cursor
    page in memory at a time."""
    cursor: str | None = None
    read = 0
    with ctx.client() as c:
        for _ in range(_ACUNETIX_MAX_PAGES):
            params: dict[str, Any] = {"l": ACUNETIX_PAGE}
            if cursor is not None:
                params["c"] = cursor
            resp = check(ctx, c.get(path, headers=headers, params=params), f"listing {what}",
                         permission_hint="the user's role must allow reading scans and vulnerabilities")
            body = json_of(ctx, resp, f"the page of {what}")
            del resp
            items = body.get("vulnerabilities")
            if not isinstance(items, list):
                raise fail(ctx, f"Acunetix's page of {what} has no vulnerabilities list", step="response")
            yield items
            read += len(items)
            following = _acunetix_next(body, read, len(items))
            if not items or following is None or following == cursor:
                return
            cursor = following
        raise fail(ctx, f"Acunetix listed more than {_ACUNETIX_MAX_PAGES} pages of {what}", step="response")


def _acunetix_findings(ctx: OperationContext, headers: dict[str, str]) -> Iterator[ParsedFinding]:
    """Every vulnerability of every status, one cursor page in memory at a time."""
    for items in _acunetix_pages(ctx, headers, "/vulnerabilities", "vulnerabilities"):
        for item in items:
            try:
                finding = acunetix_format.api_vulnerability(item)
            except ReportError as exc:
                raise fail(ctx, f"a vulnerability could not be read: {exc.message}", step="response") from None
            yield finding


def _acunetix_id(value: str | None, what: str) -> str:
    """An Acunetix target or scan id is a UUID; anything else is the caller's mistake."""
    try:
        return str(uuid.UUID(str(value or "").strip()))
    except ValueError:
        raise ValidationFailed(f"an Acunetix {what} id is a UUID",
                               fields=[FieldProblem("scan_id", "must be a UUID")]) from None


# Acunetix scan session statuses -> ScanState.status (anything else, e.g. processing or resuming: still under way)
_ACUNETIX_STATES = {"completed": "completed", "failed": "failed", "aborted": "canceled", "aborting": "canceled",
                    "scheduled": "queued", "queued": "queued", "starting": "queued"}


def _acunetix_refusal(ctx: OperationContext, resp: OutboundResponse) -> ScanLaunchUnavailable | None:
    """Acunetix's own refusal to start a scan: a 403 (a role or license without scanning), or another 4xx whose
    error names the license (a license without the API's scans, its target limit reached)."""
    detail = vendor_detail(ctx, resp) or ""
    licence = "licen" in detail.lower()
    if resp.status != 403 and not (400 <= resp.status < 500 and resp.status not in (401, 404, 429) and licence):
        return None
    why = ("the Acunetix license does not allow this scan" if licence else
           "the Acunetix user may not start scans (its role, or the license, has no scanning)")
    refused = fail(ctx, f"{why}: launch it in Acunetix itself, or give the API user a role that can scan",
                   step="permission", resp=resp)
    return ScanLaunchUnavailable(refused.message, step="permission", upstream_status=resp.status)


def _acunetix_xml(items: list[dict[str, Any]]) -> bytes:
    """A scan result's vulnerabilities as the Acunetix XML export (``acunetix_xml``) reads them: one ``<Scan>`` per
    origin (its ``StartURL``), each vulnerability a ``<ReportItem>`` whose ``Affects`` is the path below it; the
    numeric severity as the export's word; a false positive flagged ``IsFalsePositive``. A vulnerability the result
    lists fixed is left out (the launch's import is full: its finding resolves)."""
    origins: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if (text(item.get("status")) or "").lower() == "fixed":
            continue
        url = text(item.get("affects_url")) or ""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
        origins.setdefault(origin, []).append(item)
    root = ET.Element("ScanGroup", ExportedOn=datetime.now(UTC).strftime("%d/%m/%Y, %H:%M:%S"))
    for origin, listed in origins.items():
        scan = ET.SubElement(root, "Scan")
        ET.SubElement(scan, "StartURL").text = origin
        reported = ET.SubElement(scan, "ReportItems")
        for item in listed:
            url = text(item.get("affects_url")) or ""
            node = ET.SubElement(reported, "ReportItem")
            ET.SubElement(node, "Name").text = text(item.get("vt_name"))
            severity = item.get("severity")
            word = acunetix_format.API_SEVERITIES.get(severity) if isinstance(severity, int) else None
            ET.SubElement(node, "Severity").text = word or text(severity)
            ET.SubElement(node, "Affects").text = url[len(origin):] if origin else url
            ET.SubElement(node, "Parameter").text = text(item.get("affects_detail"))
            ET.SubElement(node, "Type").text = text(item.get("vt_id"))
            false_positive = (text(item.get("status")) or "").lower() == "false_positive"
            ET.SubElement(node, "IsFalsePositive").text = "True" if false_positive else "False"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


class AcunetixConnector(Connector, ChecksPermissions, FetchesFindings, LaunchesScans, ReportsScanStatus,
                        SyncsFindings):
    """Acunetix: ``X-Auth``; ``/me`` (the user; no role), ``/info`` (version, license).

    ``/me`` does not name the user's role (community API documentation lists ``user_id``, ``email``,
    ``first_name``, ``enabled``, ``child_account``, ``su``), so reading is proven by a trial read of one
    page of ``/vulnerabilities``; the root account (``child_account: false``) is the System Administrator.

    A launch's scan id is a target's id: ``POST /scans`` starts a scan of it now with the connection's scan
    profile; its status is the scan's ``current_session.status``, its results the vulnerabilities of that
    session (``scan_session_id``, the result's id).
    """

    def _headers(self, ctx: OperationContext) -> dict[str, str]:
        return {"X-Auth": ctx.secret("api_key")}

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        """``POST /scans`` (the target, the profile, a schedule starting now) -> 201, the new scan's id in its
        ``Location`` (``/api/v1/scans/{scan_id}``) or its body's ``scan_id``."""
        target = _acunetix_id(scan_id, "target")
        body = {"target_id": target, "profile_id": str(ctx.connection.scan_profile_id),
                "schedule": {"disable": False, "start_date": None, "time_sensitive": False}}
        with ctx.client() as c:
            resp = c.post("/scans", headers=self._headers(ctx), json=body)
            refused = _acunetix_refusal(ctx, resp) if resp.status >= 400 else None
            if refused is not None:
                raise refused
            check(ctx, resp, f"launching a scan of target {target}", ok=(200, 201))
        location = resp.headers.get("location") or ""
        started = location.rstrip("/").rsplit("/", 1)[-1] if "/scans/" in location else None
        if not started:
            try:
                answer = resp.json()
            except UpstreamError:
                answer = None
            started = text(answer.get("scan_id")) if isinstance(answer, dict) else None
        if not started:
            raise fail(ctx, "Acunetix started the scan without naming it (no Location, no scan_id)", step="response")
        return ScanRef(scan_id=target, run_id=_acunetix_id(started, "scan"))

    def _scan(self, ctx: OperationContext, scan: ScanRef) -> dict[str, Any]:
        run = _acunetix_id(scan.run_id, "scan")
        with ctx.client() as c:
            resp = check(ctx, c.get(vendor_path("/scans/{scan}", scan=run), headers=self._headers(ctx)),
                         "the scan's status")
        session = json_of(ctx, resp, "scan").get("current_session")
        return session if isinstance(session, dict) else {}

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        """``GET /scans/{scan_id}``: its ``current_session.status``."""
        state = (text(self._scan(ctx, scan).get("status")) or "scheduled").lower()
        return ScanState(scan_id=scan.scan_id, status=_ACUNETIX_STATES.get(state, "running"),
                         detail=f"Acunetix status: {state}")

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """The vulnerabilities of the scan's session (``GET /scans/{scan_id}/results/{result_id}/vulnerabilities``,
        cursor paged), written as the Acunetix XML export (``acunetix_xml``)."""
        run = _acunetix_id(scan.run_id, "scan")
        result = text(self._scan(ctx, scan).get("scan_session_id"))
        if not result:
            raise fail(ctx, "Acunetix's finished scan names no scan session (current_session.scan_session_id)",
                       step="response")
        path = vendor_path("/scans/{scan}/results/{result}/vulnerabilities", scan=run, result=result)
        items: list[dict[str, Any]] = []
        for page in _acunetix_pages(ctx, self._headers(ctx), path, "the scan's vulnerabilities"):
            for item in page:
                if not isinstance(item, dict) or not text(item.get("vt_name")):
                    raise fail(ctx, "a vulnerability of the scan has no vt_name", step="response")
                items.append(item)
        return ReportArtifact(name=f"acunetix_{run}.xml", format=acunetix_format.KEY, content=_acunetix_xml(items))

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """Every vulnerability (open, fixed, ignored, false positive), cursor page by page, read as
        ``acunetix_xml``; always a full, complete pull (no change-time filter)."""
        return FindingsFeed(format=acunetix_format.KEY, findings=_acunetix_findings(ctx, self._headers(ctx)),
                            complete=True)

    def _me(self, ctx: OperationContext, c: Any) -> dict[str, Any]:
        resp = check(ctx, c.get("/me", headers=self._headers(ctx)), "GET /me")
        return json_of(ctx, resp, "user")

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /me`` proves the key; ``GET /info`` gives version and license."""
        with ctx.client() as c:
            me = self._me(ctx, c)
            info = json_of(ctx, check(ctx, c.get("/info", headers=self._headers(ctx)), "GET /info"), "info")
        parts = [text(info.get(k)) for k in ("major_version", "minor_version", "build_number")]
        version = ".".join(p for p in parts if p) or None
        raw = info.get("license")
        lic: dict[str, Any] = raw if isinstance(raw, dict) else {}
        license_, warnings = expiry(parse_when(lic.get("expires")), what="Acunetix license",
                                    kind=text(lic.get("product_code")),
                                    expired=lic.get("expired") if isinstance(lic.get("expired"), bool) else None,
                                    extra={"max_targets": lic.get("max_targets")})
        return Probe(product="Acunetix", version=version, license=license_, warnings=warnings,
                     message=f"authenticated as {text(me.get('email')) or 'the API user'}")

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """A trial read of one page of vulnerabilities; the root account holds more than needed."""
        with ctx.client() as c:
            me = self._me(ctx, c)
            resp = c.get("/vulnerabilities", headers=self._headers(ctx), params={"l": 1})
            if resp.status != 403:
                check(ctx, resp, "GET /vulnerabilities")
        root = me.get("child_account") is False  # absent or not a boolean: not claimed
        return permission_report([("read scans and vulnerabilities", "importing findings", resp.status != 403)],
                                 [_ACUNETIX_ROOT] if root else [])


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="burp_dast", display_name="Burp Suite DAST", category=Category.DAST,
        connection_model=BurpConnection, credentials_model=ApiKey, report_formats=("burp_xml",),
        implementation=BurpConnector(),
        docs_url="https://portswigger.net/burp/documentation/dast/user-guide/api-documentation/graphql-api"
                 "/getting-started",
        notes="The API key is sent as the Authorization header with no scheme; import Burp XML reports. A sync reads "
              "the issues of each site's latest succeeded scan (full pulls: no fixed state). A scan launch's scan_id "
              "is a site's id: create_schedule_item scans it now (scan_configuration_ids, else the site's own) and "
              "the scan's issues are imported; a GraphQL refusal for a missing permission is "
              "scan_launch_unavailable.",
    ),
    ConnectorType(
        vendor="zap", display_name="ZAP (OWASP Zed Attack Proxy)", category=Category.DAST,
        connection_model=ZapConnection, credentials_model=ApiKey, report_formats=("zap_xml", "zap_json", "sarif"),
        implementation=ZapConnector(),
        docs_url="https://www.zaproxy.org/docs/api/",
        notes="ZAP closes the connection on a wrong API key unless 'Report permission errors via API' is on (then "
              "HTTP 400 bad_api_key, reported as step auth); it has no license or roles. A scan launch's "
              "scan_id is the target URL: spidered, then actively scanned; its alerts are imported. A sync "
              "reads every alert of ZAP's session (full pulls: ZAP keeps no fixed state).",
    ),
    ConnectorType(
        vendor="invicti", display_name="Invicti Enterprise", category=Category.DAST,
        connection_model=InvictiConnection, credentials_model=InvictiCredentials,
        default_base_url="https://www.netsparkercloud.com/api/1.0", report_formats=("invicti_json",),
        implementation=InvictiConnector(),
        docs_url="https://docs.invicti.com/ie-is/api-settings-overview",
        notes="An ended subscription is a warning (the API still answers). A scan launch's scan_id is an earlier "
              "scan's id: a new scan with its configuration is started and its vulnerabilities report imported. A "
              "sync reads every issue of the account (full pulls: lastSeenDate filters on sightings only).",
    ),
    ConnectorType(
        vendor="acunetix", display_name="Acunetix", category=Category.DAST,
        connection_model=AcunetixConnection, credentials_model=ApiKey,
        report_formats=("acunetix_xml", "acunetix360_json"),
        implementation=AcunetixConnector(),
        docs_url="https://www.acunetix.com/support/docs/api/",
        notes="An expired license is a warning (the API still answers). A sync reads every vulnerability of every "
              "status (full pulls: the API filters by detection time only). A scan launch's scan_id is a target's "
              "id: a scan with the connection's scan_profile_id (default Full Scan) is started now and its session's "
              "vulnerabilities imported; a 403 or a license refusal of the launch is scan_launch_unavailable.",
    ),
)
