"""Azure DevOps: Boards (ticketing) and Pipelines (CI/CD), Services and Server.

The base URL is the organisation (``https://dev.azure.com/ORG``; ``https://HOST/COLLECTION`` for
Azure DevOps Server). A personal access token goes as HTTP Basic password with an empty user. Every
call sends ``X-TFS-FedAuthRedirect: Suppress``: without it a refused token gets a sign-in page with
status 203 (or a redirect), which naive clients take for success; a 203 or an HTML page is still
read as a refused login. The reason of a 401 (an expired token, ...) comes in ``X-TFS-ServiceError``
and is shown. ``_apis/connectionData`` proves the token (an anonymous identity is a refusal). A
token's scopes and expiry cannot be read with the token itself, so ``check_permissions`` probes
what it can read and reports the writes as unknown.

Boards: key = work item id; done = ``System.State`` Closed or Done. Creating a work item is not
retried (a retry could duplicate it). Pipelines: the latest completed run of the configured
pipeline (or the run id given as ``ref``); its build artifacts are downloaded as zip and the files
PMAP's report detectors claim are returned (the SARIF SAST Scans Tab convention publishes them as
``CodeAnalysisLogs``). Webhooks: service hook subscriptions (``webHooks`` consumer) with HTTP Basic
user ``pmap`` and the webhook secret as password; registering again replaces PMAP's subscription
(by its id, or the same URL and event); ``testnotifications`` (a preview resource: ``api-version=7.1-preview.1``)
sends a test delivery; a notification answered before it completed (result ``pending``) is read again
until it has a result, and a failure Azure DevOps reports before reaching the receiver is step
``response``.
"""

from __future__ import annotations

import html
import re
from typing import Any

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
from pmap.connectors.vendors._support import dig, permission_report, poll, text
from pmap.connectors.vendors._work_http import (
    artifacts_of,
    basic_auth,
    check,
    clean_labels,
    download,
    fail,
    json_of,
    required,
    severity_of,
    ticket_text,
    title_of,
    unzip,
)
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import vendor_path

API = "7.1"
#: service hook notifications (test notifications included) are published as a preview resource only
#: (vsts-rest-api-specs hooks 7.1/7.2: ``x-ms-preview``, ``7.1-preview.1``); "7.1" alone is refused
_NOTIFICATIONS_API = f"{API}-preview.1"
DONE_STATES = frozenset({"closed", "done"})
#: the Basic-auth user name of the service hooks PMAP registers (the webhook secret is the password)
AZURE_USERNAME = "pmap"
_SEVERITY = {"critical": "1 - Critical", "high": "2 - High", "medium": "3 - Medium", "low": "4 - Low",
             "info": "4 - Low"}
_PRIORITY = {"critical": 1, "high": 2, "medium": 3, "low": 4, "info": 4}
_STATUS_LINE = re.compile(r"Status Code:\s*\d{3}")
_AUTH_HINT = "check the personal access token (it may be expired, revoked, or made for another organisation)"
_HOOK_HINT = "the token needs the Service Hooks (Read & write) scope and the right to edit subscriptions"
_SCOPE_NOTE = ("a personal access token's scopes cannot be read with the token itself: PMAP checked what it can "
               "read; give the token these scopes and no others: {scopes}")


class AzureDevOpsCredentials(Credentials):
    """A personal access token (sent as the HTTP Basic password)."""

    personal_access_token: SecretStr = Field(description="Azure DevOps personal access token")


class AzureDevOpsConnection(ConnectionSettings):
    base_url: str = Field(description="The organisation, e.g. https://dev.azure.com/example")
    path_settings = {"project": "segment"}

    project: str | None = Field(default=None, min_length=1, max_length=64, description="Project name or id")


class AzureBoardsConnection(AzureDevOpsConnection):
    path_settings = {"project": "segment", "work_item_type": "segment"}

    work_item_type: str = Field(default="Bug", min_length=1, max_length=128, description="Type of new work items")
    area_path: str | None = Field(default=None, max_length=4000, description="Area path of new work items")


class AzurePipelinesConnection(AzureDevOpsConnection):
    pipeline_id: int | None = Field(default=None, ge=1, description="Pipeline whose runs carry the reports")
    branches: list[BranchName] = Field(default_factory=list, max_length=20,
                                description="Branches a sync reads the latest completed run of (default: the "
                                            "pipeline's latest completed run, whatever its branch)")


def headers(ctx: OperationContext) -> dict[str, str]:
    """Token, no sign-in redirect, JSON."""
    return {**basic_auth("", ctx.secret("personal_access_token")), "X-TFS-FedAuthRedirect": "Suppress",
            "Accept": "application/json"}


def az_check(ctx: OperationContext, resp: OutboundResponse, what: str, **kw: Any) -> OutboundResponse:
    """:func:`check` that also reads a sign-in page (203, or HTML) as a refused token."""
    ctype = resp.headers.get("content-type", "").lower()
    if resp.status == 203 or (200 <= resp.status < 300 and "text/html" in ctype):
        raise fail(ctx, f"Azure DevOps answered its sign-in page to {what}: the token was refused ({_AUTH_HINT})",
                   step="auth")
    return check(ctx, resp, what, auth_hint=_AUTH_HINT, **kw)


def _v(**extra: Any) -> dict[str, Any]:
    return {"api-version": API, **extra}


class _AzureConnector(Connector, ChecksPermissions, RegistersWebhooks, PingsWebhooks):
    """What Boards and Pipelines share: identity, projects and service hook subscriptions."""

    publisher, event = "tfs", "workitem.updated"
    token_scopes = "Service Hooks (Read & write)"  # noqa: S105  (the PAT scopes to grant, not a secret)
    # (name, needed for, path probed with a GET under the project, or None when it cannot be probed)
    needs: tuple[tuple[str, str, str | None], ...] = ()

    def _identity(self, ctx: OperationContext, c: OutboundClient) -> dict[str, Any]:
        resp = az_check(ctx, c.get("/_apis/connectionData", headers=headers(ctx),
                                   params={"api-version": f"{API}-preview"}), "GET _apis/connectionData")
        data = json_of(ctx, resp, "connection data")
        user = data.get("authenticatedUser")
        # S-1-0-0 is the anonymous identity Azure DevOps reports for a call it did not authenticate
        if not isinstance(user, dict) or not user.get("id") or "S-1-0-0" in str(user.get("descriptor", "")):
            raise fail(ctx, f"Azure DevOps treated the call as anonymous: {_AUTH_HINT}", step="auth")
        return data

    def _find_project(self, ctx: OperationContext, c: OutboundClient, name: str) -> dict[str, Any] | None:
        resp = az_check(ctx, c.get("/_apis/projects", headers=headers(ctx), params=_v(**{"$top": 1000})),
                        "listing projects")
        for project in json_of(ctx, resp, "projects").get("value") or []:
            if isinstance(project, dict) and name.lower() in (str(project.get("name", "")).lower(),
                                                               str(project.get("id", "")).lower()):
                return project
        return None

    def _project(self, ctx: OperationContext, c: OutboundClient, name: str) -> dict[str, Any]:
        found = self._find_project(ctx, c, name)
        if found is None:
            raise fail(ctx, f"project {name} does not exist or the token cannot see it", step="permission")
        return found

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``_apis/connectionData`` proves the token; the project is looked up when set."""
        with ctx.client() as c:
            data = self._identity(ctx, c)
            if ctx.connection.project:
                self._project(ctx, c, ctx.connection.project)
        hosted = str(data.get("deploymentType", "hosted")).lower() == "hosted"
        who = text(dig(data, "authenticatedUser", "providerDisplayName")) or "the token's user"
        return Probe(product="Azure DevOps Services" if hosted else "Azure DevOps Server",
                     message=f"authenticated as {who}")

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """Read probes on the project and service hooks; writes cannot be probed without writing."""
        project = ctx.connection.project
        with ctx.client() as c:
            self._identity(ctx, c)
            hooks = c.get("/_apis/hooks/subscriptions", headers=headers(ctx), params=_v())
            found = self._find_project(ctx, c, project) if project else None
            results: list[tuple[str, str, bool | None]] = [
                ("Project: read", "finding the project", found is not None if project else None)]
            for name, why, path in self.needs:
                if path is None or found is None:
                    results.append((name, why, None))
                else:
                    probe = c.get(vendor_path("/{project}", project=found.get("name")) + path, headers=headers(ctx),
                                  params=_v())
                    results.append((name, why, probe.status == 200))
        results.append(("Service Hooks: read", "managing PMAP's subscription", hooks.status == 200))
        warnings = [_SCOPE_NOTE.format(scopes=self.token_scopes)]
        if not project:
            warnings.append("no project configured: project rights cannot be probed")
        return permission_report(results, warnings=warnings)

    def _publisher_inputs(self, ctx: OperationContext, project_id: str) -> dict[str, str]:
        return {"projectId": project_id}

    def register_webhook(self, ctx: OperationContext, hook: WebhookRegistration) -> WebhookRegistered:
        """Replace PMAP's subscription (the one it registered, or the same URL and event) with one carrying
        the current URL and secret."""
        consumer: dict[str, str] = {"url": hook.url}
        if hook.secret is not None:
            consumer.update(basicAuthUsername=AZURE_USERNAME, basicAuthPassword=hook.secret.get_secret_value())
        h = headers(ctx)
        with ctx.client() as c:
            project = self._project(ctx, c, required(ctx.connection.project, "project", "registering a webhook"))
            listed = az_check(ctx, c.get("/_apis/hooks/subscriptions", headers=h, params=_v()),
                              "listing service hook subscriptions", permission_hint=_HOOK_HINT)
            for old in json_of(ctx, listed, "subscriptions").get("value") or []:
                if isinstance(old, dict) and (str(old.get("id")) == hook.previous_hook_id or (
                        old.get("eventType") == self.event and dig(old, "consumerInputs", "url") == hook.url)):
                    old_path = vendor_path("/_apis/hooks/subscriptions/{hook_id}", hook_id=old.get("id"))
                    az_check(ctx, c.request("DELETE", old_path, headers=h, params=_v()),
                             "removing PMAP's previous subscription",
                             ok=(200, 204, 404), permission_hint=_HOOK_HINT)
            body = {"publisherId": self.publisher, "eventType": self.event, "resourceVersion": "1.0",
                    "consumerId": "webHooks", "consumerActionId": "httpRequest",
                    "publisherInputs": self._publisher_inputs(ctx, str(project.get("id"))), "consumerInputs": consumer}
            resp = az_check(ctx, c.post("/_apis/hooks/subscriptions", headers=h, params=_v(), json=body),
                            "creating the service hook subscription", ok=(200, 201), permission_hint=_HOOK_HINT)
        sub_id = text(json_of(ctx, resp, "the subscription").get("id"))
        if not sub_id:
            raise fail(ctx, "Azure DevOps created the subscription but returned no id", step="response")
        return WebhookRegistered(hook_id=sub_id, url=hook.url, signed=hook.secret is not None, ping_supported=True)

    def ping_webhook(self, ctx: OperationContext, hook_id: str) -> None:
        """A test notification of the subscription; returns once Azure DevOps reached the receiver."""
        if not re.fullmatch(r"[0-9a-fA-F-]{36}", hook_id or ""):
            raise ValidationFailed("an Azure DevOps subscription id is a GUID",
                                   fields=[FieldProblem("hook_id", "must be a GUID")])
        preview = {"api-version": _NOTIFICATIONS_API}
        with ctx.client() as c:
            resp = az_check(ctx, c.post("/_apis/hooks/testnotifications", headers=headers(ctx), params=preview,
                                        json={"subscriptionId": hook_id}), "sending the test notification",
                            permission_hint=_HOOK_HINT)
            note = json_of(ctx, resp, "the test notification")
            note_id = note.get("id")
            if note.get("result") in (None, "pending") and isinstance(note_id, int):
                # not completed yet (status queued/processing/...): read it again until it has a result
                def completed() -> dict[str, Any] | None:
                    note_path = vendor_path("/_apis/hooks/subscriptions/{hook_id}/notifications/{note_id}",
                                            hook_id=hook_id, note_id=note_id)
                    got = az_check(ctx, c.get(note_path, headers=headers(ctx), params=preview),
                                   "reading the test notification", permission_hint=_HOOK_HINT)
                    body = json_of(ctx, got, "the test notification")
                    return body if body.get("result") not in (None, "pending") else None

                note = poll(ctx, completed, what="Azure DevOps's test notification")
        if note.get("result") == "succeeded" or _STATUS_LINE.search(str(dig(note, "details", "response") or "")):
            return  # the receiver answered: PMAP's own delivery log says whether it verified
        reason = text(dig(note, "details", "errorMessage")) or text(note.get("result")) or "no result"
        raise fail(ctx, f"Azure DevOps could not deliver the test notification to PMAP's receiving URL: {reason}",
                   step="response")


class AzureBoardsConnector(_AzureConnector, CreatesTickets, SyncsTicketStatus):
    """Azure Boards: work items of one project."""

    token_scopes = "Work Items (Read & write), Service Hooks (Read & write)"  # noqa: S105  (scope names, no secret)
    needs = (("Work Items: read & write", "creating and updating work items", None),)

    def create_ticket(self, ctx: OperationContext, ticket: TicketRequest) -> TicketRef:
        """A work item of the configured type; severity and priority follow the ticket's severity."""
        project = ticket.project or required(ctx.connection.project, "project", "creating a work item")
        kind = ctx.connection.work_item_type
        body_field = "Microsoft.VSTS.TCM.ReproSteps" if kind.lower() == "bug" else "System.Description"
        text_html = html.escape(ticket_text(ticket)).replace("\n", "<br>")
        ops: list[dict[str, Any]] = [{"op": "add", "path": "/fields/System.Title", "value": title_of(ticket)},
                                     {"op": "add", "path": f"/fields/{body_field}", "value": text_html}]
        if labels := clean_labels(ticket.labels):
            ops.append({"op": "add", "path": "/fields/System.Tags", "value": "; ".join(labels)})
        if ctx.connection.area_path:
            ops.append({"op": "add", "path": "/fields/System.AreaPath", "value": ctx.connection.area_path})
        if sev := severity_of(ticket):
            ops.append({"op": "add", "path": "/fields/Microsoft.VSTS.Common.Priority", "value": _PRIORITY[sev]})
            if kind.lower() == "bug":
                ops.append({"op": "add", "path": "/fields/Microsoft.VSTS.Common.Severity", "value": _SEVERITY[sev]})
        h = {**headers(ctx), "Content-Type": "application/json-patch+json"}
        with ctx.client() as c:
            resp = az_check(ctx, c.post(vendor_path("/{project}/_apis/wit/workitems/${work_item_type}", project=project,
                                                    work_item_type=kind), headers=h,
                                        params=_v(), content=orjson.dumps(ops)),
                            f"creating a {kind} in project {project}", ok=(200, 201),
                            permission_hint="the token needs Work Items (Read & write) and the right to create work "
                                            "items in the area path")
        return self._ref(ctx, json_of(ctx, resp, "the created work item"))

    def sync_status(self, ctx: OperationContext, key: str) -> TicketRef:
        """The work item's state; done when Closed or Done."""
        if not str(key).isdigit():
            raise ValidationFailed("an Azure Boards work item is named by its id",
                                   fields=[FieldProblem("key", "must be a work item id")])
        with ctx.client() as c:
            resp = az_check(ctx, c.get(vendor_path("/_apis/wit/workitems/{key}", key=key), headers=headers(ctx),
                                       params=_v()), f"reading work item {key}")
        return self._ref(ctx, json_of(ctx, resp, f"work item {key}"))

    def _ref(self, ctx: OperationContext, item: dict[str, Any]) -> TicketRef:
        item_id, state = text(item.get("id")), text(dig(item, "fields", "System.State"))
        if not item_id or not state:
            raise fail(ctx, "Azure DevOps answered a work item without id or state", step="response")
        return TicketRef(key=item_id, url=text(dig(item, "_links", "html", "href")), status=state,
                         done=state.lower() in DONE_STATES)


class AzurePipelinesConnector(_AzureConnector, FetchesPipelineReports):
    """Azure Pipelines: report artifacts of pipeline runs."""

    publisher, event = "pipelines", "ms.vss-pipelines.run-state-changed-event"
    token_scopes = "Build (Read), Service Hooks (Read & write)"  # noqa: S105  (scope names, no secret)
    needs = (("Build: read", "reading pipeline runs and artifacts", "/_apis/pipelines"),)

    def __init__(self, formats: tuple[str, ...]) -> None:
        self.formats = formats

    def _publisher_inputs(self, ctx: OperationContext, project_id: str) -> dict[str, str]:
        inputs = {"projectId": project_id}
        if ctx.connection.pipeline_id:
            inputs["pipelineId"] = str(ctx.connection.pipeline_id)
        return inputs

    def _run(self, ctx: OperationContext, c: OutboundClient, project: str, pipeline: str,
             ref: str | None) -> dict[str, Any] | None:
        """The completed run to read: run ``ref``, the latest of branch ``ref``, or the latest."""
        root = vendor_path("/{project}/_apis/pipelines/{pipeline_id}", project=project, pipeline_id=pipeline)
        if ref and ref.isdigit():
            resp = az_check(ctx, c.get(root + vendor_path("/runs/{ref}", ref=ref), headers=headers(ctx), params=_v()),
                            f"reading run {ref}")
            run = json_of(ctx, resp, f"run {ref}")
            return run if run.get("state") == "completed" else None
        if ref:
            # Runs - List takes no branch filter (and its items need not carry their resources); Builds -
            # List filters a definition's builds by branch (a pipeline's id is its build definition's id,
            # a run's id its build's)
            branch = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
            builds_path = vendor_path("/{project}/_apis/build/builds", project=project)
            resp = az_check(ctx, c.get(builds_path, headers=headers(ctx), params=_v(
                definitions=pipeline, branchName=branch, statusFilter="completed",
                queryOrder="finishTimeDescending", **{"$top": 1})), f"listing the builds of {branch}")
            builds = [b for b in json_of(ctx, resp, "builds").get("value") or []
                      if isinstance(b, dict) and b.get("status") == "completed" and b.get("id")]
            return builds[0] if builds else None
        resp = az_check(ctx, c.get(f"{root}/runs", headers=headers(ctx), params=_v()), "listing pipeline runs")
        runs = [r for r in json_of(ctx, resp, "runs").get("value") or [] if isinstance(r, dict)
                and r.get("state") == "completed"]
        return max(runs, key=lambda r: int(r.get("id") or 0), default=None)

    def fetch_pipeline_reports(self, ctx: OperationContext, ref: str | None = None) -> list[ReportArtifact]:
        """Report files in the build artifacts of the latest completed run (``ref``: a run id or a branch)."""
        project = required(ctx.connection.project, "project", "reading pipeline reports")
        pipeline = required(str(ctx.connection.pipeline_id or ""), "pipeline_id", "reading pipeline reports")
        out: list[ReportArtifact] = []
        with ctx.client() as c:
            run = self._run(ctx, c, project, pipeline, ref)
            if run is None:
                return []
            resp = az_check(ctx, c.get(vendor_path("/{project}/_apis/build/builds/{run_id}/artifacts", project=project,
                                                 run_id=run["id"]), headers=headers(ctx),
                                       params=_v()), "listing the run's artifacts")
            for artifact in json_of(ctx, resp, "artifacts").get("value") or []:
                name, url = text(dig(artifact, "name")), text(dig(artifact, "resource", "downloadUrl"))
                if not name or not url:
                    continue
                got, spooled = download(ctx, c, url, headers=headers(ctx))
                az_check(ctx, got, f"downloading artifact {name}")
                # the archive's top folder is usually the artifact's name already
                files = ((member if member.startswith(f"{name}/") else f"{name}/{member}", data)
                         for member, data in unzip(ctx, spooled or got.content, f"artifact {name}"))
                out.extend(artifacts_of(files, self.formats))
        return out


SARIF = ("sarif",)

CONNECTOR_TYPES = (
    ConnectorType(
        vendor="azure_boards", display_name="Azure Boards", category=Category.TICKETING,
        connection_model=AzureBoardsConnection, credentials_model=AzureDevOpsCredentials,
        webhook_scheme="azure_devops_basic", implementation=AzureBoardsConnector(),
        docs_url="https://learn.microsoft.com/en-us/rest/api/azure/devops/wit/",
        notes="Token scopes: Work Items (Read & write), Service Hooks (Read & write).",
    ),
    ConnectorType(
        vendor="azure_pipelines", display_name="Azure Pipelines", category=Category.CICD,
        connection_model=AzurePipelinesConnection, credentials_model=AzureDevOpsCredentials, report_formats=SARIF,
        webhook_scheme="azure_devops_basic", implementation=AzurePipelinesConnector(SARIF),
        docs_url="https://learn.microsoft.com/en-us/rest/api/azure/devops/pipelines/",
        notes="Token scopes: Build (Read), Service Hooks (Read & write). Reads SARIF files from the build artifacts "
              "of the latest completed run.",
    ),
)
