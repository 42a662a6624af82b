"""GitHub code scanning (GitHub.com and Enterprise Server): token test, scopes, repository webhooks.

Classic tokens list their scopes in ``X-OAuth-Scopes`` on every answer; fine-grained tokens and
Apps do not, so rights are then probed on the configured repository. GitHub answers 404 (not 403)
on hook endpoints the token may not manage. Deliveries are signed ``X-Hub-Signature-256``; a
``ping`` can be requested at any time.
"""

from __future__ import annotations

from typing import Any

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
    WebhookRegistered,
    WebhookRegistration,
)
from pmap.connectors.vendors._support import check, expiry, fail, json_of, parse_when, permission_report, text
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundResponse

_API_VERSION = "2022-11-28"
_ALERT_SCOPES = {"security_events", "repo"}
_HOOK_SCOPES = {"admin:repo_hook", "write:repo_hook"}
# scopes PMAP can use; anything else a classic token holds is more than it needs ("repo" included:
# security_events is enough for code scanning, even on private repositories)
_USEFUL_SCOPES = {"security_events", "admin:repo_hook", "write:repo_hook", "read:repo_hook", "read:user",
                  "read:org", "public_repo"}
_HOOK_HINT = ("the token needs admin:repo_hook (classic) or Webhooks: write (fine-grained) on the repository, "
              "and the repository must exist (GitHub answers 404 for both)")


class GitHubToken(Credentials):
    """A personal access token (classic or fine-grained) or an App installation token."""

    token: SecretStr = Field(description="GitHub token")


class GitHubCodeScanningConnection(ConnectionSettings):
    base_url: str = Field(default="https://api.github.com",
                          description="https://api.github.com or https://HOST/api/v3")
    repository: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$", description="owner/repo")


def _headers(ctx: OperationContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.secret('token')}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": _API_VERSION}


def _repo(ctx: OperationContext) -> str:
    repo = ctx.connection.repository
    if not repo:
        raise ValidationFailed("this operation needs the repository (owner/repo) in the connection settings",
                               fields=[FieldProblem("connection.repository", "is required for this operation")])
    return str(repo)


def scopes_of(resp: OutboundResponse) -> set[str] | None:
    """The classic token's scopes, or None when the answer lists none (fine-grained token, App)."""
    raw = resp.headers.get("x-oauth-scopes")
    return None if raw is None else {s.strip() for s in raw.split(",") if s.strip()}


class GitHubCodeScanningConnector:
    """GitHub: ``GET /user``, code scanning alerts of the repository, repository webhooks."""

    def _user(self, ctx: OperationContext, c: Any) -> tuple[dict[str, Any], OutboundResponse]:
        resp = check(ctx, c.get("/user", headers=_headers(ctx)), "GET /user", auth_hint="check the token")
        return json_of(ctx, resp, "the user"), resp

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /user``; with a repository configured, one code scanning alert is read too."""
        with ctx.client() as c:
            user, resp = self._user(ctx, c)
            if ctx.connection.repository:
                check(ctx, c.get(f"/repos/{_repo(ctx)}/code-scanning/alerts", headers=_headers(ctx),
                                 params={"per_page": 1}), "reading code scanning alerts",
                      permission_hint="the token needs security_events (classic) or Code scanning alerts: read, "
                                      "and the repository needs code scanning (GitHub Advanced Security)")
        ghes = text(resp.headers.get("x-github-enterprise-version"))
        license_: dict[str, Any] | None = None
        warnings: list[str] = []
        expires = parse_when(resp.headers.get("github-authentication-token-expiration"))
        if expires is not None:
            license_, warnings = expiry(expires, what="GitHub token", kind="token",
                                        advice="create a new token and update this integration")
        return Probe(product="GitHub Enterprise Server" if ghes else "GitHub", version=ghes, license=license_,
                     warnings=warnings, message=f"authenticated as {text(user.get('login')) or 'the token user'}")

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """Classic scopes from ``X-OAuth-Scopes``; otherwise probes on the configured repository."""
        with ctx.client() as c:
            _user, resp = self._user(ctx, c)
            scopes = scopes_of(resp)
            if scopes is not None:
                return permission_report([
                    ("security_events", "reading code scanning alerts", bool(scopes & _ALERT_SCOPES)),
                    ("admin:repo_hook", "installing the webhook", bool(scopes & _HOOK_SCOPES)),
                ], scopes - _USEFUL_SCOPES)
            if not ctx.connection.repository:
                return permission_report(
                    [("Code scanning alerts: read", "reading code scanning alerts", None),
                     ("Webhooks: write", "installing the webhook", None)],
                    warnings=["fine-grained token or App: set the repository so PMAP can probe its rights"])
            repo = _repo(ctx)
            alerts = c.get(f"/repos/{repo}/code-scanning/alerts", headers=_headers(ctx), params={"per_page": 1})
            hooks = c.get(f"/repos/{repo}/hooks", headers=_headers(ctx), params={"per_page": 1})
        return permission_report([
            ("Code scanning alerts: read", "reading code scanning alerts", alerts.status == 200),
            ("Webhooks: write", "installing the webhook", hooks.status == 200),
        ], warnings=["fine-grained token or App: rights probed on " + repo])

    def register_webhook(self, ctx: OperationContext, hook: WebhookRegistration) -> WebhookRegistered:
        """``POST /repos/{owner}/{repo}/hooks`` with the secret; GitHub pings it right away."""
        config: dict[str, str] = {"url": hook.url, "content_type": "json", "insecure_ssl": "0"}
        if hook.secret is not None:
            config["secret"] = hook.secret.get_secret_value()
        body = {"name": "web", "active": True, "events": hook.events or ["code_scanning_alert"], "config": config}
        with ctx.client() as c:
            resp = check(ctx, c.post(f"/repos/{_repo(ctx)}/hooks", headers=_headers(ctx), json=body),
                         "creating the repository webhook", ok=(200, 201), permission=(403, 404),
                         permission_hint=_HOOK_HINT)
        hook_id = text(json_of(ctx, resp, "webhook").get("id"))
        if not hook_id:
            raise fail(ctx, "GitHub created the webhook but returned no id", step="response")
        return WebhookRegistered(hook_id=hook_id, url=hook.url, signed=hook.secret is not None, ping_supported=True)

    def ping_webhook(self, ctx: OperationContext, hook_id: str) -> None:
        """``POST /repos/{owner}/{repo}/hooks/{id}/pings``: GitHub sends a signed ``ping`` delivery."""
        if not str(hook_id).isdigit():
            raise ValidationFailed("a GitHub hook id is a number", fields=[FieldProblem("hook_id", "must be digits")])
        with ctx.client() as c:
            check(ctx, c.post(f"/repos/{_repo(ctx)}/hooks/{hook_id}/pings", headers=_headers(ctx)),
                  "pinging the webhook", ok=(204,), permission=(403, 404), permission_hint=_HOOK_HINT)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="github_code_scanning", display_name="GitHub code scanning", category=Category.SAST,
        connection_model=GitHubCodeScanningConnection, credentials_model=GitHubToken,
        default_base_url="https://api.github.com", report_formats=("sarif", "github_vulnerability_json"),
        webhook_scheme="github", implementation=GitHubCodeScanningConnector(),
        operations=(Operation.TEST_CONNECTION, Operation.CHECK_PERMISSIONS, Operation.REGISTER_WEBHOOK),
        docs_url="https://docs.github.com/en/rest/code-scanning",
        notes="Needs GitHub Advanced Security on private repositories; webhooks are per repository.",
    ),
)
