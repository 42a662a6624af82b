"""GitLab: Issues (ticketing) and CI (CI/CD), on GitLab.com and self-managed GitLab.

The base URL is the API root (``https://gitlab.com/api/v4``). Tokens (personal, project or group
access tokens) go in ``PRIVATE-TOKEN``. ``GET /version`` needs authentication, so it proves the
token and gives the version; ``GET /personal_access_tokens/self`` gives the token's scopes and
expiry (warned 30 days ahead; skipped where GitLab does not offer it). Least privilege: the ``api``
scope is needed (issues and hooks; ``read_api`` only reads CI reports); any other scope
(``sudo``, ``admin_mode``, ...) and an administrator account are more than needed; the project role
must be Reporter (issues, artifacts) and Maintainer (webhooks).

Issues: key ``group/project#iid``; done = ``state == "closed"``. CI: the latest finished pipeline
(or the pipeline id / branch given as ``ref``); each job's security report artifacts (``sast``,
``dependency_scanning``, ...) are downloaded by file name from the job's artifacts, so a report
must be kept in the job's artifacts archive to be read (a 404 is skipped). Webhooks: project hooks
carrying a token (``X-Gitlab-Token``; nothing is signed); registering again updates PMAP's hook
(by its id, or the same URL); the test delivery is ``POST /projects/:id/hooks/:hook_id/test/:trigger``. GitLab builds
it from the project's own data (an issue event needs an issue in the project) and answers a receiver's
refusal with 422 carrying only the receiver's body: a refusal by PMAP's receiver is left to PMAP's
delivery log, and anything GitLab reports before reaching the receiver is step ``response``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import orjson
from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    CreatesTickets,
    Credentials,
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
from pmap.connectors.vendors._support import (
    dig,
    expiry,
    parse_when,
    permission_report,
    text,
)
from pmap.connectors.vendors._work_http import (
    artifacts_of,
    check,
    clean_labels,
    download,
    fail,
    json_of,
    required,
    ticket_text,
    title_of,
)
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import segments_problem, vendor_path

_PROJECT = r"^(?:\d{1,12}|[\w.-]+(?:/[\w.-]+)+)$"
_TICKET = re.compile(r"^(?:(?P<project>\d{1,12}|[\w.-]+(?:/[\w.-]+)+)?#)?(?P<iid>\d{1,9})$")
SECURITY_REPORTS = frozenset({"sast", "dependency_scanning", "container_scanning", "dast", "secret_detection",
                              "coverage_fuzzing", "api_fuzzing", "cluster_image_scanning"})
REPORTER, MAINTAINER = 20, 40
_USEFUL_SCOPES = frozenset({"api", "read_api", "read_user"})
_AUTH_HINT = "check the token (it may be expired, revoked, or lack the api scope)"
_HOOK_HINT = "the token needs the api scope and the Maintainer role on the project"


class GitLabCredentials(Credentials):
    """A personal, project or group access token."""

    private_token: SecretStr = Field(description="GitLab access token")


class GitLabConnection(ConnectionSettings):
    base_url: str = Field(default="https://gitlab.com/api/v4", description="The API root, https://HOST/api/v4")
    path_settings = {"project": "segments"}

    project: str | None = Field(default=None, pattern=_PROJECT, description="Project id or group/project path")


class GitLabCIConnection(GitLabConnection):
    branch: str | None = Field(default=None, max_length=255,
                               description="Branch whose pipelines to read (default: any)")
    branches: list[BranchName] = Field(default_factory=list, max_length=20,
                                description="Branches a sync reads the latest finished pipeline of (default: "
                                            "branch, else the project's default branch)")


def headers(ctx: OperationContext) -> dict[str, str]:
    """The token header."""
    return {"PRIVATE-TOKEN": ctx.secret("private_token"), "Accept": "application/json"}


def _pid(project: str) -> str:
    """A project id or path as one URL path segment (``group%2Fproject``, GitLab's documented form),
    each part checked: ``../other`` cannot reach outside ``/projects``."""
    return vendor_path("{project%}", project=project)


def _project(ctx: OperationContext, override: str | None = None) -> str:
    if override:
        if not re.match(_PROJECT, override) or segments_problem(override):
            raise ValidationFailed("a GitLab project is named by its id or group/project path",
                                   fields=[FieldProblem("project", "must be a project id or path")])
        return override
    return required(ctx.connection.project, "project", "this operation")


def gl_check(ctx: OperationContext, resp: OutboundResponse, what: str, **kw: Any) -> OutboundResponse:
    """:func:`check` with GitLab's hints (403 ``insufficient_scope`` is a missing scope)."""
    kw.setdefault("permission_hint", "the token needs the api scope and a role on the project")
    return check(ctx, resp, what, auth_hint=_AUTH_HINT, **kw)


def _receiver_answered(resp: OutboundResponse) -> bool:
    """Whether a 422 to a hook test carries the receiver's answer rather than GitLab's own refusal.

    GitLab answers a non-2xx receiver with 422 ``{"message": <the receiver's response body>}`` (no
    status), and a failed request or a refused test (``Ensure the project has issues.``) with 422 and
    its own text (gitlabhq ``lib/api/hooks/trigger_test.rb``, ``app/services/web_hook_service.rb``). So
    the receiver answered when the message is empty or is PMAP's receiver's own error document.
    """
    try:
        message = resp.json().get("message") if resp.content else None
    except Exception:  # not JSON: GitLab's API always answers JSON here, so it is not its hook result
        return False
    if message == "":  # the receiver answered with an empty body
        return True
    if isinstance(message, str):
        try:
            message = orjson.loads(message)
        except orjson.JSONDecodeError:
            return False
    error = message.get("error") if isinstance(message, dict) else None
    return isinstance(error, dict) and isinstance(error.get("code"), str)


class _GitLabConnector(Connector, ChecksPermissions, RegistersWebhooks, PingsWebhooks):
    """What GitLab Issues and CI share: identity, token scopes, roles and project webhooks."""

    hook_events: ClassVar[Mapping[str, bool]] = MappingProxyType({})
    test_trigger = "push_events"
    role_needed = ("Reporter", REPORTER, "reading the project")
    # (name, needed for, scopes that grant it)
    scope_needs: tuple[tuple[str, str, frozenset[str]], ...] = ()

    def _token(self, ctx: OperationContext, c: OutboundClient) -> dict[str, Any] | None:
        resp = c.get("/personal_access_tokens/self", headers=headers(ctx))
        if resp.status == 404:  # older GitLab, or a token kind it does not describe
            return None
        return json_of(ctx, gl_check(ctx, resp, "GET /personal_access_tokens/self"), "the token")

    def _read_project(self, ctx: OperationContext, c: OutboundClient, project: str) -> dict[str, Any]:
        resp = gl_check(ctx, c.get(f"/projects/{_pid(project)}", headers=headers(ctx)), f"reading project {project}",
                        permission=(403, 404),
                        permission_hint="the project does not exist, or the token lacks the api/read_api scope or "
                                        "membership of the project")
        return json_of(ctx, resp, f"project {project}")

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /version`` (authenticated), the token's expiry, and the project when set."""
        with ctx.client() as c:
            version = json_of(ctx, gl_check(ctx, c.get("/version", headers=headers(ctx)), "GET /version"), "version")
            token = self._token(ctx, c)
            if ctx.connection.project:
                self._read_project(ctx, c, ctx.connection.project)
        license_: dict[str, Any] | None = None
        warnings: list[str] = []
        expires = parse_when(token.get("expires_at")) if token else None
        if expires is not None:
            license_, warnings = expiry(expires, what="GitLab token", kind="token",
                                        advice="rotate the token and update this integration")
        number = text(version.get("version"))
        product = "GitLab Enterprise Edition" if version.get("enterprise") is True or (number or "").endswith("-ee") \
            else "GitLab"
        name = text(token.get("name")) if token else None
        return Probe(product=product, version=number, license=license_, warnings=warnings,
                     message=f"authenticated with token {name!r}" if name else "authenticated")

    def _access_level(self, ctx: OperationContext, c: OutboundClient, project: str) -> int:
        """The token user's role on the project (0 when the project cannot be read)."""
        resp = c.get(f"/projects/{_pid(project)}", headers=headers(ctx))
        if resp.status in (403, 404):
            return 0
        body = json_of(ctx, gl_check(ctx, resp, f"reading project {project}"), f"project {project}")
        levels = [dig(body, "permissions", k, "access_level") for k in ("project_access", "group_access")]
        return max((v for v in levels if isinstance(v, int)), default=0)

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """Token scopes, administrator flag, and the role on the configured project."""
        project = ctx.connection.project
        with ctx.client() as c:
            token = self._token(ctx, c)
            user = json_of(ctx, gl_check(ctx, c.get("/user", headers=headers(ctx)), "GET /user"), "the user")
            level = self._access_level(ctx, c, project) if project else None
        scopes = {str(s) for s in token.get("scopes") or []} if token else None
        role, minimum, why = self.role_needed
        needs = [(name, needed_for, None if scopes is None else bool(scopes & granting))
                 for name, needed_for, granting in self.scope_needs]
        needs.append((f"{role} role on the project", why, None if level is None else level >= minimum))
        needs.append(("Maintainer role on the project", "installing the webhook",
                      None if level is None else level >= MAINTAINER))
        excess = sorted(scopes - _USEFUL_SCOPES) if scopes else []
        if user.get("is_admin") is True:
            excess.append("administrator account")
        warnings: list[str] = []
        if scopes is None:
            warnings.append("GitLab does not describe this token: its scopes cannot be read")
        if not project:
            warnings.append("no project configured: roles cannot be checked")
        return permission_report(needs, excess, warnings)

    def register_webhook(self, ctx: OperationContext, hook: WebhookRegistration) -> WebhookRegistered:
        """Create PMAP's project hook, or update it (the one PMAP registered, or the same URL) with the
        current URL and token."""
        pid = _pid(_project(ctx))
        params: dict[str, Any] = {"url": hook.url, "enable_ssl_verification": True, "push_events": False,
                                  **self.hook_events}
        if hook.secret is not None:
            params["token"] = hook.secret.get_secret_value()
        h = headers(ctx)
        with ctx.client() as c:
            listed = gl_check(ctx, c.get(f"/projects/{pid}/hooks", headers=h, params={"per_page": 100}),
                              "listing project hooks", permission=(403, 404), permission_hint=_HOOK_HINT)
            existing = next((x for x in json_of(ctx, listed, "hooks", list)
                             if isinstance(x, dict) and (str(x.get("id")) == hook.previous_hook_id
                                                         or x.get("url") == hook.url)), None)
            if existing is not None:
                path = f"/projects/{pid}" + vendor_path("/hooks/{hook_id}", hook_id=existing.get("id"))
                resp = gl_check(ctx, c.request("PUT", path, headers=h, json=params), "updating PMAP's project hook",
                                permission=(403, 404), permission_hint=_HOOK_HINT)
            else:
                resp = gl_check(ctx, c.post(f"/projects/{pid}/hooks", headers=h, json=params),
                                "creating the project hook", ok=(200, 201), permission=(403, 404),
                                permission_hint=_HOOK_HINT)
        hook_id = text(json_of(ctx, resp, "the hook").get("id"))
        if not hook_id:
            raise fail(ctx, "GitLab saved the hook but returned no id", step="response")
        return WebhookRegistered(hook_id=hook_id, url=hook.url, signed=hook.secret is not None, ping_supported=True)

    def ping_webhook(self, ctx: OperationContext, hook_id: str) -> None:
        """GitLab's test delivery of this hook's event; returns once GitLab reached the receiver."""
        if not str(hook_id).isdigit():
            raise ValidationFailed("a GitLab hook id is a number", fields=[FieldProblem("hook_id", "must be digits")])
        with ctx.client() as c:
            test = vendor_path("/hooks/{hook_id}/test/{trigger}", hook_id=hook_id, trigger=self.test_trigger)
            resp = c.post(f"/projects/{_pid(_project(ctx))}{test}", headers=headers(ctx))
        if resp.status == 422:
            if _receiver_answered(resp):  # PMAP's own delivery log says why it refused
                return
            raise fail(ctx, "GitLab could not deliver the test event to PMAP's receiving URL", step="response",
                       resp=resp)
        gl_check(ctx, resp, "sending the test delivery", ok=(200, 201), permission=(403, 404),
                 permission_hint=_HOOK_HINT)


class GitLabIssuesConnector(_GitLabConnector, CreatesTickets, SyncsTicketStatus):
    """GitLab Issues: open, read and watch issues of one project."""

    hook_events = MappingProxyType({"issues_events": True, "confidential_issues_events": True})
    test_trigger = "issues_events"
    role_needed = ("Reporter", REPORTER, "creating and reading issues")
    scope_needs = (("api scope", "creating issues and installing the webhook", frozenset({"api"})),)

    def create_ticket(self, ctx: OperationContext, ticket: TicketRequest) -> TicketRef:
        """``POST /projects/:id/issues``; not retried (a retry could open a duplicate)."""
        project = _project(ctx, ticket.project)
        body: dict[str, Any] = {"title": title_of(ticket), "description": ticket_text(ticket)}
        if labels := clean_labels(ticket.labels):
            body["labels"] = ",".join(label.replace(",", "-") for label in labels)
        with ctx.client() as c:
            resp = gl_check(ctx, c.post(f"/projects/{_pid(project)}/issues", headers=headers(ctx), json=body),
                            f"opening an issue in {project}", ok=(201,), permission=(403, 404))
        return self._ref(ctx, project, json_of(ctx, resp, "the created issue"))

    def sync_status(self, ctx: OperationContext, key: str) -> TicketRef:
        """The issue's state; done when closed."""
        match = _TICKET.match(key or "")
        if match is None:
            raise ValidationFailed("a GitLab issue is named group/project#iid",
                                   fields=[FieldProblem("key", "must be group/project#iid or an iid")])
        project = _project(ctx, match["project"])
        with ctx.client() as c:
            resp = gl_check(ctx, c.get(f"/projects/{_pid(project)}" + vendor_path("/issues/{iid}", iid=match["iid"]),
                                  headers=headers(ctx)),
                            f"reading issue {project}#{match['iid']}")
        return self._ref(ctx, project, json_of(ctx, resp, "the issue"))

    def _ref(self, ctx: OperationContext, project: str, issue: dict[str, Any]) -> TicketRef:
        iid, state = text(issue.get("iid")), text(issue.get("state"))
        if not iid or not state:
            raise fail(ctx, "GitLab answered an issue without iid or state", step="response")
        key = text(dig(issue, "references", "full")) or f"{project}#{iid}"
        return TicketRef(key=key, url=text(issue.get("web_url")), status=state, done=state == "closed")


class GitLabCIConnector(_GitLabConnector, FetchesPipelineReports):
    """GitLab CI: security report artifacts of pipelines."""

    hook_events = MappingProxyType({"pipeline_events": True})
    test_trigger = "pipeline_events"
    role_needed = ("Reporter", REPORTER, "reading pipelines and job artifacts")
    scope_needs = (("read_api scope", "reading pipelines and job artifacts", frozenset({"api", "read_api"})),
                   ("api scope", "installing the webhook", frozenset({"api"})))

    def __init__(self, formats: tuple[str, ...]) -> None:
        self.formats = formats

    def _pipeline(self, ctx: OperationContext, c: OutboundClient, pid: str, ref: str | None) -> dict[str, Any] | None:
        if ref and ref.isdigit():
            path = f"/projects/{pid}" + vendor_path("/pipelines/{ref}", ref=ref)
            resp = gl_check(ctx, c.get(path, headers=headers(ctx)), f"reading pipeline {ref}")
            return json_of(ctx, resp, f"pipeline {ref}")
        params: dict[str, Any] = {"scope": "finished", "order_by": "id", "sort": "desc", "per_page": 1}
        if branch := ref or ctx.connection.branch:
            params["ref"] = branch
        resp = gl_check(ctx, c.get(f"/projects/{pid}/pipelines", headers=headers(ctx), params=params),
                        "listing pipelines")
        found = [p for p in json_of(ctx, resp, "pipelines", list) if isinstance(p, dict)]
        return found[0] if found else None

    def default_branch(self, ctx: OperationContext) -> str | None:
        """The project's default branch (``GET /projects/:id``)."""
        pid = _pid(_project(ctx))
        with ctx.client() as c:
            resp = gl_check(ctx, c.get(f"/projects/{pid}", headers=headers(ctx)), "reading the project")
        return text(json_of(ctx, resp, "the project").get("default_branch"))

    def fetch_pipeline_reports(self, ctx: OperationContext, ref: str | None = None) -> list[ReportArtifact]:
        """Security reports of the latest finished pipeline's jobs (``ref``: a pipeline id or a branch)."""
        pid = _pid(_project(ctx))
        files: list[tuple[str, bytes | Path]] = []
        with ctx.client() as c:
            pipeline = self._pipeline(ctx, c, pid, ref)
            if pipeline is None:
                return []
            jobs = f"/projects/{pid}" + vendor_path("/pipelines/{pipeline_id}/jobs", pipeline_id=pipeline["id"])
            resp = gl_check(ctx, c.get(jobs, headers=headers(ctx), params={"per_page": 100}),
                            "listing the pipeline's jobs")
            for job in (j for j in json_of(ctx, resp, "jobs", list) if isinstance(j, dict)):
                reports = [a for a in job.get("artifacts") or [] if isinstance(a, dict)
                           and a.get("file_type") in SECURITY_REPORTS and text(a.get("filename"))]
                for report in reports:
                    name = str(report["filename"])
                    path = vendor_path("/jobs/{job_id}/artifacts/{name/}", job_id=job["id"], name=name)
                    # with object storage GitLab redirects to a pre-signed URL: followed without the token
                    got, spooled = download(ctx, c, f"/projects/{pid}{path}", headers=headers(ctx),
                                            signed_redirects=True)
                    if got.status == 404:  # a report kept outside the job's artifacts archive
                        continue
                    gl_check(ctx, got, f"downloading {name} of job {job.get('name')}")
                    files.append((f"{job.get('name')}/{name}", spooled or got.content))
        return artifacts_of(files, self.formats)


CI_FORMATS = ("gitlab_security_report", "sarif")
CONNECTOR_TYPES = (
    ConnectorType(
        vendor="gitlab_issues", display_name="GitLab Issues", category=Category.TICKETING,
        connection_model=GitLabConnection, credentials_model=GitLabCredentials,
        default_base_url="https://gitlab.com/api/v4", webhook_scheme="gitlab_token",
        implementation=GitLabIssuesConnector(),
        docs_url="https://docs.gitlab.com/api/issues/",
        notes="Ticket keys are group/project#iid; webhooks are project hooks with a token.",
    ),
    ConnectorType(
        vendor="gitlab_ci", display_name="GitLab CI", category=Category.CICD,
        connection_model=GitLabCIConnection, credentials_model=GitLabCredentials,
        default_base_url="https://gitlab.com/api/v4", report_formats=CI_FORMATS, webhook_scheme="gitlab_token",
        implementation=GitLabCIConnector(CI_FORMATS),
        docs_url="https://docs.gitlab.com/api/job_artifacts/",
        notes="Reads the security reports (gl-*-report.json, SARIF) of the latest finished pipeline's jobs.",
    ),
)
