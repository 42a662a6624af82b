"""ServiceNow: incidents through the Table API (``/api/now/table``), over HTTP Basic or OAuth 2.0.

OAuth 2.0 client credentials (``client_id`` + ``client_secret`` instead of a user name and password):
PMAP asks ``POST /oauth_token.do`` for a Bearer token (cached in memory until it expires, see
:mod:`pmap.connectors.vendors._oauth`). The instance must have the system property
``glide.oauth.inbound.client.credential.grant_type.enabled`` set to true and the OAuth client an
OAuth Application User; requests run as that user, whose name PMAP does not know, so
``check_permissions`` cannot read its roles and says so.

The connection test reads one ``sys_user`` row (the cheapest authenticated read); ServiceNow has
no official version API, so no version is reported. A hibernating developer instance answers an HTML
page with status 200: step ``response``, with that hint. Tickets are incidents: key = ``number``,
done = ``state`` 6 (Resolved) or 7 (Closed). Least privilege: ``itil`` is what incident work
needs; ``admin``, ``security_admin``, ``user_admin`` and ``maint`` are more than needed. A default
instance ignores an encoded-query condition on a field it does not know
(``glide.invalid_query.returns_no_rows`` false), so every read by query checks that the rows it got
really match. Creating an incident is not retried (a retry after a lost answer would duplicate it).

Webhooks: ServiceNow has no outbound signing and no API to install a webhook, so PMAP does not offer
registration. An administrator installs the business rule documented in
:mod:`pmap.webhooks.schemes` (scheme ``servicenow``: ``X-PMAP-Timestamp``,
``X-PMAP-Signature: v1=<base64 HMAC-SHA256(secret, "<timestamp>.<body>")>``, ``X-PMAP-Delivery``)
on the incident table, with PMAP's receiving URL and the integration's webhook secret.
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
    SyncsTicketStatus,
    TicketRef,
    TicketRequest,
)
from pmap.connectors.vendors._oauth import (
    AUTHENTICATED_WITH_OAUTH,
    OAUTH,
    OAUTH_FIELDS,
    TokenEndpoint,
    access_token,
    kinds_schema,
    one_kind,
    uses_oauth,
)
from pmap.connectors.vendors._support import permission_report
from pmap.connectors.vendors._work_http import (
    basic_auth,
    check,
    clean_labels,
    fail,
    json_of,
    severity_of,
    ticket_text,
    title_of,
)
from pmap.core.errors import FieldProblem, UpstreamError, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import vendor_path

_TABLE = "/api/now/table"
_SYS_ID = re.compile(r"^[0-9a-f]{32}$")
_NUMBER = re.compile(r"^[A-Z]{2,10}\d{4,12}$")
STATES = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
DONE_STATES = frozenset({"6", "7"})
NEEDED_ROLE = "itil"
EXCESS_ROLES = frozenset({"admin", "security_admin", "user_admin", "maint"})
# (impact, urgency): the default priority lookup makes these P1 Critical .. P5 Planning
_IMPACT_URGENCY = {"critical": ("1", "1"), "high": ("1", "2"), "medium": ("2", "2"), "low": ("2", "3"),
                   "info": ("3", "3")}
_AUTH_HINT = "check the user name and password (the user must not be limited to single sign-on)"


_OAUTH_HINT = ("check the client id and secret of the OAuth application registry entry; the instance needs the "
               "system property glide.oauth.inbound.client.credential.grant_type.enabled set to true and the "
               "OAuth client an OAuth Application User")
_KINDS = {"basic": ("username", "password"), OAUTH: OAUTH_FIELDS}
_TITLES = {"basic": "Integration user (HTTP Basic)", OAUTH: "OAuth 2.0 client credentials"}


class ServiceNowCredentials(Credentials):
    """A ServiceNow integration user (HTTP Basic), or an OAuth 2.0 client (client credentials grant)."""

    model_config = ConfigDict(json_schema_extra=kinds_schema(_KINDS, _TITLES))
    credential_kinds: ClassVar[Mapping[str, tuple[str, ...]]] = _KINDS

    username: str | None = Field(default=None, min_length=1, description="ServiceNow user name (HTTP Basic)")
    password: SecretStr | None = Field(default=None, description="ServiceNow password (HTTP Basic)")
    client_id: str | None = Field(default=None, min_length=1,
                                  description="OAuth 2.0 client id (instead of a user name and password)")
    client_secret: SecretStr | None = Field(default=None, description="OAuth 2.0 client secret")

    @model_validator(mode="after")
    def _one_kind(self) -> ServiceNowCredentials:
        one_kind(self, _KINDS)
        return self


class ServiceNowConnection(ConnectionSettings):
    base_url: str = Field(description="Your instance, e.g. https://example.service-now.com")
    assignment_group: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$",
                                         description="sys_id of the group new incidents are assigned to")


def _value(field: Any) -> str:
    """A Table API value: plain, or the ``value`` of a ``{display_value, value}`` reference."""
    if isinstance(field, dict):
        return str(field.get("value") or "")
    return "" if field is None else str(field)


def _display(field: Any) -> str:
    if isinstance(field, dict):
        return str(field.get("display_value") or "")
    return "" if field is None else str(field)


class ServiceNowConnector(Connector, CreatesTickets, SyncsTicketStatus, ChecksPermissions):
    """ServiceNow Table API: ``sys_user``, ``sys_user_has_role`` and ``incident``."""

    def _headers(self, ctx: OperationContext) -> dict[str, str]:
        if uses_oauth(ctx):
            endpoint = TokenEndpoint(str(ctx.connection.base_url), "/oauth_token.do", "ServiceNow", _OAUTH_HINT)
            auth = {"Authorization": f"Bearer {access_token(ctx, endpoint)}"}
        else:
            auth = basic_auth(ctx.credentials.username or "", ctx.secret("password"))
        return {**auth, "Accept": "application/json"}

    def _auth_hint(self, ctx: OperationContext) -> str:
        return "the access token was refused: " + _OAUTH_HINT if uses_oauth(ctx) else _AUTH_HINT

    def _rows(self, ctx: OperationContext, resp: OutboundResponse, what: str) -> list[dict[str, Any]]:
        try:
            body = json_of(ctx, resp, what)
        except UpstreamError as exc:
            if exc.step == "response" and "html" in resp.headers.get("content-type", "").lower():
                raise fail(ctx, f"{what}: the instance answered a web page instead of JSON (a developer instance "
                                "may be hibernating: wake it in the developer portal), or the base URL is not the "
                                "instance root", step="response") from None
            raise
        rows = body.get("result")
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list):
            raise fail(ctx, f"{what}: the answer holds no result", step="response")
        return [r for r in rows if isinstance(r, dict)]

    def _get(self, ctx: OperationContext, c: OutboundClient, path: str, what: str,
             **params: str) -> list[dict[str, Any]]:
        resp = check(ctx, c.get(f"{_TABLE}/{path}", headers=self._headers(ctx), params=params), what,
                     auth_hint=self._auth_hint(ctx))
        return self._rows(ctx, resp, what)

    def _me(self, ctx: OperationContext, c: OutboundClient) -> dict[str, Any] | None:
        name = ctx.credentials.username
        rows = self._get(ctx, c, "sys_user", "reading the integration user", sysparm_query=f"user_name={name}",
                         sysparm_limit="2", sysparm_fields="sys_id,user_name,name,active")
        return next((r for r in rows if r.get("user_name") == name), None)

    def test_connection(self, ctx: OperationContext) -> Probe:
        """One ``sys_user`` row: the cheapest authenticated read (the user name stays out of the URL,
        where HTTP client logs would show it)."""
        with ctx.client() as c:
            rows = self._get(ctx, c, "sys_user", "reading sys_user", sysparm_limit="1", sysparm_fields="sys_id")
        warnings = [] if rows else ["the integration user can read no sys_user record: PMAP cannot check its roles"]
        if uses_oauth(ctx):
            return Probe(product="ServiceNow", warnings=warnings, message=AUTHENTICATED_WITH_OAUTH + " (requests run "
                         "as the OAuth client's OAuth Application User)")
        return Probe(product="ServiceNow", warnings=warnings, message="authenticated with user name and password")

    def _ref(self, ctx: OperationContext, record: dict[str, Any]) -> TicketRef:
        state = _value(record.get("state"))
        sys_id = _value(record.get("sys_id"))
        base = str(ctx.connection.base_url).rstrip("/")
        return TicketRef(key=_value(record.get("number")) or sys_id,
                         url=f"{base}/nav_to.do?uri=incident.do?sys_id={sys_id}" if sys_id else None,
                         status=STATES.get(state, state or None), done=state in DONE_STATES)

    def create_ticket(self, ctx: OperationContext, ticket: TicketRequest) -> TicketRef:
        """A new incident; impact and urgency follow the severity."""
        description = ticket_text(ticket)
        if labels := clean_labels(ticket.labels):
            description += "\n\nLabels: " + ", ".join(labels)
        values: dict[str, str] = {"short_description": title_of(ticket, 160), "description": description}
        if sev := severity_of(ticket):
            values["impact"], values["urgency"] = _IMPACT_URGENCY[sev]
        if ctx.connection.assignment_group:
            values["assignment_group"] = ctx.connection.assignment_group
        with ctx.client() as c:
            resp = check(ctx, c.post(f"{_TABLE}/incident", headers=self._headers(ctx), json=values,
                                     params={"sysparm_fields": "sys_id,number,state",
                                             "sysparm_exclude_reference_link": "true"}),
                         "creating an incident", ok=(200, 201), auth_hint=self._auth_hint(ctx),
                         permission_hint=f"the user needs the {NEEDED_ROLE} role")
        rows = self._rows(ctx, resp, "the created incident")
        if not rows or not _value(rows[0].get("number")):
            raise fail(ctx, "ServiceNow created the incident but returned no number", step="response")
        return self._ref(ctx, rows[0])

    def sync_status(self, ctx: OperationContext, key: str) -> TicketRef:
        """The incident's state, by ``number`` or ``sys_id``; done when Resolved (6) or Closed (7)."""
        fields = "sys_id,number,state"
        with ctx.client() as c:
            if _SYS_ID.match(key):
                rows = self._get(ctx, c, vendor_path("incident/{key}", key=key), f"reading incident {key}",
                                 sysparm_fields=fields)
                rows = [r for r in rows if _value(r.get("sys_id")) == key]
            elif _NUMBER.match(key):
                rows = self._get(ctx, c, "incident", f"reading incident {key}", sysparm_query=f"number={key}",
                                 sysparm_limit="2", sysparm_fields=fields)
                rows = [r for r in rows if _value(r.get("number")) == key]
            else:
                raise ValidationFailed("a ServiceNow incident is named by its number or sys_id",
                                       fields=[FieldProblem("key", "must be an incident number or a sys_id")])
        if not rows:
            raise fail(ctx, f"incident {key} does not exist or an ACL hides it from the integration user",
                       step="response")
        return self._ref(ctx, rows[0])

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """The user's active roles from ``sys_user_has_role``: ``itil`` needed, admin roles excess."""
        needed_for = "creating and updating incidents"
        if uses_oauth(ctx):
            with ctx.client() as c:  # still prove the token works
                self._get(ctx, c, "sys_user", "reading sys_user", sysparm_limit="1", sysparm_fields="sys_id")
            return permission_report([(f"{NEEDED_ROLE} role", needed_for, None)], warnings=[
                "with OAuth 2.0 client credentials requests run as the OAuth client's OAuth Application User, whose "
                f"name PMAP does not know: its roles cannot be read; make sure that user holds {NEEDED_ROLE} and no "
                "admin role"])
        with ctx.client() as c:
            me = self._me(ctx, c)
            if me is None:
                return permission_report([(f"{NEEDED_ROLE} role", needed_for, None)], warnings=[
                    "the integration user cannot read its own sys_user record, so its roles cannot be read"])
            uid = _value(me.get("sys_id"))
            rows = self._get(ctx, c, "sys_user_has_role", "reading the user's roles",
                             sysparm_query=f"user={uid}^state=active", sysparm_fields="user,role,inherited,state",
                             sysparm_display_value="all", sysparm_exclude_reference_link="true",
                             sysparm_limit="1000")
        roles = {_display(r.get("role")) for r in rows if _value(r.get("user")) == uid} - {""}
        # admin passes every role check on a ServiceNow instance
        granted = NEEDED_ROLE in roles or "admin" in roles
        return permission_report([(f"{NEEDED_ROLE} role", needed_for, granted)], roles & EXCESS_ROLES)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="servicenow",
        display_name="ServiceNow",
        category=Category.ITSM,
        connection_model=ServiceNowConnection,
        credentials_model=ServiceNowCredentials,
        webhook_scheme="servicenow",
        implementation=ServiceNowConnector(),
        docs_url="https://www.servicenow.com/docs/",
        notes="Webhooks: an administrator installs PMAP's signing business rule on the incident table "
              "(scheme servicenow); PMAP cannot register it through the API.",
    ),
)
