"""Semgrep AppSec Platform web API (``https://semgrep.dev/api/v1``), Bearer token with the Web API scope.

A token without the Web API scope (an Agent/CI token) gets 404 from the Web API, per Semgrep's
knowledge base ("Web API error 404 and token scopes"); ``GET /deployments`` exists for every token
that may use the API, so a 404 there (or a 403) is step ``permission``: the token is real, it just may
not use this API.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    OperationContext,
    Probe,
)
from pmap.connectors.vendors._support import check, fail, json_of, text


class SemgrepToken(Credentials):
    """A Semgrep API token created with the "Web API" scope."""

    token: SecretStr = Field(description="API token (Web API scope)")


class SemgrepConnection(ConnectionSettings):
    base_url: str = Field(default="https://semgrep.dev/api/v1", description="Semgrep web API base")
    deployment_slug: str | None = Field(default=None, description="Deployment (organization) slug, if several")


class SemgrepConnector(Connector):
    """Semgrep: ``GET /deployments`` proves the token and names the organization."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """List the token's deployments; the configured slug must be among them."""
        with ctx.client() as c:
            resp = check(ctx, c.get("/deployments", headers={"Authorization": f"Bearer {ctx.secret('token')}"}),
                         "GET /deployments", permission=(403, 404),
                         permission_hint="the token lacks the Web API scope (Semgrep answers such tokens 404; a "
                                         "base_url that is not the API's gets 404 too): add the scope or create a "
                                         "token with it (Settings > Tokens)")
        deployments = [d for d in json_of(ctx, resp, "deployments").get("deployments") or [] if isinstance(d, dict)]
        if not deployments:
            raise fail(ctx, "the token sees no deployment", step="permission")
        slug = ctx.connection.deployment_slug
        chosen = next((d for d in deployments if d.get("slug") == slug), None) if slug else deployments[0]
        if chosen is None:
            known = ", ".join(str(d.get("slug")) for d in deployments)
            raise fail(ctx, f"deployment {slug!r} is not visible to this token (it sees: {known})", step="permission")
        name = text(chosen.get("name")) or text(chosen.get("slug"))
        return Probe(product="Semgrep AppSec Platform", message=f"connected and authenticated (deployment {name})")


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="semgrep", display_name="Semgrep AppSec Platform", category=Category.SAST,
        connection_model=SemgrepConnection, credentials_model=SemgrepToken,
        default_base_url="https://semgrep.dev/api/v1", report_formats=("semgrep_json", "sarif"),
        implementation=SemgrepConnector(),
        docs_url="https://semgrep.dev/docs/semgrep-appsec-platform/semgrep-api",
        notes="The API needs a Team or Enterprise plan and a token with the Web API scope.",
    ),
)
