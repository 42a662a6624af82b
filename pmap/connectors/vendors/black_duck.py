"""Black Duck: the API token is exchanged at ``POST /api/tokens/authenticate`` for a bearer token.

The exchange sends ``Authorization: token <api token>`` and answers ``bearerToken`` (plus
``expiresInMilliseconds`` and an ``X-CSRF-TOKEN`` header needed only for writes).

Findings are pulled per project version: ``GET /api/projects``, each project's ``/versions``, then each version's
``/vulnerable-bom-components`` (one item per vulnerability of a BOM component, ``vulnerabilityWithRemediation``),
all paged by ``offset``/``limit`` until ``totalCount``, one page in memory. PMAP has no Black Duck report format:
each item becomes the CycloneDX vulnerability it describes and is read by the ``cyclonedx`` format's converter
(the project version as repository). Remediation status REMEDIATION_COMPLETE and PATCHED are fixed, MITIGATED
mitigated, NOT_AFFECTED not affected, IGNORED and DUPLICATE suppressed; the others are open. Black Duck documents no
change-time filter on the vulnerable BOM, so every pull is full, and complete.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    FindingsFeed,
    FindingsPull,
    OperationContext,
    PermissionReport,
    Probe,
    SyncsFindings,
)
from pmap.connectors.vendors._support import check, dig, fail, json_of, permission_report, text
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.sast_sca.cyclonedx import KEY as FINDINGS_FORMAT
from pmap.findings.formats.sast_sca.cyclonedx import vex_finding

_ACCEPT = "application/json"
#: the media type of the BOM routes (vulnerable-bom-components)
BOM_ACCEPT = "application/vnd.blackducksoftware.bill-of-materials-6+json"
#: projects, versions and vulnerable components per page (offset/limit paging)
PAGE_SIZE = 100
_READ_HINT = "the user needs a project role (Project Viewer or higher) on the projects PMAP reads"
#: remediation status -> CycloneDX analysis state (the cyclonedx converter's fixed and not-affected states)
_VEX_STATE = {"REMEDIATION_COMPLETE": "resolved", "PATCHED": "resolved_with_pedigree", "NOT_AFFECTED": "not_affected"}
#: remediation statuses CycloneDX has no state for, as PMAP reads them
_STATUS = {"MITIGATED": "mitigated", "IGNORED": "ignored", "DUPLICATE": "suppressed"}
_CWE = re.compile(r"\d+")


class BlackDuckToken(Credentials):
    """A Black Duck user API token."""

    api_token: SecretStr = Field(description="API token")


class BlackDuckConnection(ConnectionSettings):
    base_url: str = Field(description="Black Duck server, e.g. https://blackduck.example.com")


def _id_of(ctx: OperationContext, item: Any, what: str) -> str:
    """The id of a Black Duck resource: the last segment of its ``_meta.href``."""
    href = text(dig(item, "_meta", "href")) if isinstance(item, dict) else None
    if not href:
        raise fail(ctx, f"a {what} of Black Duck's answer has no _meta.href", step="response")
    return href.rstrip("/").rsplit("/", 1)[-1]


def _paged(ctx: OperationContext, c: OutboundClient, headers: dict[str, str], path: str, what: str) -> Iterator[Any]:
    """The ``items`` of every page of ``path`` (``offset``/``limit``, ``totalCount``), one page in memory."""
    offset = 0
    while True:
        resp = check(ctx, c.get(path, headers=headers, params={"offset": offset, "limit": PAGE_SIZE}), what,
                     auth_hint="check the API token (it may have been revoked)", permission_hint=_READ_HINT)
        body = json_of(ctx, resp, what)
        del resp
        items = body.get("items")
        if not isinstance(items, list):
            raise fail(ctx, f"Black Duck's answer to {what} has no items list", step="response")
        yield from items
        offset += len(items)
        total = body.get("totalCount")
        if len(items) < PAGE_SIZE or (isinstance(total, int) and offset >= total):
            return


def api_component_finding(item: Any, label: str | None) -> ParsedFinding:
    """One vulnerable BOM component item as the CycloneDX vulnerability it describes, read by that format."""
    if not isinstance(item, dict):
        raise ReportError(FINDINGS_FORMAT, "a vulnerable component is not a JSON object", "items[]")
    vuln = item.get("vulnerabilityWithRemediation")
    if not isinstance(vuln, dict):
        raise ReportError(FINDINGS_FORMAT, "a vulnerable component has no vulnerabilityWithRemediation", "items[]")
    status = (text(vuln.get("remediationStatus")) or "").upper()
    cvss3: dict[str, Any] = vuln["cvss3"] if isinstance(vuln.get("cvss3"), dict) else {}
    rating: dict[str, Any] = {"severity": (text(vuln.get("severity")) or "unknown").lower(),
                              "score": vuln.get("overallScore", vuln.get("baseScore"))}
    if cvss3.get("vector"):
        rating.update(method="CVSSv31", vector=cvss3.get("vector"), score=cvss3.get("baseScore", rating["score"]))
    source = text(vuln.get("source"))
    vex = {
        "id": text(vuln.get("vulnerabilityName")),
        "source": {"name": source} if source else {},
        "description": text(vuln.get("description")),
        "ratings": [rating],
        "cwes": [int(n) for n in _CWE.findall(text(vuln.get("cweId")) or "")],
        "created": vuln.get("vulnerabilityPublishedDate"),
        "analysis": {"state": _VEX_STATE[status]} if status in _VEX_STATE else {},
    }
    finding = vex_finding(vex, text(item.get("componentName")), text(item.get("componentVersionName")))
    finding.repository = label
    finding.status = _STATUS.get(status, finding.status)
    finding.extra["remediation_status"] = status or None
    return finding


class BlackDuckConnector(Connector, ChecksPermissions, SyncsFindings):
    """Black Duck: token exchange, server version, project read right; each project version's vulnerable BOM."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """Every project version's vulnerable BOM components, read by the ``cyclonedx`` converter; always a full,
        complete pull (no change-time filter, so ``pull.since`` is not used)."""
        return FindingsFeed(format=FINDINGS_FORMAT, findings=self._findings(ctx), complete=True)

    def _findings(self, ctx: OperationContext) -> Iterator[ParsedFinding]:
        with ctx.client() as c:
            headers = self._bearer(ctx, c)
            bom = {**headers, "Accept": BOM_ACCEPT}
            for project in _paged(ctx, c, headers, "/api/projects", "listing projects"):
                pid = _id_of(ctx, project, "project")
                versions = vendor_path("/api/projects/{p}/versions", p=pid)
                for version in _paged(ctx, c, headers, versions, "listing a project's versions"):
                    vid = _id_of(ctx, version, "project version")
                    label = " ".join(t for t in (text(project.get("name")), text(version.get("versionName"))) if t)
                    target = vendor_path("/api/projects/{p}/versions/{v}/vulnerable-bom-components", p=pid, v=vid)
                    for item in _paged(ctx, c, bom, target, "reading a version's vulnerable components"):
                        try:
                            finding = api_component_finding(item, label or vid)
                        except ReportError as exc:
                            raise fail(ctx, f"a vulnerable component could not be read: {exc.message}",
                                       step="response") from None
                        yield finding

    def _bearer(self, ctx: OperationContext, c: Any) -> dict[str, str]:
        # the exchange changes nothing on the server: safe to retry when rate-limited
        headers = {"Authorization": f"token {ctx.secret('api_token')}", "Accept": _ACCEPT}
        resp = check(ctx, c.post("/api/tokens/authenticate", headers=headers, retry_unsafe=True),
                     "the token exchange", auth_hint="check the API token (it may have been revoked)")
        bearer = text(json_of(ctx, resp, "token exchange").get("bearerToken"))
        if not bearer:
            raise fail(ctx, "the token exchange answered without a bearerToken", step="response")
        return {"Authorization": f"Bearer {bearer}", "Accept": _ACCEPT}

    def test_connection(self, ctx: OperationContext) -> Probe:
        """Exchange the token, then ``GET /api/current-version`` and ``GET /api/current-user``."""
        with ctx.client() as c:
            headers = self._bearer(ctx, c)
            version = json_of(ctx, check(ctx, c.get("/api/current-version", headers=headers),
                                         "GET /api/current-version"), "version")
            user = json_of(ctx, check(ctx, c.get("/api/current-user", headers=headers), "GET /api/current-user"),
                           "current user")
        return Probe(product="Black Duck", version=text(version.get("version")),
                     message=f"authenticated as {text(user.get('userName')) or 'the token user'}")

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """A one-project read: what PMAP needs to reach BOMs and vulnerabilities.

        Black Duck lists only the projects the user may see, so an empty list is no refusal: it cannot
        tell a user without project roles from a server without projects (then the right is unknown)."""
        with ctx.client() as c:
            headers = self._bearer(ctx, c)
            resp = c.get("/api/projects", headers=headers, params={"limit": 1})
            if resp.status != 403:
                check(ctx, resp, "GET /api/projects")
        name, why = "read projects (Project Viewer or higher)", "reading BOMs and vulnerabilities"
        if resp.status == 403:
            return permission_report([(name, why, False)])
        body = json_of(ctx, resp, "project list")
        items, total = body.get("items"), body.get("totalCount")
        if (isinstance(items, list) and items) or (isinstance(total, int) and total > 0):
            return permission_report([(name, why, True)])
        return permission_report([(name, why, None)], warnings=[
            "the user sees no project: give it a project role (Project Viewer or higher) on the projects PMAP "
            "should read"])


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="black_duck", display_name="Black Duck", category=Category.SCA,
        connection_model=BlackDuckConnection, credentials_model=BlackDuckToken, report_formats=("cyclonedx",),
        implementation=BlackDuckConnector(),
        docs_url="https://documentation.blackduck.com/bundle/bd-hub/page/REST_API/rest-api-overview.html",
        notes="Syncs each project version's vulnerable BOM components, or import CycloneDX SBOM exports (with "
              "vulnerabilities) from Black Duck.",
    ),
)
