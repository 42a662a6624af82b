"""Rapid7 InsightVM security console API v3 (``https://HOST:3780/api/3``), HTTP Basic.

``GET /administration/info`` proves the credentials and gives the version. Its ``superuser`` and ``user``
fields describe the OS account running the console service, not the API user (console OpenAPI spec, as
generated into rapid7/vm-console-client-ruby ``Info``), so they say nothing about PMAP's rights. The license
call is documented for Global Administrators only (and declares 401, no 403, for others): PMAP tries it, reads
the license when it is answered, and then warns that the account has more rights than it needs.
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
from pmap.connectors.vendors._support import check, dig, expiry, json_of, parse_when, permission_report, text
from pmap.core.outbound import OutboundClient

_ADMIN_WARNING = ("the account is a Global Administrator: PMAP only reads assets and vulnerabilities; use a "
                  "user with a read-only role on the sites it should see")


class InsightVMCredentials(Credentials):
    """A security console user (HTTP Basic)."""

    username: str = Field(min_length=1, description="Console user name")
    password: SecretStr = Field(description="Console password")


class InsightVMConnection(ConnectionSettings):
    base_url: str = Field(description="Console API base, e.g. https://insightvm.example.com:3780/api/3")


_REFUSED = (401, 403)  # after /administration/info accepted the same credentials: a missing right


def _auth(ctx: OperationContext) -> tuple[str, str]:
    return ctx.credentials.username, ctx.secret("password")


def _license(ctx: OperationContext, c: OutboundClient) -> dict[str, Any] | None:
    """The license when the console answers it (Global Administrators only), else None."""
    resp = c.get("/administration/license", auth=_auth(ctx))
    if resp.status in _REFUSED:
        return None
    return json_of(ctx, check(ctx, resp, "GET /administration/license"), "license")


class InsightVMConnector(Connector, ChecksPermissions):
    """InsightVM console: version, license (for administrators), asset read right."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /administration/info``; ``GET /administration/license`` (answered to Global Administrators)."""
        with ctx.client() as c:
            info = json_of(ctx, check(ctx, c.get("/administration/info", auth=_auth(ctx)),
                                      "GET /administration/info"), "console info")
            lic = _license(ctx, c)
        warnings = [_ADMIN_WARNING] if lic is not None else []
        license_ = None
        if lic is not None:
            status = text(lic.get("status"))
            license_, notes = expiry(
                parse_when(lic.get("expires")), what="InsightVM license", kind=text(lic.get("edition")),
                status=status, expired=status.lower() == "expired" if status else None,
                extra={"evaluation": lic.get("evaluation"), "perpetual": lic.get("perpetual")})
            warnings.extend(notes)
        version = text(dig(info, "version", "semantic")) or text(dig(info, "version", "build"))
        message = None if lic is not None else \
            "connected and authenticated (license not read: it needs a Global Administrator)"
        return Probe(product="Rapid7 InsightVM", version=version, license=license_, warnings=warnings,
                     message=message)

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """A one-asset read (what PMAP needs) and the license read (Global Administrator: more than it needs)."""
        with ctx.client() as c:
            check(ctx, c.get("/administration/info", auth=_auth(ctx)), "GET /administration/info")
            resp = c.get("/assets", auth=_auth(ctx), params={"page": 0, "size": 1})
            granted: bool | None = False
            notes: list[str] = []
            if resp.status not in _REFUSED:
                page = json_of(ctx, check(ctx, resp, "GET /assets"), "asset page")
                # the console lists only the assets the user may see: none can mean no access or nothing scanned
                granted = True if page.get("resources") else None
                if granted is None:
                    notes.append("the account sees no assets: either nothing has been scanned yet or it has no "
                                 "site or asset group access")
            admin = _license(ctx, c) is not None
        excess = ["Global Administrator"] if admin else []
        return permission_report([("View Site Asset Data", "reading assets and vulnerabilities", granted)],
                                 excess, notes)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="rapid7_insightvm",
        display_name="Rapid7 InsightVM",
        category=Category.VM,
        connection_model=InsightVMConnection,
        credentials_model=InsightVMCredentials,
        report_formats=("nexpose_xml",),
        implementation=InsightVMConnector(),
        docs_url="https://help.rapid7.com/insightvm/en-us/api/index.html",
        notes="Import XML 2.0 reports (nexpose_xml). The license is read only when the account is a Global "
              "Administrator, which the test flags as more than PMAP needs.",
    ),
)
