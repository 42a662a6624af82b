"""Semgrep AppSec Platform web API (``https://semgrep.dev/api/v1``), Bearer token with the Web API scope.

A token without the Web API scope (an Agent/CI token) gets 404 from the Web API, per Semgrep's
knowledge base ("Web API error 404 and token scopes"); ``GET /deployments`` exists for every token
that may use the API, so a 404 there (or a 403) is step ``permission``: the token is real, it just may
not use this API.

Findings are pulled from ``GET /deployments/{slug}/findings`` (Code findings, ``dedup=true`` so each is
listed once across branches), ``page`` (from 0) and ``page_size`` until a short page. Semgrep's only time
filter, ``since``, filters on ``relevant_since`` (when a finding was first detected or reintroduced), not
on a change of state: a finding fixed or ignored since the last sync would be missed, so every pull is full,
and complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    FindingsFeed,
    FindingsPull,
    OperationContext,
    Probe,
    SyncsFindings,
)
from pmap.connectors.vendors._support import check, fail, json_of, text
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.sast_sca.semgrep import KEY as FINDINGS_FORMAT
from pmap.findings.formats.sast_sca.semgrep import api_finding

#: findings per page: Semgrep takes 100 to 3000; 100 keeps one page small in memory
PAGE_SIZE = 100
_SCOPE_HINT = ("the token lacks the Web API scope (Semgrep answers such tokens 404; a base_url that is not the "
               "API's gets 404 too): add the scope or create a token with it (Settings > Tokens)")


class SemgrepToken(Credentials):
    """A Semgrep API token created with the "Web API" scope."""

    token: SecretStr = Field(description="API token (Web API scope)")


class SemgrepConnection(ConnectionSettings):
    base_url: str = Field(default="https://semgrep.dev/api/v1", description="Semgrep web API base")
    deployment_slug: str | None = Field(default=None, description="Deployment (organization) slug, if several")


def _headers(ctx: OperationContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.secret('token')}"}


def _deployments(ctx: OperationContext, c: OutboundClient) -> list[dict[str, Any]]:
    resp = check(ctx, c.get("/deployments", headers=_headers(ctx)), "GET /deployments", permission=(403, 404),
                 permission_hint=_SCOPE_HINT)
    return [d for d in json_of(ctx, resp, "deployments").get("deployments") or [] if isinstance(d, dict)]


def _page_items(ctx: OperationContext, resp: OutboundResponse) -> list[Any]:
    """The findings of one page: ``findings`` (or ``sastFindings.findings``, as newer references show it)."""
    body = json_of(ctx, resp, "the findings page")
    items = body.get("findings")
    if items is None and isinstance(body.get("sastFindings"), dict):
        items = body["sastFindings"].get("findings")
    if not isinstance(items, list):
        raise fail(ctx, "Semgrep's findings page has no findings list", step="response")
    return items


def _findings(ctx: OperationContext) -> Iterator[ParsedFinding]:
    with ctx.client() as c:
        slug = ctx.connection.deployment_slug or text((_deployments(ctx, c) or [{}])[0].get("slug"))
        if not slug:
            raise fail(ctx, "the token sees no deployment", step="permission")
        target = vendor_path("/deployments/{slug}/findings", slug=slug)
        page = 0
        while True:
            resp = check(ctx, c.get(target, headers=_headers(ctx), params={
                "issue_type": "sast", "dedup": "true", "page": page, "page_size": PAGE_SIZE}),
                "listing findings", permission=(403, 404), permission_hint=_SCOPE_HINT)
            items = _page_items(ctx, resp)
            del resp
            for item in items:
                try:
                    finding = api_finding(item)
                except ReportError as exc:
                    raise fail(ctx, f"a finding could not be read: {exc.message}", step="response") from None
                yield finding
            if len(items) < PAGE_SIZE:
                return
            page += 1


class SemgrepConnector(Connector, SyncsFindings):
    """Semgrep: ``GET /deployments`` proves the token and names the organization; findings are pulled."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The deployment's Code findings, open, fixed and ignored, page by page; always a full, complete pull
        (Semgrep's ``since`` filters on detection time, not on a change of state)."""
        return FindingsFeed(format=FINDINGS_FORMAT, findings=_findings(ctx), complete=True)

    def test_connection(self, ctx: OperationContext) -> Probe:
        """List the token's deployments; the configured slug must be among them."""
        with ctx.client() as c:
            deployments = _deployments(ctx, c)
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
