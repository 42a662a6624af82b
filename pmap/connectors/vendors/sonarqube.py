"""SonarQube Server: token auth, version, commercial license, webhooks.

Tokens go as ``Authorization: Bearer`` from 10.0 and as the Basic user name with an empty password
before; the anonymous ``/api/system/status`` tells which. ``/api/authentication/validate`` proves the
token (SonarQube answers ``{"valid": false}`` rather than 401 for a bad one). The license API is
internal and needs Administer System: it is read only when the token may, never required.
SonarQube signs deliveries with ``X-Sonar-Webhook-HMAC-SHA256`` and has no test delivery.

A sync pages ``/api/issues/search`` (``p``/``ps``, at most 500 a page). The search serves only the first
10,000 results of a query (``p * ps`` beyond is a 400), so a full pull sorts by creation date and, at the
window's end, asks again from the last creation date seen (``createdAfter`` is inclusive; the issues of
that instant already read are skipped by key). ``createdAfter`` cannot tell what changed (closing an
issue changes its ``updateDate``, not its creation), and the public search has no ``updatedAfter``
(only the internal ``/api/issues/pull`` has a change filter); so an incremental pull sorts by
``UPDATE_DATE`` descending and stops at the first issue updated before ``since``.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

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
    Probe,
    RegistersWebhooks,
    SyncsFindings,
    WebhookRegistered,
    WebhookRegistration,
)
from pmap.connectors.vendors._support import check, expiry, fail, json_of, parse_when, permission_report, text
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.registry import report_formats

SECRET_MIN, SECRET_MAX = 16, 200
_BEARER_SINCE = 10
SYNC_FORMAT = "sonarqube_json"  # the issues of /api/issues/search pages, read as that format reads them
PAGE_SIZE = 500  # the search's largest page
WINDOW = 10_000  # the search's deepest result (p * ps)


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


def _sonar_time(value: Any) -> datetime | None:
    """A SonarQube date (``2024-01-02T03:04:05+0000``)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def _pages(ctx: OperationContext, s: _Session, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The search's pages of one query, within its 10,000-result window."""
    for p in range(1, WINDOW // PAGE_SIZE + 1):
        resp = check(ctx, s.get("/api/issues/search", params={**params, "p": p, "ps": PAGE_SIZE}),
                     "GET /api/issues/search", permission_hint="the token's user needs Browse on the project")
        page = json_of(ctx, resp, "issue search")
        yield page
        total = (page.get("paging") or {}).get("total", page.get("total"))
        if not isinstance(total, int) or p * PAGE_SIZE >= total or not page.get("issues"):
            return


def _all_issues(ctx: OperationContext, s: _Session, base: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every issue, oldest first: each time the window ends, the next query starts at the last creation date."""
    after: str | None = None
    seen_at_after: set[str] = set()  # keys of the issues created at ``after`` already read
    while True:
        params = {**base, "s": "CREATION_DATE", "asc": "true", **({"createdAfter": after} if after else {})}
        count, last, keys_at_last, moved = 0, after, set(seen_at_after), False
        for page in _pages(ctx, s, params):
            for issue in page.get("issues") or []:
                count += 1
                key, created = text(issue.get("key")), text(issue.get("creationDate"))
                if key in seen_at_after:
                    continue
                if created != last:
                    last, keys_at_last, moved = created, set(), True
                keys_at_last.add(key or "")
                yield {"page": page, "issue": issue}
        if count < WINDOW:
            return
        if not moved:  # 10,000 issues created at one instant: no creation-date query can get past them
            raise fail(ctx, "more than 10,000 SonarQube issues share one creation date; the issue search cannot "
                            "page past them", step="response")
        after, seen_at_after = last, keys_at_last


def _changed_issues(ctx: OperationContext, s: _Session, base: dict[str, Any],
                    since: datetime) -> Iterator[dict[str, Any]]:
    """The issues updated since ``since`` (to the second: a change in that second is read again), newest first."""
    floor = since.replace(microsecond=0)
    count = 0
    for page in _pages(ctx, s, {**base, "s": "UPDATE_DATE", "asc": "false"}):
        for issue in page.get("issues") or []:
            count += 1
            updated = _sonar_time(issue.get("updateDate"))
            if updated is not None and updated < floor:
                return
            yield {"page": page, "issue": issue}
    if count >= WINDOW:
        raise fail(ctx, "more than 10,000 SonarQube issues changed since the last sync, beyond what the issue "
                        "search serves: run a full sync", step="response")


def _synced(ctx: OperationContext, pull: FindingsPull, skipped: Counter[str]) -> Iterator[ParsedFinding]:
    """The issues as the sonarqube_json format reads an API page, one page at a time."""
    fmt = report_formats()[SYNC_FORMAT]
    base: dict[str, Any] = {"additionalFields": "rules"}
    if ctx.connection.project_key:
        base["componentKeys"] = ctx.connection.project_key  # accepted by every version (``components`` from 10.2)
    with ctx.client() as c:
        s = _Session(ctx, c)
        found = _changed_issues(ctx, s, base, pull.since) if pull.since else _all_issues(ctx, s, base)
        batch: list[Any] = []
        page: dict[str, Any] | None = None
        for item in found:
            if item["page"] is not page and batch:
                yield from _parsed(fmt, page or {}, batch, skipped)
                batch = []
            page = item["page"]
            batch.append(item["issue"])
        if batch:
            yield from _parsed(fmt, page or {}, batch, skipped)


def _parsed(fmt: Any, page: dict[str, Any], issues: list[Any], skipped: Counter[str]) -> Iterator[ParsedFinding]:
    doc = {"issues": issues, "rules": page.get("rules") or []}
    yield from fmt.parse(io.BytesIO(json.dumps(doc).encode()), skipped)


class SonarQubeConnector(Connector, ChecksPermissions, RegistersWebhooks, SyncsFindings):
    """SonarQube Server: test, least-privilege report, webhook installation and issue sync."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The issues (of the connection's project, else every project the token may browse), resolved ones
        too (closed or resolved as fixed become "fixed"); with ``pull.since``, those updated since."""
        skipped: Counter[str] = Counter()
        return FindingsFeed(format=SYNC_FORMAT, findings=_synced(ctx, pull, skipped), complete=pull.since is None,
                            skipped=skipped)

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
        report_formats=(SYNC_FORMAT, "sonarqube_html", "sarif"), webhook_scheme="sonarqube",
        implementation=SonarQubeConnector(),
        docs_url="https://docs.sonarsource.com/sonarqube-server/latest/extension-guide/web-api/",
        notes="Webhooks are signed (X-Sonar-Webhook-HMAC-SHA256) but SonarQube has no test delivery. The license "
              "is read only when the token holds Administer System.",
    ),
)
