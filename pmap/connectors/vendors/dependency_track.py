"""OWASP Dependency-Track API server: ``X-Api-Key`` of a team.

``GET /api/version`` answers anonymously, so the test also reads the key's team
(``GET /api/v1/team/self``), which lists the team's permissions; servers without that route fall
back to a one-project read. Alpine answers 401/403 with an empty body.

Findings are pulled per project: ``GET /api/v1/project`` page by page (``pageNumber``/``pageSize``,
``X-Total-Count``), then ``GET /api/v1/finding/project/{uuid}?suppressed=true`` for each, one project's
findings in memory at a time (that route is not paged). Dependency-Track offers no change-time filter on
findings, so every pull is full, and complete.
"""

from __future__ import annotations

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
from pmap.connectors.vendors._support import check, fail, json_list, json_of, permission_report, text
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.sast_sca.dependency_track import KEY as FINDINGS_FORMAT
from pmap.findings.formats.sast_sca.dependency_track import api_finding, project_label

NEEDED = (("VIEW_PORTFOLIO", "listing projects"), ("VIEW_VULNERABILITY", "reading findings"))
# write and administration permissions a read-only integration should not hold
EXCESS = {"ACCESS_MANAGEMENT", "SYSTEM_CONFIGURATION", "PORTFOLIO_MANAGEMENT", "VULNERABILITY_ANALYSIS",
          "POLICY_MANAGEMENT", "BOM_UPLOAD", "PROJECT_CREATION_UPLOAD", "POLICY_VIOLATION_ANALYSIS"}
#: projects per page of the project list (a page of projects is small; their findings are read one project at a time)
PROJECT_PAGE = 100


class DependencyTrackKey(Credentials):
    """A team's API key (``odt_...``)."""

    api_key: SecretStr = Field(description="API key of the team PMAP uses")


class DependencyTrackConnection(ConnectionSettings):
    base_url: str = Field(description="API server, e.g. https://dtrack-api.example.com")


def _headers(ctx: OperationContext) -> dict[str, str]:
    return {"X-Api-Key": ctx.secret("api_key")}


def _total(resp: Any) -> int | None:
    raw = resp.headers.get("x-total-count")
    return int(raw) if raw is not None and raw.strip().isdigit() else None


def _projects(ctx: OperationContext, c: OutboundClient) -> Iterator[dict[str, Any]]:
    """Every project the key's team may see, one page of the project list at a time."""
    number, seen = 1, 0
    while True:
        resp = check(ctx, c.get("/api/v1/project", headers=_headers(ctx),
                                params={"pageNumber": number, "pageSize": PROJECT_PAGE}),
                     "listing projects", auth_hint="check the API key", permission_hint="the team needs VIEW_PORTFOLIO")
        page = json_list(ctx, resp, "the projects page")
        total = _total(resp)
        for project in page:
            if not isinstance(project, dict) or not text(project.get("uuid")):
                raise fail(ctx, "a project of Dependency-Track's answer has no uuid", step="response")
            yield project
        seen += len(page)
        if not page or len(page) < PROJECT_PAGE or (total is not None and seen >= total):
            return
        number += 1


def _findings(ctx: OperationContext) -> Iterator[ParsedFinding]:
    with ctx.client() as c:
        for project in _projects(ctx, c):
            target = vendor_path("/api/v1/finding/project/{uuid}", uuid=str(project["uuid"]))
            resp = check(ctx, c.get(target, headers=_headers(ctx), params={"suppressed": "true"}),
                         "reading a project's findings", auth_hint="check the API key",
                         permission_hint="the team needs VIEW_VULNERABILITY (and access to the project)")
            found = json_list(ctx, resp, "the project's findings")
            del resp
            label = project_label(text(project.get("name")), text(project.get("version")))
            for item in found:
                try:
                    finding = api_finding(item, label)
                except ReportError as exc:
                    raise fail(ctx, f"a finding could not be read: {exc.message}", step="response") from None
                yield finding


class DependencyTrackConnector(Connector, ChecksPermissions, SyncsFindings):
    """Dependency-Track: version, the key's team and its permissions, every project's findings."""

    def _team(self, ctx: OperationContext, c: Any) -> dict[str, Any] | None:
        """The key's team, or None on servers without ``/api/v1/team/self`` (then a project read proves the key)."""
        resp = c.get("/api/v1/team/self", headers=_headers(ctx))
        if resp.status in (404, 405):
            check(ctx, c.get("/api/v1/project", headers=_headers(ctx), params={"pageSize": 1}), "GET /api/v1/project",
                  permission_hint="the team needs VIEW_PORTFOLIO")
            return None
        return json_of(ctx, check(ctx, resp, "GET /api/v1/team/self"), "team")

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /api/version`` (anonymous) and ``GET /api/v1/team/self`` (the key)."""
        with ctx.client() as c:
            version = json_of(ctx, check(ctx, c.get("/api/version"), "GET /api/version"), "version")
            team = self._team(ctx, c)
        warnings = []
        if team is not None:
            held = _permissions(team)
            missing = [name for name, _why in NEEDED if name not in held]
            if missing:
                warnings.append(f"the team lacks {', '.join(missing)}: PMAP cannot read projects and findings")
        name = text(team.get("name")) if team else None
        return Probe(product=text(version.get("application")) or "Dependency-Track",
                     version=text(version.get("version")), warnings=warnings,
                     message=f"authenticated as team {name}" if name else None)

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """The team's permissions: view rights needed, write and administration rights excess."""
        with ctx.client() as c:
            team = self._team(ctx, c)
        if team is None:
            note = "this server does not list the key's permissions (no /api/v1/team/self)"
            return permission_report([(n, why, None) for n, why in NEEDED], warnings=[note])
        held = _permissions(team)
        return permission_report([(n, why, n in held) for n, why in NEEDED], held & EXCESS)

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """Every project's findings, suppressed ones included, read as ``dependency_track_fpf``; always a full,
        complete pull (Dependency-Track has no change-time filter, so ``pull.since`` is not used)."""
        return FindingsFeed(format=FINDINGS_FORMAT, findings=_findings(ctx), complete=True)


def _permissions(team: dict[str, Any]) -> set[str]:
    return {str(p.get("name")) for p in team.get("permissions") or [] if isinstance(p, dict)}


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="dependency_track", display_name="OWASP Dependency-Track", category=Category.SCA,
        connection_model=DependencyTrackConnection, credentials_model=DependencyTrackKey,
        report_formats=("dependency_track_fpf", "cyclonedx"),
        implementation=DependencyTrackConnector(),
        docs_url="https://docs.dependencytrack.org/integrations/rest-api/",
        notes="Give PMAP's team VIEW_PORTFOLIO and VIEW_VULNERABILITY only.",
    ),
)
