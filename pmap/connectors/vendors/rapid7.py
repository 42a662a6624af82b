"""Rapid7 InsightVM security console API v3 (``https://HOST:3780/api/3``), HTTP Basic.

``GET /administration/info`` proves the credentials and gives the version. The license call needs
a Global Administrator, which PMAP should not be given: it is read only when the account already is
one (``info.superuser``), and that earns a least-privilege warning.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ConnectionSettings,
    ConnectorType,
    Credentials,
    Operation,
    OperationContext,
    PermissionReport,
    Probe,
)
from pmap.connectors.vendors._support import check, dig, expiry, json_of, parse_when, permission_report, text

_ADMIN_WARNING = ("the account is a Global Administrator: PMAP only reads assets and vulnerabilities; use a "
                  "user with a read-only role on the sites it should see")


class InsightVMCredentials(Credentials):
    """A security console user (HTTP Basic)."""

    username: str = Field(min_length=1, description="Console user name")
    password: SecretStr = Field(description="Console password")


class InsightVMConnection(ConnectionSettings):
    base_url: str = Field(description="Console API base, e.g. https://insightvm.example.com:3780/api/3")


def _auth(ctx: OperationContext) -> tuple[str, str]:
    return ctx.credentials.username, ctx.secret("password")


class InsightVMConnector:
    """InsightVM console: version, license (for administrators), asset read right."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /administration/info``; ``GET /administration/license`` only for a Global Administrator."""
        with ctx.client() as c:
            info = json_of(ctx, check(ctx, c.get("/administration/info", auth=_auth(ctx)),
                                      "GET /administration/info"), "console info")
            superuser = info.get("superuser") is True
            lic = None
            if superuser:
                lic = json_of(ctx, check(ctx, c.get("/administration/license", auth=_auth(ctx)),
                                         "GET /administration/license"), "license")
        warnings = [_ADMIN_WARNING] if superuser else []
        license_ = None
        if lic is not None:
            status = text(lic.get("status"))
            license_, notes = expiry(
                parse_when(lic.get("expires")), what="InsightVM license", kind=text(lic.get("edition")),
                status=status, expired=status.lower() == "expired" if status else None,
                extra={"evaluation": lic.get("evaluation"), "perpetual": lic.get("perpetual")})
            warnings.extend(notes)
        version = text(dig(info, "version", "semantic")) or text(dig(info, "version", "build"))
        message = None if superuser else \
            "connected and authenticated (license not read: it needs a Global Administrator)"
        return Probe(product="Rapid7 InsightVM", version=version, license=license_, warnings=warnings,
                     message=message)

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """A one-asset read (what PMAP needs) and the Global Administrator flag (more than it needs)."""
        with ctx.client() as c:
            info = json_of(ctx, check(ctx, c.get("/administration/info", auth=_auth(ctx)),
                                      "GET /administration/info"), "console info")
            resp = c.get("/assets", auth=_auth(ctx), params={"page": 0, "size": 1})
            if resp.status != 403:
                check(ctx, resp, "GET /assets")
        excess = ["Global Administrator"] if info.get("superuser") is True else []
        return permission_report([("View Site Asset Data", "reading assets and vulnerabilities", resp.status != 403)],
                                 excess)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="rapid7_insightvm",
        display_name="Rapid7 InsightVM",
        category=Category.VM,
        connection_model=InsightVMConnection,
        credentials_model=InsightVMCredentials,
        report_formats=("nexpose_xml",),
        implementation=InsightVMConnector(),
        operations=(Operation.TEST_CONNECTION, Operation.CHECK_PERMISSIONS),
        docs_url="https://help.rapid7.com/insightvm/en-us/api/index.html",
        notes="Import XML 2.0 reports (nexpose_xml). The license is read only when the account is a Global "
              "Administrator, which the test flags as more than PMAP needs.",
    ),
)
