"""GitHub code scanning (GitHub.com and Enterprise Server): token test, scopes, repository webhooks.

Classic tokens list their scopes in ``X-OAuth-Scopes`` on every answer; fine-grained tokens and
Apps do not, so rights are then probed on the configured repository. GitHub answers 404 (not 403)
on hook endpoints the token may not manage. Deliveries are signed ``X-Hub-Signature-256``; a
``ping`` can be requested at any time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    FindingsFeed,
    FindingsPull,
    OperationContext,
    PermissionReport,
    Probe,
    SyncsFindings,
)
from pmap.connectors.vendors._github_app import GitHubTokenOrApp, app_probe, uses_app
from pmap.connectors.vendors._pull import link_rel
from pmap.connectors.vendors._support import check, fail, json_list, json_of, parse_when, permission_report
from pmap.connectors.vendors.github import GitHubRepositoryHooks, gh_check, headers, scopes_of, token_probe
from pmap.core import clock
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.sast_sca.github import KEY as ALERTS_FORMAT
from pmap.findings.formats.sast_sca.github import rest_alert

_ALERT_SCOPES = {"security_events", "repo"}
# GitHub's scope list: repo grants "read and write access to ... repository webhooks", as admin:repo_hook does
_HOOK_SCOPES = {"repo", "admin:repo_hook", "write:repo_hook"}
# scopes PMAP can use; anything else a classic token holds is more than it needs ("repo" included:
# security_events is enough for code scanning, even on private repositories)
_USEFUL_SCOPES = {"security_events", "admin:repo_hook", "write:repo_hook", "read:repo_hook", "read:user",
                  "read:org", "public_repo"}
#: alerts per page: GitHub's maximum for this list
PAGE_SIZE = 100


class GitHubToken(GitHubTokenOrApp):
    """A personal access token (classic or fine-grained), an App installation token, or a GitHub App."""


class GitHubCodeScanningConnection(ConnectionSettings):
    base_url: str = Field(default="https://api.github.com",
                          description="https://api.github.com or https://HOST/api/v3")
    path_settings = {"repository": "segments"}

    repository: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$", description="owner/repo")


def _repo(ctx: OperationContext) -> str:
    repo = ctx.connection.repository
    if not repo:
        raise ValidationFailed("this operation needs the repository (owner/repo) in the connection settings",
                               fields=[FieldProblem("connection.repository", "is required for this operation")])
    return str(repo)


def _alerts_page(ctx: OperationContext, c: OutboundClient, target: str,
                 params: dict[str, Any] | None) -> OutboundResponse:
    """One page of alerts; a spent primary rate limit is waited out once when its reset falls in the budget.

    GitHub answers a spent primary limit with 403 or 429, ``x-ratelimit-remaining: 0`` and the reset
    time in ``x-ratelimit-reset`` (epoch seconds) and asks not to retry before it; the guarded client
    retries only on ``Retry-After`` or backoff, which would retry too early (or not at all on 403).
    """
    for attempt in range(2):
        resp = c.get(target, headers=headers(ctx), params=params)
        if attempt or resp.status not in (403, 429) or resp.headers.get("x-ratelimit-remaining") != "0":
            break
        reset = parse_when(resp.headers.get("x-ratelimit-reset"))
        wait = (reset - datetime.now(UTC)).total_seconds() + 1 if reset else None  # +1: the reset is whole seconds
        if wait is None or wait + 0.1 >= ctx.remaining():
            break
        clock.sleep(max(0.0, wait))
    return gh_check(ctx, resp, "listing code scanning alerts",
                    permission_hint="the token needs security_events (classic) or Code scanning alerts: read, and "
                                    "the repository needs code scanning")


class GitHubCodeScanningConnector(GitHubRepositoryHooks, Connector, ChecksPermissions, SyncsFindings):
    """GitHub: ``GET /user``, code scanning alerts of the repository, repository webhooks."""

    hook_events = ("code_scanning_alert",)

    def _user(self, ctx: OperationContext, c: Any) -> tuple[dict[str, Any], OutboundResponse]:
        resp = check(ctx, c.get("/user", headers=headers(ctx)), "GET /user", auth_hint="check the token")
        return json_of(ctx, resp, "the user"), resp

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /user``; with a repository configured, one code scanning alert is read too."""
        with ctx.client() as c:
            if uses_app(ctx):  # an installation token cannot read /user
                probe = app_probe(ctx, c, headers(ctx))
            else:
                user, resp = self._user(ctx, c)
                probe = token_probe(resp, user)
            if ctx.connection.repository:
                check(ctx, c.get(vendor_path("/repos/{repository/}/code-scanning/alerts", repository=_repo(ctx)),
                                 headers=headers(ctx), params={"per_page": 1}), "reading code scanning alerts",
                      permission_hint="the token needs security_events (classic) or Code scanning alerts: read, "
                                      "and the repository needs code scanning (GitHub Advanced Security)")
        return probe

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The repository's code scanning alerts in every state, most recently updated first, page by page
        (``Link: rel="next"``); with ``pull.since``, up to the first alert updated before it.

        The alerts read as the ``github_vulnerability_json`` format reads GitHub's REST alert arrays: fixed is
        ``fixed``; a dismissal is not a fix, so a dismissed alert is ``false_positive`` (dismissed as a false
        positive) or ``accepted`` (won't fix, used in tests): suppressed, never resolved.
        """
        return FindingsFeed(format=ALERTS_FORMAT, findings=self._alerts(ctx, pull), complete=pull.since is None)

    def _alerts(self, ctx: OperationContext, pull: FindingsPull) -> Iterator[ParsedFinding]:
        target = vendor_path("/repos/{repository/}/code-scanning/alerts", repository=_repo(ctx))
        params: dict[str, Any] | None = {"per_page": PAGE_SIZE, "sort": "updated", "direction": "desc"}
        with ctx.client() as c:
            while True:
                resp = _alerts_page(ctx, c, target, params)
                for alert in json_list(ctx, resp, "the code scanning alerts page"):
                    updated = parse_when(alert.get("updated_at")) if isinstance(alert, dict) else None
                    if pull.since is not None and updated is not None and updated < pull.since:
                        return  # sorted by update, newest first: everything after this is older still
                    try:
                        finding = rest_alert(alert)
                    except ReportError as exc:
                        raise fail(ctx, f"a code scanning alert could not be read: {exc.message}",
                                   step="response") from None
                    yield finding
                link = link_rel(resp.headers.get("link"))
                if not link:
                    return
                # an absolute URL with the query GitHub built; the client refuses it on another host
                target, params = link, None

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """Classic scopes from ``X-OAuth-Scopes``; otherwise probes on the configured repository."""
        with ctx.client() as c:
            scopes = None if uses_app(ctx) else scopes_of(self._user(ctx, c)[1])
            if scopes is not None:
                return permission_report([
                    ("security_events", "reading code scanning alerts", bool(scopes & _ALERT_SCOPES)),
                    ("admin:repo_hook", "installing the webhook", bool(scopes & _HOOK_SCOPES)),
                ], scopes - _USEFUL_SCOPES)
            if not ctx.connection.repository:
                return permission_report(
                    [("Code scanning alerts: read", "reading code scanning alerts", None),
                     ("Webhooks: read and write", "installing the webhook", None)],
                    warnings=["fine-grained token or App: set the repository so PMAP can probe its rights"])
            repo = _repo(ctx)
            alerts = c.get(vendor_path("/repos/{repository/}/code-scanning/alerts", repository=repo),
                           headers=headers(ctx), params={"per_page": 1})
            hooks = c.get(vendor_path("/repos/{repository/}/hooks", repository=repo), headers=headers(ctx),
                          params={"per_page": 1})
        # listing hooks needs Webhooks: read only (GitHub's REST reference); write cannot be probed without writing
        return permission_report([
            ("Code scanning alerts: read", "reading code scanning alerts", alerts.status == 200),
            ("Webhooks: read and write", "installing the webhook", hooks.status == 200),
        ], warnings=[f"fine-grained token or App: read access probed on {repo}; write access cannot be probed "
                     "without writing"])


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="github_code_scanning", display_name="GitHub code scanning", category=Category.SAST,
        connection_model=GitHubCodeScanningConnection, credentials_model=GitHubToken,
        default_base_url="https://api.github.com", report_formats=("sarif", "github_vulnerability_json"),
        webhook_scheme="github", implementation=GitHubCodeScanningConnector(),
        docs_url="https://docs.github.com/en/rest/code-scanning",
        notes="Needs GitHub Advanced Security on private repositories; webhooks are per repository.",
    ),
)
