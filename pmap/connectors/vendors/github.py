"""GitHub: Issues (ticketing) and Actions (CI/CD), on GitHub.com and GitHub Enterprise Server.

Tokens go as ``Authorization: Bearer``. Classic tokens list their scopes in ``X-OAuth-Scopes``;
fine-grained tokens and Apps do not, so their rights are probed on the configured repository.
``GitHub-Authentication-Token-Expiration`` says when a token expires (warned 30 days ahead). A 403
with ``X-RateLimit-Remaining: 0`` is a spent rate limit, not a missing right; a private repository
the token cannot see answers 404.

Issues: ticket key ``owner/repo#number``; done = ``state == "closed"`` (whatever the reason).
Actions: the latest completed workflow run (or the run id / branch given as ``ref``); its unexpired
artifacts are downloaded and the files PMAP's report detectors claim are returned. GitHub answers an
archive download with a redirect to a short-lived pre-signed URL on its storage host: PMAP follows
that one redirect as a plain GET without the token (``signed_redirects``), through the same egress
checks. Webhooks: repository hooks signed
``X-Hub-Signature-256``; registering again updates PMAP's hook (by its id, or the same URL) with the current secret;
a ``ping`` sends a signed test delivery.
"""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from pydantic import Field

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    CreatesTickets,
    FetchesPipelineReports,
    OperationContext,
    PermissionReport,
    PingsWebhooks,
    Probe,
    RegistersWebhooks,
    ReportArtifact,
    SyncsTicketStatus,
    TicketRef,
    TicketRequest,
    WebhookRegistered,
    WebhookRegistration,
)
from pmap.connectors.branches import BranchName
from pmap.connectors.vendors._github_app import GitHubTokenOrApp, app_probe, bearer, uses_app
from pmap.connectors.vendors._support import (
    expiry,
    parse_when,
    permission_report,
    text,
)
from pmap.connectors.vendors._work_http import (
    DOWNLOAD_MAX_BYTES,
    artifacts_of,
    check,
    clean_labels,
    download,
    fail,
    json_of,
    required,
    ticket_text,
    title_of,
    unzip,
)
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import segments_problem, vendor_path

_API_VERSION = "2022-11-28"
_REPO = r"^[\w.-]+/[\w.-]+$"
_TICKET = re.compile(r"^(?:(?P<repo>[\w.-]+/[\w.-]+)?#)?(?P<number>\d{1,9})$")
_HOOK_SCOPES = {"repo", "admin:repo_hook", "write:repo_hook"}
# scopes PMAP can use; anything else a classic token holds is more than it needs
_USEFUL_SCOPES = {"repo", "public_repo", "admin:repo_hook", "write:repo_hook", "read:repo_hook", "read:user",
                  "read:org", "repo:status", "repo_deployment"}
_REPO_HINT = ("the repository does not exist or the token cannot see it (private repositories need the repo scope, "
              "or access granted to a fine-grained token)")
_HOOK_HINT = ("the token needs admin:repo_hook or repo (classic) or Webhooks: read and write (fine-grained) on the "
              "repository, and the repository must exist (GitHub answers 404 for both)")
SARIF = ("sarif",)



def token_probe(resp: OutboundResponse, user: dict[str, Any]) -> Probe:
    """Diagnostics of a GitHub answer to the token's user: product and version (GitHub.com or
    Enterprise Server), and the token's expiry as a license with a warning when it is near."""
    ghes = text(resp.headers.get("x-github-enterprise-version"))
    license_: dict[str, Any] | None = None
    warnings: list[str] = []
    expires = parse_when(resp.headers.get("github-authentication-token-expiration"))
    if expires is not None:
        license_, warnings = expiry(expires, what="GitHub token", kind="token",
                                    advice="create a new token and update this integration")
    return Probe(product="GitHub Enterprise Server" if ghes else "GitHub", version=ghes, license=license_,
                 warnings=warnings, message=f"authenticated as {text(user.get('login')) or 'the token user'}")

class GitHubCredentials(GitHubTokenOrApp):
    """A personal access token (classic or fine-grained), an App installation token, or a GitHub App."""


class GitHubConnection(ConnectionSettings):
    base_url: str = Field(default="https://api.github.com", description="https://api.github.com or https://HOST/api/v3")
    path_settings = {"repository": "segments"}

    repository: str | None = Field(default=None, pattern=_REPO, description="owner/repo")


class GitHubActionsConnection(GitHubConnection):
    workflow: str | None = Field(default=None, max_length=200,
                                 description="Workflow file whose runs to read, e.g. codeql.yml")
    branch: str | None = Field(default=None, max_length=255, description="Branch whose runs to read (default: any)")
    artifact_pattern: str | None = Field(default=None, max_length=200, description="Glob of artifact names to download")
    branches: list[BranchName] = Field(default_factory=list, max_length=20,
                                description="Branches a sync reads the latest completed run of (default: branch, "
                                            "else the repository's default branch)")


def headers(ctx: OperationContext) -> dict[str, str]:
    """Token and API version headers."""
    return {"Authorization": f"Bearer {bearer(ctx)}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": _API_VERSION}


def gh_check(ctx: OperationContext, resp: OutboundResponse, what: str, **kw: Any) -> OutboundResponse:
    """:func:`check` that tells a spent rate limit (403/429 with no requests left) from a refusal."""
    if resp.status in (403, 429) and resp.headers.get("x-ratelimit-remaining") == "0":
        reset = parse_when(resp.headers.get("x-ratelimit-reset"))
        until = f" until {reset.isoformat()}" if reset else ""
        raise fail(ctx, f"GitHub's API rate limit for this token is spent{until} ({what})", step="http", resp=resp)
    return check(ctx, resp, what, auth_hint="check the token (it may be expired or revoked)", **kw)


def _repo(ctx: OperationContext, override: str | None = None) -> str:
    if override:
        if not re.match(_REPO, override) or segments_problem(override):
            raise ValidationFailed("a GitHub repository is named owner/repo",
                                   fields=[FieldProblem("project", "must be owner/repo")])
        return override
    return required(ctx.connection.repository, "repository", "this operation")


def scopes_of(resp: OutboundResponse) -> set[str] | None:
    """The classic token's scopes, or None when the answer lists none (fine-grained token, App)."""
    raw = resp.headers.get("x-oauth-scopes")
    return None if raw is None else {s.strip() for s in raw.split(",") if s.strip()}


def _workflow_file(path: Any) -> str:
    """The workflow file name of a run's ``path`` (``.github/workflows/codeql.yml@main`` -> ``codeql.yml``)."""
    return str(path or "").split("@", 1)[0].rsplit("/", 1)[-1]


class GitHubRepositoryHooks(RegistersWebhooks, PingsWebhooks):
    """Repository webhooks, shared by every GitHub connector (Issues, Actions, code scanning):
    PMAP's hook is created, or updated in place (by its id, or the same URL) with the current secret, and pinged."""

    hook_events: tuple[str, ...] = ()

    def register_webhook(self, ctx: OperationContext, hook: WebhookRegistration) -> WebhookRegistered:
        """Create PMAP's repository hook, or update it (the one PMAP registered, or the same URL) with the
        current URL and secret."""
        repo = _repo(ctx)
        config: dict[str, str] = {"url": hook.url, "content_type": "json", "insecure_ssl": "0"}
        if hook.secret is not None:
            config["secret"] = hook.secret.get_secret_value()
        body = {"name": "web", "active": True, "events": hook.events or list(self.hook_events), "config": config}
        h = headers(ctx)
        with ctx.client() as c:
            hooks = vendor_path("/repos/{repository/}/hooks", repository=repo)
            listed = gh_check(ctx, c.get(hooks, headers=h, params={"per_page": 100}), "listing repository webhooks",
                              permission=(403, 404), permission_hint=_HOOK_HINT)
            existing = next((x for x in json_of(ctx, listed, "webhooks", list)
                             if isinstance(x, dict) and (str(x.get("id")) == hook.previous_hook_id
                                                         or (x.get("config") or {}).get("url") == hook.url)), None)
            if existing is not None:
                ours = vendor_path("/repos/{repository/}/hooks/{hook_id}", repository=repo, hook_id=existing.get("id"))
                patch = {k: v for k, v in body.items() if k != "name"}
                resp = gh_check(ctx, c.request("PATCH", ours, headers=h, json=patch),
                                "updating PMAP's repository webhook", permission=(403, 404), permission_hint=_HOOK_HINT)
            else:
                resp = gh_check(ctx, c.post(hooks, headers=h, json=body), "creating the repository webhook",
                                ok=(200, 201), permission=(403, 404), permission_hint=_HOOK_HINT)
        hook_id = text(json_of(ctx, resp, "the webhook").get("id"))
        if not hook_id:
            raise fail(ctx, "GitHub saved the webhook but returned no id", step="response")
        return WebhookRegistered(hook_id=hook_id, url=hook.url, signed=hook.secret is not None, ping_supported=True)

    def ping_webhook(self, ctx: OperationContext, hook_id: str) -> None:
        """``POST .../hooks/{id}/pings``: GitHub sends a signed ``ping`` delivery."""
        if not str(hook_id).isdigit():
            raise ValidationFailed("a GitHub hook id is a number", fields=[FieldProblem("hook_id", "must be digits")])
        with ctx.client() as c:
            pings = vendor_path("/repos/{repository/}/hooks/{hook_id}/pings", repository=_repo(ctx), hook_id=hook_id)
            gh_check(ctx, c.post(pings, headers=headers(ctx)), "pinging the webhook", ok=(204,),
                     permission=(403, 404), permission_hint=_HOOK_HINT)


class _GitHubConnector(GitHubRepositoryHooks, Connector, ChecksPermissions):
    """What GitHub Issues and Actions share: identity, scopes and repository webhooks."""

    # (name, needed for, classic scopes that grant it, fine-grained probe path under the repository)
    needs: tuple[tuple[str, str, frozenset[str], str], ...] = ()

    def _user(self, ctx: OperationContext, c: OutboundClient) -> tuple[dict[str, Any], OutboundResponse]:
        resp = gh_check(ctx, c.get("/user", headers=headers(ctx)), "GET /user")
        return json_of(ctx, resp, "the user"), resp

    def _repository(self, ctx: OperationContext, c: OutboundClient, repo: str) -> dict[str, Any]:
        resp = gh_check(ctx, c.get(vendor_path("/repos/{repository/}", repository=repo), headers=headers(ctx)),
                        f"reading repository {repo}", permission=(403, 404), permission_hint=_REPO_HINT)
        return json_of(ctx, resp, f"repository {repo}")

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /user`` (identity, token expiry, Enterprise version), then the repository when set."""
        with ctx.client() as c:
            if uses_app(ctx):  # an installation token cannot read /user
                probe = app_probe(ctx, c, headers(ctx))
            else:
                user, resp = self._user(ctx, c)
                probe = token_probe(resp, user)
            if ctx.connection.repository:
                self._repository(ctx, c, ctx.connection.repository)
        return probe

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """Classic scopes from ``X-OAuth-Scopes``; otherwise read probes on the configured repository."""
        repo = ctx.connection.repository
        with ctx.client() as c:
            scopes = None if uses_app(ctx) else scopes_of(self._user(ctx, c)[1])
            if scopes is not None:
                return permission_report(
                    [(name, why, bool(scopes & granting)) for name, why, granting, _ in self.needs],
                    scopes - _USEFUL_SCOPES)
            if not repo:
                return permission_report([(name, why, None) for name, why, _, _ in self.needs], warnings=[
                    "fine-grained token or App: set the repository so PMAP can probe its rights"])
            base = vendor_path("/repos/{repository/}", repository=repo)
            probes = [(name, why, self._readable(ctx, c, base + path)) for name, why, _, path in self.needs]
        note = f"fine-grained token or App: read access probed on {repo}; write access cannot be probed without writing"
        return permission_report(probes, warnings=[note])

    def _readable(self, ctx: OperationContext, c: OutboundClient, path: str) -> bool:
        return c.get(path, headers=headers(ctx), params={"per_page": 1}).status == 200

class GitHubIssuesConnector(_GitHubConnector, CreatesTickets, SyncsTicketStatus):
    """GitHub Issues: open, read and watch issues of one repository."""

    hook_events = ("issues",)
    needs = (("repo", "opening and reading issues", frozenset({"repo"}), "/issues"),
             ("admin:repo_hook", "installing the webhook", frozenset(_HOOK_SCOPES), "/hooks"))

    def create_ticket(self, ctx: OperationContext, ticket: TicketRequest) -> TicketRef:
        """``POST /repos/{owner}/{repo}/issues``; not retried (a retry could open a duplicate)."""
        repo = _repo(ctx, ticket.project)
        body: dict[str, Any] = {"title": title_of(ticket, 256), "body": ticket_text(ticket)}
        if labels := clean_labels(ticket.labels, max_len=50):
            body["labels"] = labels
        with ctx.client() as c:
            issues = vendor_path("/repos/{repository/}/issues", repository=repo)
            resp = gh_check(ctx, c.post(issues, headers=headers(ctx), json=body), f"opening an issue in {repo}",
                            ok=(201,), permission=(403, 404, 410),
                            permission_hint="the token needs the repo scope (or Issues: write), and issues must be "
                                            "enabled on the repository")
        return self._ref(ctx, repo, json_of(ctx, resp, "the created issue"))

    def sync_status(self, ctx: OperationContext, key: str) -> TicketRef:
        """The issue's state; done when closed."""
        match = _TICKET.match(key or "")
        if match is None:
            raise ValidationFailed("a GitHub issue is named owner/repo#number",
                                   fields=[FieldProblem("key", "must be owner/repo#number or a number")])
        repo = _repo(ctx, match["repo"])
        with ctx.client() as c:
            issue = vendor_path("/repos/{repository/}/issues/{number}", repository=repo, number=match["number"])
            resp = gh_check(ctx, c.get(issue, headers=headers(ctx)),
                            f"reading issue {repo}#{match['number']}", permission=(403,))  # 404: no such issue
        return self._ref(ctx, repo, json_of(ctx, resp, "the issue"))

    def _ref(self, ctx: OperationContext, repo: str, issue: dict[str, Any]) -> TicketRef:
        number, state = text(issue.get("number")), text(issue.get("state"))
        if not number or not state:
            raise fail(ctx, "GitHub answered an issue without number or state", step="response")
        return TicketRef(key=f"{repo}#{number}", url=text(issue.get("html_url")), status=state, done=state == "closed")


class GitHubActionsConnector(_GitHubConnector, FetchesPipelineReports):
    """GitHub Actions: report artifacts of workflow runs."""

    hook_events = ("workflow_run",)
    needs = (("repo", "reading workflow runs and artifacts", frozenset({"repo"}), "/actions/runs"),
             ("admin:repo_hook", "installing the webhook", frozenset(_HOOK_SCOPES), "/hooks"))

    def __init__(self, formats: tuple[str, ...]) -> None:
        self.formats = formats

    def _run(self, ctx: OperationContext, c: OutboundClient, repo: str, ref: str | None) -> dict[str, Any] | None:
        if ref and ref.isdigit():
            resp = gh_check(ctx, c.get(vendor_path("/repos/{repository/}/actions/runs/{ref}", repository=repo, ref=ref),
                                  headers=headers(ctx)), f"reading run {ref}",
                            permission=(403, 404), permission_hint=f"{_REPO_HINT}, or run {ref} does not exist")
            run = json_of(ctx, resp, f"run {ref}")
            workflow = ctx.connection.workflow  # a run of another workflow is not this integration's
            if workflow and _workflow_file(run.get("path")) != workflow:
                return None
            return run if run.get("status") == "completed" else None
        params: dict[str, Any] = {"status": "completed", "per_page": 50}
        if branch := ref or ctx.connection.branch:
            params["branch"] = branch
        runs_path = vendor_path("/repos/{repository/}/actions/runs", repository=repo)
        resp = gh_check(ctx, c.get(runs_path, headers=headers(ctx), params=params), "listing workflow runs",
                        permission=(403, 404), permission_hint=_REPO_HINT)
        workflow = ctx.connection.workflow
        runs = [r for r in json_of(ctx, resp, "workflow runs").get("workflow_runs") or [] if isinstance(r, dict)
                and (not workflow or _workflow_file(r.get("path")) == workflow)]
        return max(runs, key=lambda r: int(r.get("id") or 0), default=None)

    def _download(self, ctx: OperationContext, c: OutboundClient, artifact: dict[str, Any]) -> bytes | Path | None:
        name = text(artifact.get("name")) or "artifact"
        # the archive lives behind a redirect to a pre-signed storage URL: followed without the token
        resp, spooled = download(ctx, c, str(artifact.get("archive_download_url")), headers=headers(ctx),
                                 signed_redirects=True)
        if resp.status == 410:  # expired between listing and download
            return None
        gh_check(ctx, resp, f"downloading artifact {name}")
        return spooled or resp.content

    def default_branch(self, ctx: OperationContext) -> str | None:
        """The repository's default branch (``GET /repos/{owner}/{repo}``)."""
        repo = _repo(ctx)
        with ctx.client() as c:
            resp = gh_check(ctx, c.get(vendor_path("/repos/{repository/}", repository=repo), headers=headers(ctx)),
                            "reading the repository", permission=(403, 404), permission_hint=_REPO_HINT)
        return text(json_of(ctx, resp, "the repository").get("default_branch"))

    def fetch_pipeline_reports(self, ctx: OperationContext, ref: str | None = None) -> list[ReportArtifact]:
        """Report files in the artifacts of the latest completed run (``ref``: a run id or a branch)."""
        repo = _repo(ctx)
        pattern = ctx.connection.artifact_pattern
        out: list[ReportArtifact] = []
        with ctx.client() as c:
            run = self._run(ctx, c, repo, ref)
            if run is None:
                return []
            listing = vendor_path("/repos/{repository/}/actions/runs/{run_id}/artifacts", repository=repo,
                                  run_id=run["id"])
            resp = gh_check(ctx, c.get(listing, headers=headers(ctx), params={"per_page": 100}),
                            "listing the run's artifacts")
            for artifact in json_of(ctx, resp, "artifacts").get("artifacts") or []:
                name = text(artifact.get("name")) if isinstance(artifact, dict) else None
                if not name or artifact.get("expired") or (pattern and not fnmatch(name, pattern)):
                    continue
                if int(artifact.get("size_in_bytes") or 0) > DOWNLOAD_MAX_BYTES:
                    continue
                content = self._download(ctx, c, artifact)
                if content is not None:
                    files = ((f"{name}/{member}", data) for member, data in unzip(ctx, content, f"artifact {name}"))
                    out.extend(artifacts_of(files, self.formats))
        return out


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="github_issues", display_name="GitHub Issues", category=Category.TICKETING,
        connection_model=GitHubConnection, credentials_model=GitHubCredentials,
        default_base_url="https://api.github.com", webhook_scheme="github", implementation=GitHubIssuesConnector(),
        docs_url="https://docs.github.com/en/rest/issues",
        notes="Ticket keys are owner/repo#number; webhooks are per repository.",
    ),
    ConnectorType(
        vendor="github", display_name="GitHub Actions", category=Category.CICD,
        connection_model=GitHubActionsConnection, credentials_model=GitHubCredentials,
        default_base_url="https://api.github.com", report_formats=SARIF, webhook_scheme="github",
        implementation=GitHubActionsConnector(SARIF),
        docs_url="https://docs.github.com/en/rest/actions",
        notes="Reads SARIF files from the artifacts of the latest completed workflow run; webhooks are per "
              "repository.",
    ),
)
