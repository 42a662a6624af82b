"""runZero API v1.0 (``https://console.runzero.com/api/v1.0``), ``Authorization: Bearer <key>``.

The key's prefix is its scope: ``ET`` export token (export routes only) < ``OT`` organization key <
``CT`` account key (every organization). An export token is tested on the asset export (one
asset); the others read ``GET /org``. An account key is more than PMAP needs.
"""

from __future__ import annotations

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

_SCOPES = {"ET": "export token", "OT": "organization API key", "CT": "account API key"}
_ACCOUNT_WARNING = ("this is an account API key (CT...): it reaches every organization; use an export token (ET...) "
                    "or an organization key (OT...)")


class RunZeroKey(Credentials):
    """An export token (``ET...``), organization key (``OT...``) or account key (``CT...``)."""

    api_key: SecretStr = Field(description="API key or export token")


class RunZeroConnection(ConnectionSettings):
    base_url: str = Field(default="https://console.runzero.com/api/v1.0", description="runZero API base")
    organization_id: str | None = Field(default=None, pattern=r"^[\w-]+$",
                                        description="Organization id (needed with an account key)")


def _kind(ctx: OperationContext) -> str:
    return ctx.secret("api_key")[:2].upper()


class RunZeroConnector(Connector, ChecksPermissions):
    """runZero: the key's organization, or the asset export for export tokens."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /org`` (organization/account keys) or a one-asset export (export tokens)."""
        headers = {"Authorization": f"Bearer {ctx.secret('api_key')}"}
        kind = _kind(ctx)
        oid = ctx.connection.organization_id
        params = {"_oid": oid} if oid else None
        with ctx.client() as c:
            if kind == "ET":
                check(ctx, c.get("/export/org/assets.json", headers=headers, params={"page_size": 1}),
                      "the asset export")
                return Probe(product="runZero", message="connected and authenticated (export token)")
            resp = check(ctx, c.get("/org", headers=headers, params=params), "GET /org",
                         permission_hint="use an organization key or an export token")
        org = json_of(ctx, resp, "organization")
        warnings = [_ACCOUNT_WARNING] if kind == "CT" else []
        scope = _SCOPES.get(kind, "key of an unknown kind")
        return Probe(product="runZero", warnings=warnings,
                     message=f"connected to organization {text(org.get('name')) or text(org.get('id'))} ({scope})")

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """The key's scope (from its prefix), confirmed by a one-asset export read."""
        kind = _kind(ctx)
        oid = ctx.connection.organization_id
        params: dict[str, str | int] = {"page_size": 1, **({"_oid": oid} if oid else {})}
        with ctx.client() as c:
            resp = c.get("/export/org/assets.json", headers={"Authorization": f"Bearer {ctx.secret('api_key')}"},
                         params=params)
            if resp.status != 403:
                check(ctx, resp, "the asset export")
        excess = ["account-wide API key (CT)"] if kind == "CT" else []
        notes = [] if kind in _SCOPES else ["the key has no known prefix (ET, OT, CT); its scope is unknown"]
        return permission_report([("asset export", "importing assets", resp.status != 403)], excess, notes)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="runzero", display_name="runZero", category=Category.NETWORK_DISCOVERY,
        connection_model=RunZeroConnection, credentials_model=RunZeroKey,
        default_base_url="https://console.runzero.com/api/v1.0", report_formats=(),
        implementation=RunZeroConnector(),
        docs_url="https://www.runzero.com/docs/leveraging-the-api/",
        notes="An asset inventory: no findings to sync. Least privilege: an export token (ET...) is enough; an "
              "account key (CT...) is flagged.",
    ),
)
