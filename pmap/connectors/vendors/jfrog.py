"""JFrog Xray REST API (``https://HOST/xray/api/v1``), ``Authorization: Bearer <access token>``.

``/system/ping`` answers anonymously and proves nothing. Whether ``/system/version`` needs the token is
not documented per route (Xray's REST introduction says a few calls, "such as SYSTEM calls", need no
authentication), and its answer (``xray_version``, ``xray_revision``) names no user: the test reports the
version, not who is authenticated.
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


class JFrogToken(Credentials):
    """A JFrog platform access token (or an identity token)."""

    access_token: SecretStr = Field(description="Access token")


class XrayConnection(ConnectionSettings):
    base_url: str = Field(description="Xray API base, e.g. https://example.jfrog.io/xray/api/v1")


class XrayConnector(Connector):
    """Xray: ``GET /system/version`` with the token."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """The Xray version and revision (an authenticated read)."""
        with ctx.client() as c:
            headers = {"Authorization": f"Bearer {ctx.secret('access_token')}"}
            resp = check(ctx, c.get("/system/version", headers=headers), "GET /system/version",
                         auth_hint="check the access token (it may have expired)")
        body = json_of(ctx, resp, "version")
        version = text(body.get("xray_version"))
        if version is None:
            raise fail(ctx, "the version answer has no xray_version", step="response")
        revision = text(body.get("xray_revision"))
        return Probe(product="JFrog Xray", version=version,
                     message=f"connected (revision {revision})" if revision else None)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="jfrog_xray", display_name="JFrog Xray", category=Category.SCA,
        connection_model=XrayConnection, credentials_model=JFrogToken, report_formats=("jfrog_xray_json",),
        implementation=XrayConnector(),
        docs_url="https://jfrog.com/help/r/xray-rest-apis/introduction-to-the-xray-rest-apis",
        notes="Import Xray JSON reports; report generation needs the Manage Reports permission.",
    ),
)
