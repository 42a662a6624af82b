"""OWASP Dependency-Track API server: ``X-Api-Key`` of a team.

``GET /api/version`` answers anonymously, so the test also reads the key's team
(``GET /api/v1/team/self``), which lists the team's permissions; servers without that route fall
back to a one-project read. Alpine answers 401/403 with an empty body.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    OperationContext,
    PermissionReport,
    Probe,
)
from pmap.connectors.vendors._support import check, json_of, permission_report, text

NEEDED = (("VIEW_PORTFOLIO", "listing projects"), ("VIEW_VULNERABILITY", "reading findings"))
# write and administration permissions a read-only integration should not hold
EXCESS = {"ACCESS_MANAGEMENT", "SYSTEM_CONFIGURATION", "PORTFOLIO_MANAGEMENT", "VULNERABILITY_ANALYSIS",
          "POLICY_MANAGEMENT", "BOM_UPLOAD", "PROJECT_CREATION_UPLOAD", "POLICY_VIOLATION_ANALYSIS"}


class DependencyTrackKey(Credentials):
    """A team's API key (``odt_...``)."""

    api_key: SecretStr = Field(description="API key of the team PMAP uses")


class DependencyTrackConnection(ConnectionSettings):
    base_url: str = Field(description="API server, e.g. https://dtrack-api.example.com")


def _headers(ctx: OperationContext) -> dict[str, str]:
    return {"X-Api-Key": ctx.secret("api_key")}


class DependencyTrackConnector(Connector, ChecksPermissions):
    """Dependency-Track: version, the key's team and its permissions."""

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
