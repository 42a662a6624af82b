"""SonarQube Server: token auth, version, commercial license, webhooks.

Tokens go as ``Authorization: Bearer`` from 10.0 and as the Basic user name with an empty password
before; the anonymous ``/api/system/status`` tells which. ``/api/authentication/validate`` proves the
token (SonarQube answers ``{"valid": false}`` rather than 401 for a bad one). The license API is
internal and needs Administer System: it is read only when the token may, never required.
SonarQube signs deliveries with ``X-Sonar-Webhook-HMAC-SHA256`` and has no test delivery.
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
    RegistersWebhooks,
    WebhookRegistered,
    WebhookRegistration,
)
from pmap.connectors.vendors._support import check, expiry, fail, json_of, parse_when, permission_report, text
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse

SECRET_MIN, SECRET_MAX = 16, 200
_BEARER_SINCE = 10


class SonarQubeToken(Credentials):
    """A user token (``squ_...``) or, before 10.0, any token."""

    token: SecretStr = Field(description="SonarQube user token")


class SonarQubeConnection(ConnectionSettings):
    base_url: str = Field(description="SonarQube server, e.g. https://sonarqube.example.com")
    project_key: str | None = Field(default=None, description="Project whose webhook PMAP installs (global if unset)")


def _major(version: str | None) -> int | None:
    head = (version or "").split(".", 1)[0]
    return int(head) if head.isdigit() else None


class _Session:
    """One operation's calls, with the token scheme chosen from the server version."""

    def __init__(self, ctx: OperationContext, c: OutboundClient) -> None:
        self.ctx, self.c = ctx, c
        status = json_of(ctx, check(ctx, c.get("/api/system/status"), "GET /api/system/status"), "system status")
        self.status = status
        self.version = text(status.get("version"))
        major = _major(self.version)
        token = ctx.secret("token")
        self.basic = major is not None and major < _BEARER_SINCE
        self.headers = {} if self.basic else {"Authorization": f"Bearer {token}"}
        self.auth = (token, "") if self.basic else None

    def get(self, path: str, **kw: Any) -> OutboundResponse:
        return self.c.get(path, headers=self.headers, auth=self.auth, **kw)

    def post(self, path: str, **kw: Any) -> OutboundResponse:
        return self.c.post(path, headers=self.headers, auth=self.auth, **kw)

    def validate(self) -> None:
        body = json_of(self.ctx, check(self.ctx, self.get("/api/authentication/validate"),
                                       "GET /api/authentication/validate"), "token validation")
        if body.get("valid") is not True:
            raise fail(self.ctx, "SonarQube did not accept the token (validate answered valid=false): check it "
                                 "has not expired or been revoked", step="auth")


class SonarQubeConnector(Connector, ChecksPermissions, RegistersWebhooks):
    """SonarQube Server: test, least-privilege report and webhook installation."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """Status (version), token validation, and the license where the token may read it."""
        with ctx.client() as c:
            s = _Session(ctx, c)
            s.validate()
            resp = s.get("/api/editions/show_license")
            lic = json_of(ctx, check(ctx, resp, "GET /api/editions/show_license"), "license") \
                if resp.status not in (403, 404) else None
        warnings = []
        state = text(s.status.get("status"))
        if state and state != "UP":
            warnings.append(f"SonarQube reports status {state}, not UP")
        license_ = None
        if lic is not None:
            license_, notes = expiry(parse_when(lic.get("expiresAt")), what="SonarQube license",
                                     kind=text(lic.get("edition")),
                                     expired=lic.get("isExpired") if isinstance(lic.get("isExpired"), bool) else None,
                                     extra={"loc": lic.get("loc"), "max_loc": lic.get("maxLoc")})
            warnings.extend(notes)
        message = None if lic is not None else \
            "connected and authenticated (license not read: it needs Administer System)" if resp.status == 403 else \
            "connected and authenticated (no license API: a Community edition has none)"
        return Probe(product="SonarQube", version=s.version, license=license_, warnings=warnings, message=message)

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """Browse (issue search), the webhook right (project Administer, or Administer System for a global
        webhook), and Administer System as excess when a project webhook would do."""
        conn = ctx.connection
        with ctx.client() as c:
            s = _Session(ctx, c)
            s.validate()
            issues = s.get("/api/issues/search", params={"ps": 1})
            params = {"project": conn.project_key} if conn.project_key else None
            hooks = s.get("/api/webhooks/list", params=params)
            lic = s.get("/api/editions/show_license")
            for resp, what in ((issues, "issue search"), (hooks, "webhook list")):
                if resp.status != 403:
                    check(ctx, resp, what)
        # global webhooks need Administer System; with a project, Administer on it is enough
        hook_right = f"Administer on project {conn.project_key}" if conn.project_key else "Administer System"
        excess = ["Administer System"] if lic.status == 200 and conn.project_key else []
        return permission_report([
            ("Browse", "reading issues", issues.status != 403),
            (hook_right, "installing the webhook", hooks.status != 403),
        ], excess)

    def register_webhook(self, ctx: OperationContext, hook: WebhookRegistration) -> WebhookRegistered:
        """``POST /api/webhooks/create`` (global, or on the connection's project) with the HMAC secret."""
        form = {"name": "PMAP", "url": hook.url}
        secret = hook.secret.get_secret_value() if hook.secret else None
        if secret is not None:
            if not SECRET_MIN <= len(secret) <= SECRET_MAX:
                raise ValidationFailed("SonarQube webhook secrets are 16 to 200 characters",
                                       fields=[FieldProblem("secret", "must be 16-200 characters")])
            form["secret"] = secret
        if ctx.connection.project_key:
            form["project"] = ctx.connection.project_key
        with ctx.client() as c:
            s = _Session(ctx, c)
            if hook.previous_hook_id:  # SonarQube keeps every webhook created: remove PMAP's previous one
                check(ctx, s.post("/api/webhooks/delete", data={"webhook": hook.previous_hook_id}),
                      "POST /api/webhooks/delete", ok=(200, 204, 404),
                      permission_hint="the token's user needs Administer on the project (or globally)")
            resp = check(ctx, s.post("/api/webhooks/create", data=form), "POST /api/webhooks/create",
                         permission_hint="the token's user needs Administer on the project (or globally)")
        key = text((json_of(ctx, resp, "webhook").get("webhook") or {}).get("key"))
        if not key:
            raise fail(ctx, "SonarQube created the webhook but returned no key", step="response")
        return WebhookRegistered(hook_id=key, url=hook.url, signed=secret is not None, ping_supported=False)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="sonarqube", display_name="SonarQube Server", category=Category.SAST,
        connection_model=SonarQubeConnection, credentials_model=SonarQubeToken,
        report_formats=("sonarqube_json", "sarif"), webhook_scheme="sonarqube",
        implementation=SonarQubeConnector(),
        docs_url="https://docs.sonarsource.com/sonarqube-server/latest/extension-guide/web-api/",
        notes="Webhooks are signed (X-Sonar-Webhook-HMAC-SHA256) but SonarQube has no test delivery. The license "
              "is read only when the token holds Administer System.",
    ),
)
