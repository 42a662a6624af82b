"""Atlassian Jira: Jira Cloud, Jira Data Center and Jira Service Management.

Authentication: Cloud and Service Management use HTTP Basic ``email:api_token``; Data Center a
personal access token as ``Bearer`` (Jira 8.14+) or Basic ``username:password``. ``serverInfo``
answers anonymously, so the connection test proves the credentials with ``myself`` too. Cloud
speaks REST v3 (rich text in Atlassian Document Format), Data Center v2 (plain strings).

A ticket is done when ``fields.status.statusCategory.key == "done"``. Webhooks go through the admin
webhook API (``/rest/webhooks/1.0/webhook``; deliveries signed ``X-Hub-Signature: sha256=<hex>``
when the hook has a secret: Cloud's "secure admin webhooks", Data Center's "Managing webhooks" page;
a Jira too old to sign sends unsigned hooks, which production refuses unless allowed),
which needs the Administer Jira global permission that ``check_permissions`` flags as more than PMAP
needs: register once with an administrator's account, or have an administrator create the webhook
(URL and secret) in System > WebHooks. Jira has no test delivery. Creating an issue is not retried
(a retry after a lost answer would open a duplicate). Jira Service Management: an unlicensed JSM
(``isLicensedForUse`` false) passes the test with a warning, because Jira still answers; agents
cannot work on requests until the license is renewed.

Jira Service Management also takes an Atlassian service account's OAuth 2.0 client credentials
(``client_id`` + ``client_secret`` instead of ``email`` + ``api_token``): the token comes from
Atlassian's token endpoint and the calls go through the API gateway
(:mod:`pmap.connectors.vendors._atlassian_oauth`); the token is cached in memory until it expires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, SecretStr, model_validator

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    CreatesTickets,
    Credentials,
    OperationContext,
    PermissionReport,
    Probe,
    RegistersWebhooks,
    SyncsTicketStatus,
    TicketRef,
    TicketRequest,
    WebhookRegistered,
    WebhookRegistration,
)
from pmap.connectors.vendors import _atlassian_oauth
from pmap.connectors.vendors._oauth import (
    AUTHENTICATED_WITH_OAUTH,
    OAUTH,
    OAUTH_FIELDS,
    kinds_schema,
    one_kind,
    uses_oauth,
)
from pmap.connectors.vendors._support import dig, permission_report, text
from pmap.connectors.vendors._work_http import (
    basic_auth,
    check,
    clean_labels,
    fail,
    json_of,
    required,
    severity_of,
    ticket_text,
    title_of,
)
from pmap.core.errors import FieldProblem, UpstreamError, ValidationFailed, upstream_error
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import vendor_path

_PROJECT_KEY = r"^[A-Z][A-Z0-9_]{1,49}$"
_ISSUE_REF = re.compile(r"^(?:[A-Z][A-Z0-9_]{1,49}-\d{1,9}|\d{1,12})$")
_WEBHOOKS = "/rest/webhooks/1.0/webhook"
_SD = "/rest/servicedeskapi"
NEEDED = (("BROWSE_PROJECTS", "reading issues"), ("CREATE_ISSUES", "creating issues"),
          ("EDIT_ISSUES", "updating issues"), ("TRANSITION_ISSUES", "moving issues through the workflow"),
          ("ADD_COMMENTS", "commenting on issues"))
EXCESS = ("ADMINISTER", "ADMINISTER_PROJECTS")
EVENTS = ["jira:issue_created", "jira:issue_updated", "jira:issue_deleted"]
_PRIORITY = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low", "info": "Lowest"}
_ADMIN_HINT = ("Jira webhooks can only be managed by an account with the Administer Jira global permission: "
               "register once with an administrator's account, or have an administrator create the webhook "
               "(URL and secret) in System > WebHooks")


class JiraCloudCredentials(Credentials):
    """Jira Cloud basic auth: the account e-mail and an API token."""

    email: str = Field(min_length=3, description="Atlassian account e-mail")
    api_token: SecretStr = Field(description="Atlassian API token")


_JSM_KINDS = {"api_token": ("email", "api_token"), OAUTH: OAUTH_FIELDS}
_JSM_TITLES = {"api_token": "Account e-mail and API token (HTTP Basic)",
               OAUTH: "Service account OAuth 2.0 client credentials"}


class JiraServiceManagementCredentials(Credentials):
    """The account e-mail and an API token, or a service account's OAuth 2.0 client credentials."""

    model_config = ConfigDict(json_schema_extra=kinds_schema(_JSM_KINDS, _JSM_TITLES))
    credential_kinds: ClassVar[Mapping[str, tuple[str, ...]]] = _JSM_KINDS

    email: str | None = Field(default=None, min_length=3, description="Atlassian account e-mail (with api_token)")
    api_token: SecretStr | None = Field(default=None, description="Atlassian API token")
    client_id: str | None = Field(default=None, min_length=1,
                                  description="Service account OAuth 2.0 client id (instead of e-mail and API token)")
    client_secret: SecretStr | None = Field(default=None, description="Service account OAuth 2.0 client secret")

    @model_validator(mode="after")
    def _one_kind(self) -> JiraServiceManagementCredentials:
        one_kind(self, _JSM_KINDS)
        return self


class JiraDataCenterCredentials(Credentials):
    """A personal access token (Jira 8.14+), or a user name and password."""

    personal_access_token: SecretStr | None = Field(default=None, description="Personal access token (preferred)")
    username: str | None = Field(default=None, description="User name (with password, when no token is used)")
    password: SecretStr | None = Field(default=None, description="Password")

    @model_validator(mode="after")
    def _one_method(self) -> JiraDataCenterCredentials:
        if self.personal_access_token is None and not (self.username and self.password is not None):
            raise ValueError("give a personal_access_token, or a username and password")
        return self


class JiraConnection(ConnectionSettings):
    base_url: str = Field(description="Your site, e.g. https://example.atlassian.net or https://jira.example.com")
    project_key: str | None = Field(default=None, pattern=_PROJECT_KEY, description="Default project for new issues")
    issue_type: str = Field(default="Task", min_length=1, max_length=60, description="Issue type of new issues")


class JiraServiceManagementConnection(ConnectionSettings):
    base_url: str = Field(description="Your site, e.g. https://example.atlassian.net")
    service_desk_id: str | None = Field(default=None, pattern=r"^\d{1,12}$", description="Service desk of new requests")
    request_type_id: str | None = Field(default=None, pattern=r"^\d{1,12}$", description="Request type of new requests")


def _issue_ref(key: str) -> str:
    if not _ISSUE_REF.match(key or ""):
        raise ValidationFailed("a Jira issue is named by its key (SEC-12) or id",
                               fields=[FieldProblem("key", "must be an issue key or id")])
    return key


def _adf(textual: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document, one paragraph per line."""
    return {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]} for line in textual.split("\n") if line]}


def _field_error(resp: OutboundResponse, name: str) -> bool:
    try:
        errors = resp.json().get("errors")
    except (UpstreamError, AttributeError):
        return False
    return isinstance(errors, dict) and name in errors


class JiraConnector(Connector, CreatesTickets, SyncsTicketStatus, ChecksPermissions, RegistersWebhooks):
    """Jira platform REST API: identity, issues, permissions and admin webhooks."""

    def __init__(self, *, cloud: bool, product: str) -> None:
        self.cloud = cloud
        self.api = "3" if cloud else "2"
        self.product = product

    # --- plumbing ------------------------------------------------------------------------------------

    def headers(self, ctx: OperationContext) -> dict[str, str]:
        """Authentication and content negotiation headers."""
        if uses_oauth(ctx):
            auth = _atlassian_oauth.bearer(ctx)
        elif self.cloud:
            auth = basic_auth(ctx.credentials.email or "", ctx.secret("api_token"))
        elif pat := ctx.secret("personal_access_token"):
            auth = {"Authorization": f"Bearer {pat}"}
        else:
            auth = basic_auth(ctx.credentials.username or "", ctx.secret("password"))
        return {**auth, "Accept": "application/json"}

    def client(self, ctx: OperationContext) -> OutboundClient:
        """The guarded client of the operation's API base (the site, or Atlassian's gateway with OAuth)."""
        return ctx.client(_atlassian_oauth.api_base(ctx))

    def rest(self, path: str) -> str:
        """A platform REST path of this deployment's API version."""
        return f"/rest/api/{self.api}/{path.lstrip('/')}"

    def check(self, ctx: OperationContext, resp: OutboundResponse, what: str, **kw: Any) -> OutboundResponse:
        """:func:`check` plus Jira's CAPTCHA lock-out (a 403 that is really a refused login)."""
        if resp.status == 403 and "AUTHENTICATION_DENIED" in resp.headers.get("x-seraph-loginreason", ""):
            raise fail(ctx, "Jira asks for a CAPTCHA after failed logins of this account: log in once in a "
                            "browser, then test again", step="auth", resp=resp)
        hint = ("use the account e-mail and an API token from id.atlassian.com (not the password)" if self.cloud
                else "use a personal access token (Jira 8.14+), or the user name and password")
        if uses_oauth(ctx):
            hint = "the access token was refused: " + _atlassian_oauth.HINT
        return check(ctx, resp, what, auth_hint=hint, **kw)

    def browse(self, ctx: OperationContext, key: str) -> str:
        """The issue's web page."""
        return f"{str(ctx.connection.base_url).rstrip('/')}/browse/{key}"

    def _mismatch(self, info: dict[str, Any]) -> str | None:
        kind = text(info.get("deploymentType"))
        if self.cloud and kind and kind != "Cloud":
            return f"this site is Jira {kind} (Data Center): use the Jira Data Center connector type"
        if not self.cloud and kind == "Cloud":
            return "this site is Jira Cloud: use the Jira Cloud connector type (e-mail and API token)"
        return None

    # --- operations --------------------------------------------------------------------------------

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``serverInfo`` (version, deployment type) and ``myself`` (proves the credentials)."""
        h = self.headers(ctx)
        with self.client(ctx) as c:
            info = json_of(ctx, self.check(ctx, c.get("/rest/api/2/serverInfo", headers=h), "GET serverInfo"),
                           "server information")
            mismatch = self._mismatch(info)
            try:
                me = json_of(ctx, self.check(ctx, c.get(self.rest("myself"), headers=h), "GET myself"), "the user")
            except UpstreamError as exc:
                if mismatch:
                    raise upstream_error(f"{exc.message}; {mismatch}", step=exc.step,
                                         upstream_status=exc.upstream_status) from None
                raise
            # the display name: the e-mail or user name is a credential value and would show as [REDACTED]
            who = text(me.get("displayName")) or text(me.get("accountId")) or "the user"
            how = AUTHENTICATED_WITH_OAUTH + " as" if uses_oauth(ctx) else "authenticated as"
            probe = Probe(product=self.product, version=text(info.get("version")),
                          warnings=[mismatch] if mismatch else [], message=f"{how} {who}")
            self.inspect(ctx, c, h, probe)
        return probe

    def inspect(self, ctx: OperationContext, c: OutboundClient, h: dict[str, str], probe: Probe) -> None:
        """The configured project must be visible (Jira answers 404 for a project the account cannot browse)."""
        key = getattr(ctx.connection, "project_key", None)
        if key:
            project = self.rest(vendor_path("project/{project_key}", project_key=key))
            self.check(ctx, c.get(project, headers=h), f"reading project {key}", permission=(403, 404),
                       permission_hint="the project does not exist or the account lacks Browse Projects in it")

    def create_ticket(self, ctx: OperationContext, ticket: TicketRequest) -> TicketRef:
        """``POST issue`` in the ticket's (or the configured) project; priority from the severity."""
        key = ticket.project or required(getattr(ctx.connection, "project_key", None), "project_key",
                                         "creating a Jira issue")
        body = ticket_text(ticket)
        fields: dict[str, Any] = {"project": {"key": key}, "summary": title_of(ticket),
                                  "issuetype": {"name": ctx.connection.issue_type},
                                  "description": _adf(body) if self.cloud else body}
        if labels := clean_labels(ticket.labels):
            fields["labels"] = labels
        if sev := severity_of(ticket):
            fields["priority"] = {"name": _PRIORITY[sev]}
        h = self.headers(ctx)
        with self.client(ctx) as c:
            resp = c.post(self.rest("issue"), headers=h, json={"fields": fields})
            if resp.status == 400 and "priority" in fields and _field_error(resp, "priority"):
                # priority is not on every project's create screen: the issue matters more than it
                fields.pop("priority")
                resp = c.post(self.rest("issue"), headers=h, json={"fields": fields})
            self.check(ctx, resp, f"creating an issue in project {key}", ok=(200, 201),
                       permission_hint="the account needs Browse Projects and Create Issues in the project")
        issue_key = text(json_of(ctx, resp, "the created issue").get("key"))
        if not issue_key:
            raise fail(ctx, "Jira created the issue but returned no key", step="response")
        return TicketRef(key=issue_key, url=self.browse(ctx, issue_key), status=None, done=False)

    def sync_status(self, ctx: OperationContext, key: str) -> TicketRef:
        """The issue's status; done when its status category is ``done``."""
        ref = _issue_ref(key)
        with self.client(ctx) as c:
            resp = self.check(ctx, c.get(self.rest(vendor_path("issue/{key}", key=ref)), headers=self.headers(ctx),
                                         params={"fields": "status"}), f"reading issue {ref}")
        issue = json_of(ctx, resp, f"issue {ref}")
        status = dig(issue, "fields", "status")
        category = text(dig(status, "statusCategory", "key"))
        if category is None:
            raise fail(ctx, f"issue {ref} came without a status category", step="response")
        real_key = text(issue.get("key")) or ref
        return TicketRef(key=real_key, url=self.browse(ctx, real_key), status=text(dig(status, "name")),
                         done=category == "done")

    def permission_project(self, ctx: OperationContext, c: OutboundClient, h: dict[str, str]) -> str | None:
        """The project whose permissions are checked."""
        return getattr(ctx.connection, "project_key", None)

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """``mypermissions`` for what PMAP needs, plus the administrator rights it should not hold."""
        h = self.headers(ctx)
        with self.client(ctx) as c:
            project = self.permission_project(ctx, c, h)
            params = {"permissions": ",".join([k for k, _ in NEEDED] + list(EXCESS))}
            if project:
                params["projectKey"] = project
            resp = self.check(ctx, c.get(self.rest("mypermissions"), headers=h, params=params), "GET mypermissions")
        perms = json_of(ctx, resp, "permissions").get("permissions")

        def held(name: str) -> bool | None:
            have = dig(perms, name, "havePermission")
            return have if isinstance(have, bool) else None

        warnings = [] if project else [
            "no project configured: Jira answers whether each permission is held in any project"]
        if held("ADMINISTER") is not True:
            warnings.append(_ADMIN_HINT)
        return permission_report([(k, why, held(k)) for k, why in NEEDED], [k for k in EXCESS if held(k)], warnings)

    def register_webhook(self, ctx: OperationContext, hook: WebhookRegistration) -> WebhookRegistered:
        """Replace PMAP's webhook (the one it registered, or the same URL) with one carrying the current
        URL and secret."""
        h = self.headers(ctx)
        with self.client(ctx) as c:
            project = self.permission_project(ctx, c, h)
            listed = self.check(ctx, c.get(_WEBHOOKS, headers=h), "listing webhooks", permission_hint=_ADMIN_HINT)
            for old in json_of(ctx, listed, "webhooks", list):
                hook_id = str(old.get("self", "")).rstrip("/").rsplit("/", 1)[-1] if isinstance(old, dict) else ""
                if hook_id.isdigit() and (hook_id == hook.previous_hook_id or old.get("url") == hook.url):
                    stale = _WEBHOOKS + vendor_path("/{hook_id}", hook_id=hook_id)
                    self.check(ctx, c.request("DELETE", stale, headers=h), "removing PMAP's previous webhook",
                               ok=(200, 204, 404), permission_hint=_ADMIN_HINT)
            body: dict[str, Any] = {"name": "PMAP", "url": hook.url, "events": hook.events or EVENTS,
                                    "excludeBody": False, "enabled": True,
                                    "filters": {"issue-related-events-section": f"project = {project}"}
                                    if project else {}}
            if hook.secret is not None:
                body["secret"] = hook.secret.get_secret_value()
            resp = self.check(ctx, c.post(_WEBHOOKS, headers=h, json=body), "creating the webhook", ok=(200, 201),
                              permission_hint=_ADMIN_HINT)
        new_id = str(json_of(ctx, resp, "the webhook").get("self", "")).rstrip("/").rsplit("/", 1)[-1]
        if not new_id.isdigit():
            raise fail(ctx, "Jira created the webhook but returned no id", step="response")
        return WebhookRegistered(hook_id=new_id, url=hook.url, signed=hook.secret is not None, ping_supported=False)


class ServiceManagementConnector(JiraConnector):
    """Jira Service Management: the platform API plus ``/rest/servicedeskapi`` customer requests."""

    def __init__(self) -> None:
        super().__init__(cloud=True, product="Jira Service Management")

    def inspect(self, ctx: OperationContext, c: OutboundClient, h: dict[str, str], probe: Probe) -> None:
        """JSM version and license (``info``), and the service desks the account sees."""
        info = json_of(ctx, self.check(ctx, c.get(f"{_SD}/info", headers=h), "GET servicedeskapi/info"),
                       "service desk information")
        probe.version = text(info.get("version")) or probe.version
        licensed = info.get("isLicensedForUse")
        probe.license = {"type": "Jira Service Management",
                         "status": {True: "licensed", False: "unlicensed"}.get(licensed, "unknown")}
        if licensed is False:
            probe.warnings.append("Jira Service Management is not licensed for use: agents cannot work on requests "
                                  "until the license is renewed")
        desks = json_of(ctx, self.check(ctx, c.get(f"{_SD}/servicedesk", headers=h, params={"limit": 100}),
                                        "listing service desks"), "service desks")
        ids = {text(d.get("id")) for d in desks.get("values") or [] if isinstance(d, dict)}
        wanted = ctx.connection.service_desk_id
        if not ids:
            probe.warnings.append("this account sees no service desk: make it an agent of the service project")
        elif wanted and wanted not in ids:
            probe.warnings.append(f"service desk {wanted} does not exist or this account is not one of its agents")

    def permission_project(self, ctx: OperationContext, c: OutboundClient, h: dict[str, str]) -> str | None:
        """The project of the configured service desk."""
        desk = ctx.connection.service_desk_id
        if not desk:
            return None
        path = _SD + vendor_path("/servicedesk/{service_desk_id}", service_desk_id=desk)
        resp = self.check(ctx, c.get(path, headers=h), f"reading service desk {desk}")
        return text(json_of(ctx, resp, "the service desk").get("projectKey"))

    def create_ticket(self, ctx: OperationContext, ticket: TicketRequest) -> TicketRef:
        """A customer request of the configured service desk and request type."""
        desk = ticket.project or required(ctx.connection.service_desk_id, "service_desk_id", "creating a request")
        kind = required(ctx.connection.request_type_id, "request_type_id", "creating a request")
        body = {"serviceDeskId": desk, "requestTypeId": kind,
                "requestFieldValues": {"summary": title_of(ticket), "description": ticket_text(ticket)}}
        with self.client(ctx) as c:
            resp = self.check(ctx, c.post(f"{_SD}/request", headers=self.headers(ctx), json=body),
                              f"creating a request in service desk {desk}", ok=(200, 201),
                              permission_hint="the account must be allowed to raise requests in the service project")
        created = json_of(ctx, resp, "the created request")
        key = text(created.get("issueKey"))
        if not key:
            raise fail(ctx, "Jira Service Management created the request but returned no key", step="response")
        status = dig(created, "currentStatus")
        return TicketRef(key=key, url=text(dig(created, "_links", "web")) or self.browse(ctx, key),
                         status=text(dig(status, "status")),
                         done=str(dig(status, "statusCategory") or "").upper() == "DONE")


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="jira_cloud", display_name="Jira Cloud", category=Category.TICKETING,
        connection_model=JiraConnection, credentials_model=JiraCloudCredentials, webhook_scheme="jira",
        implementation=JiraConnector(cloud=True, product="Jira Cloud"),
        docs_url="https://developer.atlassian.com/cloud/jira/platform/rest/v3/",
        notes="Webhook registration needs an administrator account (or an administrator registers it by hand).",
    ),
    ConnectorType(
        vendor="jira_data_center", display_name="Jira Data Center", category=Category.TICKETING,
        connection_model=JiraConnection, credentials_model=JiraDataCenterCredentials, webhook_scheme="jira",
        implementation=JiraConnector(cloud=False, product="Jira Data Center"),
        docs_url="https://developer.atlassian.com/server/jira/platform/rest/v10000/",
        notes="REST API v2; a personal access token needs Jira 8.14+. Webhook registration needs an administrator.",
    ),
    ConnectorType(
        vendor="jira_service_management", display_name="Jira Service Management", category=Category.ITSM,
        connection_model=JiraServiceManagementConnection, credentials_model=JiraServiceManagementCredentials,
        webhook_scheme="jira", implementation=ServiceManagementConnector(),
        docs_url="https://developer.atlassian.com/cloud/jira/service-desk/rest/",
        notes="Tickets are customer requests of the configured service desk and request type.",
    ),
)
