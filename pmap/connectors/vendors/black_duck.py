"""Black Duck: the API token is exchanged at ``POST /api/tokens/authenticate`` for a bearer token.

The exchange sends ``Authorization: token <api token>`` and answers ``bearerToken`` (plus
``expiresInMilliseconds`` and an ``X-CSRF-TOKEN`` header needed only for writes).
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
from pmap.connectors.vendors._support import check, fail, json_of, permission_report, text

_ACCEPT = "application/json"


class BlackDuckToken(Credentials):
    """A Black Duck user API token."""

    api_token: SecretStr = Field(description="API token")


class BlackDuckConnection(ConnectionSettings):
    base_url: str = Field(description="Black Duck server, e.g. https://blackduck.example.com")


class BlackDuckConnector(Connector, ChecksPermissions):
    """Black Duck: token exchange, server version, project read right."""

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
        notes="Import CycloneDX SBOM exports (with vulnerabilities) from Black Duck.",
    ),
)
