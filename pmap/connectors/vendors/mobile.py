"""Mobile application scanners: MobSF (REST) and NowSecure Platform (GraphQL).

MobSF has no version route: the test lists one recent scan. NowSecure answers GraphQL errors with
HTTP 200; a ``Forbidden`` error means the token works but may not read applications.
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
from pmap.connectors.vendors._support import check, dig, fail, json_of


class MobSFKey(Credentials):
    """The MobSF REST API key."""

    api_key: SecretStr = Field(description="REST API key")


class MobSFConnection(ConnectionSettings):
    base_url: str = Field(description="MobSF API base, e.g. https://mobsf.example.com/api/v1")


class MobSFConnector(Connector):
    """MobSF: ``GET /scans`` with ``X-Mobsf-Api-Key``."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """List one recent scan (MobSF has no version route)."""
        with ctx.client() as c:
            resp = check(ctx, c.get("/scans", headers={"X-Mobsf-Api-Key": ctx.secret("api_key")},
                                    params={"page": 1, "page_size": 1}), "GET /scans")
        body = json_of(ctx, resp, "scan list")
        count = body.get("count")
        return Probe(product="MobSF",
                     message=f"connected and authenticated ({count} scans)" if isinstance(count, int) else None)


class NowSecureToken(Credentials):
    """A NowSecure Platform API token."""

    token: SecretStr = Field(description="API bearer token")


class NowSecureConnection(ConnectionSettings):
    base_url: str = Field(default="https://api.nowsecure.com", description="API host; GraphQL is at <base>/graphql")


_NOWSECURE_QUERY = "query PmapConnectionTest { auto { applications { ref } } }"


class NowSecureConnector(Connector):
    """NowSecure: a minimal GraphQL query over the token's applications."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``auto { applications { ref } }``; a GraphQL ``Forbidden`` is step ``permission``."""
        with ctx.client() as c:
            # a read-only query: safe to retry when rate-limited
            resp = check(ctx, c.post("/graphql", headers={"Authorization": f"Bearer {ctx.secret('token')}"},
                                     json={"query": _NOWSECURE_QUERY}, retry_unsafe=True), "the GraphQL API")
        body = json_of(ctx, resp, "GraphQL answer")
        errors = body.get("errors") or []
        if errors:
            message = str(dig(errors, 0, "message") or "").lower()
            denied = "forbidden" in message or "permission" in message or "unauthorized" in message
            raise fail(ctx, "the token may not read applications" if denied else "the GraphQL query failed",
                       step="permission" if denied else "response", resp=resp)
        apps = dig(body, "data", "auto", "applications")
        if not isinstance(apps, list):
            raise fail(ctx, "the GraphQL answer has no auto.applications list", step="response")
        return Probe(product="NowSecure Platform", message=f"connected and authenticated ({len(apps)} applications)")


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="mobsf", display_name="MobSF", category=Category.MOBILE,
        connection_model=MobSFConnection, credentials_model=MobSFKey, report_formats=("mobsf_json",),
        implementation=MobSFConnector(),
        docs_url="https://mobsf.github.io/docs/#/rest_api",
        notes="Import MobSF JSON reports; MobSF has no license or roles.",
    ),
    ConnectorType(
        vendor="nowsecure", display_name="NowSecure Platform", category=Category.MOBILE,
        connection_model=NowSecureConnection, credentials_model=NowSecureToken,
        default_base_url="https://api.nowsecure.com", implementation=NowSecureConnector(),
        docs_url="https://docs.nowsecure.com/api/auto/graphql",
        notes="Connection test only; PMAP has no NowSecure report format yet.",
    ),
)
