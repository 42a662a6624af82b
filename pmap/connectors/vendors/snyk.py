"""Snyk: the REST API (``/rest``, ``?version=`` on every call) and the v1 webhooks API.

``Authorization: token <key>`` (service account or personal token). Webhooks are v1-only, signed
``X-Hub-Signature: sha256=<hex>``; Snyk requires a secret, pings a new hook at once and can ping
again on request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    FindingsFeed,
    FindingsPull,
    OperationContext,
    PermissionReport,
    PingsWebhooks,
    Probe,
    RegistersWebhooks,
    SyncsFindings,
    WebhookRegistered,
    WebhookRegistration,
)
from pmap.connectors.vendors._pull import under_base, utc_text
from pmap.connectors.vendors._support import check, dig, fail, json_of, parse_when, permission_report, text
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.convert import uniq
from pmap.findings.formats.identifiers import sca_title, vuln_ids

REST_VERSION = "2024-06-10"
#: issues per page: Snyk's REST pagination takes 10 to 100
PAGE_LIMIT = 100
#: the report format whose severity scale (critical, high, medium, low) and identity (the issue key as
#: rule id, the package) the pulled issues follow
FORMAT = "snyk_json"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class SnykToken(Credentials):
    """A Snyk API token (service account or personal)."""

    token: SecretStr = Field(description="API token")


class SnykConnection(ConnectionSettings):
    base_url: str = Field(
        default="https://api.snyk.io/rest",
        description="REST API base: https://api.snyk.io/rest (regional: https://api.eu.snyk.io/rest, ...)")
    org_id: str | None = Field(default=None, pattern=_UUID.pattern,
                               description="Organization id (default: the token's default organization)")


def v1_base(rest_base: str) -> str:
    """The v1 API base on the same host: ``.../rest`` -> ``.../v1``."""
    url = httpx.URL(rest_base)
    path = url.path.rstrip("/")
    path = path.removesuffix("/rest")
    return str(url.copy_with(path=f"{path}/v1"))


def _headers(ctx: OperationContext) -> dict[str, str]:
    return {"Authorization": f"token {ctx.secret('token')}"}


def _dependency(attrs: dict[str, Any]) -> tuple[str | None, str | None]:
    """The package and version of an issue's first dependency coordinate."""
    for coordinate in attrs.get("coordinates") or []:
        for rep in dig(coordinate, "representations") or []:
            dep = dig(rep, "dependency")
            if isinstance(dep, dict) and text(dep.get("package_name")):
                return text(dep.get("package_name")), text(dep.get("package_version"))
    return None, None


def issue_finding(ctx: OperationContext, item: Any) -> ParsedFinding:
    """One REST issue as a finding of the ``snyk_json`` format (resolved: ``fixed``; ignored: ``ignored``)."""
    attrs = dig(item, "attributes")
    key = text(dig(attrs, "key")) or text(dig(item, "id"))
    if not isinstance(attrs, dict) or not key:
        raise fail(ctx, "an issue of Snyk's answer has no attributes or key", step="response")
    cves, others = vuln_ids([text(dig(p, "id")) for p in attrs.get("problems") or []])
    package, version = _dependency(attrs)
    title = text(attrs.get("title"))
    status = text(attrs.get("status"))
    project = text(dig(item, "relationships", "scan_item", "data", "id"))
    return ParsedFinding(
        title=f"{sca_title(key, package, version)}: {title}" if title else sca_title(key, package, version),
        vendor_severity=text(attrs.get("effective_severity_level")),
        cve_ids=cves,
        other_ids=uniq([key, *others]),
        rule_id=key,
        # the REST issue names its project by id (the JSON report by name): the id is what stays stable
        repository=project,
        package_name=package,
        package_version=version,
        first_seen=parse_when(attrs.get("created_at")),
        # Snyk's "resolved" is fixed; an ignore is Snyk's suppression, which PMAP reads as "ignored"
        status="fixed" if status == "resolved" else "ignored" if attrs.get("ignored") is True else None,
        extra={k: v for k, v in (("issue_id", text(dig(item, "id"))), ("type", text(attrs.get("type"))),
                                 ("updated_at", text(attrs.get("updated_at")))) if v},
    )


class SnykConnector(Connector, ChecksPermissions, SyncsFindings, RegistersWebhooks, PingsWebhooks):
    """Snyk: the token's user, organization rights, the organization's issues, and v1 webhooks."""

    def _self(self, ctx: OperationContext) -> dict[str, Any]:
        with ctx.client() as c:
            resp = check(ctx, c.get("/self", headers=_headers(ctx), params={"version": REST_VERSION}),
                         "GET /self", auth_hint="check the token (and the regional API URL of your Snyk account)")
        return json_of(ctx, resp, "the token's user")

    def _org(self, ctx: OperationContext, me: dict[str, Any] | None = None) -> str:
        org = ctx.connection.org_id or text(dig(me if me is not None else self._self(ctx), "data", "attributes",
                                                 "default_org_context"))
        if not org or not _UUID.match(org):
            problem = FieldProblem("connection.org_id", "is required: the token has no default organization")
            raise ValidationFailed("set the Snyk organization id in the connection settings", fields=[problem])
        return org

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /self?version=...``: the token's user and default organization."""
        me = self._self(ctx)
        attrs = dig(me, "data", "attributes") or {}
        who = text(attrs.get("username")) or text(attrs.get("name")) or "the token user"
        return Probe(product="Snyk", message=f"authenticated as {who}")

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """An issue read (REST) and the webhook list (v1) of the organization."""
        org = self._org(ctx)
        with ctx.client() as c:
            issues = c.get(vendor_path("/orgs/{org_id}/issues", org_id=org), headers=_headers(ctx),
                           params={"version": REST_VERSION, "limit": 10})
        with ctx.client(v1_base(ctx.connection.base_url)) as c:
            hooks = c.get(vendor_path("/org/{org_id}/webhooks", org_id=org), headers=_headers(ctx))
        for resp, what in ((issues, "reading issues"), (hooks, "listing webhooks")):
            if resp.status != 403:
                check(ctx, resp, what)
        # Snyk's v1 reference: listing needs View Outbound Webhooks, creating also Create Outbound Webhooks; a list
        # that answers proves only the first, and nothing short of creating a hook tells the second
        listed = hooks.status != 403
        notes = [] if not listed else ["Snyk does not say whether the token may create webhooks (Create Outbound "
                                       "Webhooks) without creating one; registering the webhook will tell"]
        return permission_report([
            ("View Organization issues", "reading issues", issues.status != 403),
            ("View Outbound Webhooks", "listing webhooks", listed),
            ("Create Outbound Webhooks", "installing the webhook", None if listed else False),
        ], warnings=notes)

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The organization's issues, ``GET /orgs/{org}/issues`` page by page (``links.next``), only those
        updated after ``pull.since`` when given."""
        return FindingsFeed(format=FORMAT, findings=self._issues(ctx, pull), complete=pull.since is None)

    def _issues(self, ctx: OperationContext, pull: FindingsPull) -> Iterator[ParsedFinding]:
        org = self._org(ctx)
        first: dict[str, Any] = {"version": REST_VERSION, "limit": PAGE_LIMIT}
        if pull.since is not None:
            first["updated_after"] = utc_text(pull.since)
        params: dict[str, Any] | None = first
        target = vendor_path("/orgs/{org_id}/issues", org_id=org)
        with ctx.client() as c:
            while True:
                resp = check(ctx, c.get(target, headers=_headers(ctx), params=params), "listing issues",
                             auth_hint="check the token (and the regional API URL of your Snyk account)",
                             permission_hint="the token needs View Organization issues on the organization")
                page = json_of(ctx, resp, "the issues page")
                data = page.get("data")
                if not isinstance(data, list):
                    raise fail(ctx, "Snyk's issues page has no data list", step="response")
                for item in data:
                    yield issue_finding(ctx, item)
                link = text(dig(page, "links", "next"))
                if not link:
                    return
                # the link carries the version, limit, filters and cursor: nothing is added to it
                target, params = under_base(ctx.connection.base_url, link), None

    def register_webhook(self, ctx: OperationContext, hook: WebhookRegistration) -> WebhookRegistered:
        """``POST /v1/org/{org}/webhooks`` with the secret (Snyk requires one). Snyk cannot update a
        webhook: the one PMAP registered before is deleted first."""
        if hook.secret is None:
            raise ValidationFailed("Snyk webhooks require a secret", fields=[FieldProblem("secret", "is required")])
        org = self._org(ctx)
        with ctx.client(v1_base(ctx.connection.base_url)) as c:
            if hook.previous_hook_id:
                check(ctx, c.request("DELETE", vendor_path("/org/{org_id}/webhooks/{hook_id}", org_id=org,
                                                                hook_id=hook.previous_hook_id),
                                     headers=_headers(ctx)),
                      "removing PMAP's previous webhook", ok=(200, 204, 404),
                      permission_hint="the token needs the Delete Outbound Webhooks permission on the organization")
            resp = check(ctx, c.post(vendor_path("/org/{org_id}/webhooks", org_id=org), headers=_headers(ctx),
                                     json={"url": hook.url, "secret": hook.secret.get_secret_value()}),
                         "creating the webhook", ok=(200, 201),
                         permission_hint="the token needs the View and Create Outbound Webhooks permissions on the "
                                         "organization")
        hook_id = text(json_of(ctx, resp, "webhook").get("id"))
        if not hook_id:
            raise fail(ctx, "Snyk created the webhook but returned no id", step="response")
        return WebhookRegistered(hook_id=hook_id, url=hook.url, signed=True, ping_supported=True)

    def ping_webhook(self, ctx: OperationContext, hook_id: str) -> None:
        """``POST /v1/org/{org}/webhooks/{id}/ping``: Snyk sends a signed ``ping`` delivery."""
        if not _UUID.match(str(hook_id)):
            raise ValidationFailed("a Snyk webhook id is a UUID", fields=[FieldProblem("hook_id", "must be a UUID")])
        org = self._org(ctx)
        with ctx.client(v1_base(ctx.connection.base_url)) as c:
            check(ctx, c.post(vendor_path("/org/{org_id}/webhooks/{hook_id}/ping", org_id=org, hook_id=hook_id),
                               headers=_headers(ctx)), "pinging the webhook",
                  ok=(200, 204))


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="snyk", display_name="Snyk", category=Category.SCA,
        connection_model=SnykConnection, credentials_model=SnykToken,
        default_base_url="https://api.snyk.io/rest", report_formats=("snyk_json", "sarif"),
        webhook_scheme="snyk", implementation=SnykConnector(),
        docs_url="https://docs.snyk.io/snyk-api/rest-api/authentication-for-api/authenticating",
        notes="The API needs an Enterprise plan. Webhooks use the v1 API on the same host and require https "
              "receiving URLs on Snyk's side.",
    ),
)
