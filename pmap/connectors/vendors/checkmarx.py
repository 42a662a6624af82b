"""Checkmarx One: an API key (an OIDC refresh token) or an OAuth client, exchanged for a Bearer token.

The exchange goes to the tenant's IAM realm (``<region>.iam.checkmarx.net``), the API calls to
``<region>.ast.checkmarx.net``. Keycloak answers a bad refresh token with 400 ``invalid_grant`` and a
bad client with 401: both are step ``auth``. An OAuth client's access token (client credentials grant)
is cached in memory until it expires (:mod:`pmap.connectors.vendors._oauth`); an API key is exchanged
per operation.

Findings are pulled per project: ``GET /api/projects`` (``offset``/``limit``), the project's latest completed
scan (``GET /api/scans?project-id=&statuses=Completed&sort=-created_at&limit=1``), then that scan's results
(``GET /api/results?scan-id=``, ``offset``/``limit``), one page in memory. The results of a scan are its
state, not changes since a time: every pull is full, and complete.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx
import orjson
from pydantic import ConfigDict, Field, SecretStr, model_validator

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
    SyncsFindings,
)
from pmap.connectors.vendors._oauth import (
    AUTHENTICATED_WITH_OAUTH,
    CACHE,
    OAUTH,
    OAUTH_FIELDS,
    TokenEndpoint,
    access_token,
    kinds_schema,
    one_kind,
    uses_oauth,
)
from pmap.connectors.vendors._support import check, fail, json_of, permission_report, text
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.sast_sca.checkmarx import KEY_JSON as FINDINGS_FORMAT
from pmap.findings.formats.sast_sca.checkmarx import api_result

_NEEDED = (("view-projects", "listing projects"), ("view-scans", "listing scans"),
           ("view-results", "reading scan results"))
_EXCESS = {"ast-admin", "manage-users", "iam-admin", "manage-clients", "manage-tenant"}
#: out-of-the-box composite roles that include the view roles; whether a token lists their parts too is
#: not documented, so a view role missing beside one of them is "unknown", not "missing"
_COMPOSITES = {"ast-admin", "ast-scanner"}


_KINDS = {"api_key": ("api_key",), OAUTH: OAUTH_FIELDS}
_TITLES = {"api_key": "API key", OAUTH: "OAuth 2.0 client credentials"}
_TOKEN_PATH = "/auth/realms/{tenant}/protocol/openid-connect/token"  # noqa: S105  (a URL path, no secret)
_AUTH_HINT = "check the API key (or client) and the tenant name"
#: projects and results per page (offset/limit paging)
PAGE_SIZE = 100


class CheckmarxCredentials(Credentials):
    """An API key, or an OAuth client (``client_id`` + ``client_secret``): exactly one of them."""

    model_config = ConfigDict(json_schema_extra=kinds_schema(_KINDS, _TITLES))
    credential_kinds: ClassVar[Mapping[str, tuple[str, ...]]] = _KINDS

    api_key: SecretStr | None = Field(default=None, description="API key (a refresh token for client ast-app)")
    client_id: str | None = Field(default=None, description="OAuth client id (instead of an API key)")
    client_secret: SecretStr | None = Field(default=None, description="OAuth client secret")

    @model_validator(mode="after")
    def _one_method(self) -> CheckmarxCredentials:
        one_kind(self, _KINDS)
        return self


class CheckmarxConnection(ConnectionSettings):
    base_url: str = Field(description="AST API base, e.g. https://eu.ast.checkmarx.net")
    path_settings = {"tenant": "segment"}

    tenant: str = Field(min_length=1, pattern=r"^[\w.-]+$", description="Tenant (IAM realm) name")


def iam_base(conn: CheckmarxConnection) -> str:
    """The IAM base URL: the AST host with ``.ast.`` swapped for ``.iam.``.

    Derived, never configured apart: a second URL setting would let an edit send the stored key to
    another host without re-entering it (only ``base_url`` changes ask for the secrets again).
    """
    url = httpx.URL(conn.base_url)
    if ".ast." in (url.host or ""):
        return str(url.copy_with(host=url.host.replace(".ast.", ".iam.", 1), path="/")).rstrip("/")
    return conn.base_url  # single-host deployments (and the sandbox) serve both


def claims_of(token: str) -> dict[str, Any]:
    """The (unverified) payload of a JWT, for diagnostics only; {} when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


class _Bearer:
    """A pull's access token, exchanged again when Checkmarx refuses it mid-pull (an access token lives
    minutes; a pull of many projects may outlive it): each request is retried once with a new token."""

    def __init__(self, ctx: OperationContext, connector: CheckmarxConnector) -> None:
        self.ctx, self.connector = ctx, connector
        self.token = connector._token(ctx)

    def get(self, c: OutboundClient, path: str, params: dict[str, Any]) -> OutboundResponse:
        """``GET path`` with the token; on 401, once more with a newly exchanged one."""
        resp = c.get(path, headers={"Authorization": f"Bearer {self.token}"}, params=params)
        if resp.status == 401:
            CACHE.forget((self.token,))  # an OAuth token the vendor refused is not handed out again
            self.token = self.connector._token(self.ctx)
            resp = c.get(path, headers={"Authorization": f"Bearer {self.token}"}, params=params)
        return resp


def _paged(ctx: OperationContext, c: OutboundClient, bearer: _Bearer, path: str, params: dict[str, Any],
           key: str, what: str, hint: str) -> Iterator[Any]:
    """The ``key`` items of every page of ``path`` (``offset``/``limit``), one page in memory."""
    offset = 0
    while True:
        resp = check(ctx, bearer.get(c, path, {**params, "offset": offset, "limit": PAGE_SIZE}), what,
                     auth_hint=_AUTH_HINT, permission_hint=hint)
        body = json_of(ctx, resp, what)
        del resp
        items = body.get(key)
        if items is None and body.get("totalCount") == 0:
            items = []  # Checkmarx may send null for an empty list
        if not isinstance(items, list):
            raise fail(ctx, f"Checkmarx One's answer to {what} has no {key} list", step="response")
        yield from items
        offset += len(items)
        total = body.get("filteredTotalCount", body.get("totalCount"))
        if len(items) < PAGE_SIZE or (isinstance(total, int) and offset >= total):
            return


class CheckmarxConnector(Connector, ChecksPermissions, SyncsFindings):
    """Checkmarx One: token exchange, engine versions, roles from the access token, scan results."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The results of each project's latest completed scan (SAST, KICS, SCA), read as ``checkmarx_json``:
        FIXED results are fixed, NOT_EXPLOITABLE ones false positives; always a full, complete pull."""
        return FindingsFeed(format=FINDINGS_FORMAT, findings=self._results(ctx), complete=True)

    def _results(self, ctx: OperationContext) -> Iterator[ParsedFinding]:
        bearer = _Bearer(ctx, self)
        with ctx.client() as c:
            for project in _paged(ctx, c, bearer, "/api/projects", {}, "projects", "listing projects",
                                  "the account needs the view-projects role"):
                pid = text(project.get("id")) if isinstance(project, dict) else None
                if not pid:
                    raise fail(ctx, "a project of Checkmarx One's answer has no id", step="response")
                latest = {"project-id": pid, "statuses": "Completed", "sort": "-created_at", "offset": 0, "limit": 1}
                resp = check(ctx, bearer.get(c, "/api/scans", latest),
                             "listing the project's scans", auth_hint=_AUTH_HINT,
                             permission_hint="the account needs the view-scans role")
                scans = json_of(ctx, resp, "the project's scans").get("scans") or []
                scan = text(scans[0].get("id")) if scans and isinstance(scans[0], dict) else None
                if not scan:
                    continue  # never scanned to completion: nothing to report yet
                name = text(project.get("name")) or pid
                for result in _paged(ctx, c, bearer, "/api/results", {"scan-id": scan}, "results",
                                     "reading scan results", "the account needs the view-results role"):
                    try:
                        finding = api_result(result, name)
                    except ReportError as exc:
                        raise fail(ctx, f"a result could not be read: {exc.message}", step="response") from None
                    yield finding

    def _token(self, ctx: OperationContext) -> str:
        conn: CheckmarxConnection = ctx.connection
        path = vendor_path(_TOKEN_PATH, tenant=conn.tenant)
        if uses_oauth(ctx):
            return access_token(ctx, TokenEndpoint(iam_base(conn), path, "Checkmarx One", _AUTH_HINT))
        form = {"grant_type": "refresh_token", "client_id": "ast-app", "refresh_token": ctx.secret("api_key")}
        with ctx.client(iam_base(conn)) as c:
            # a token exchange changes nothing on the vendor: safe to retry when rate-limited
            resp = check(ctx, c.post(path, data=form, retry_unsafe=True), "the token exchange", auth=(400, 401),
                         auth_hint=_AUTH_HINT)
        token = text(json_of(ctx, resp, "token exchange").get("access_token"))
        if not token:
            raise fail(ctx, "the token exchange answered without an access_token", step="response")
        ctx.secrets = (*ctx.secrets, token)  # masked in every message of the operation
        return token

    def test_connection(self, ctx: OperationContext) -> Probe:
        """Exchange the key for a token, then ``GET /api/versions``."""
        token = self._token(ctx)
        with ctx.client() as c:
            resp = check(ctx, c.get("/api/versions", headers={"Authorization": f"Bearer {token}"}),
                         "GET /api/versions")
        versions = json_of(ctx, resp, "versions")
        engines = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "CxOne" and isinstance(v, str))
        return Probe(product="Checkmarx One", version=text(versions.get("CxOne")),
                     message=f"{AUTHENTICATED_WITH_OAUTH if uses_oauth(ctx) else 'authenticated with an API key'} "
                             f"to tenant {ctx.connection.tenant}"
                             + (f" (engines: {engines})" if engines else ""))

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """The AST roles the access token carries: view roles needed, administration roles excess."""
        claims = claims_of(self._token(ctx))
        roles = claims.get("roles_ast", claims.get("roles"))
        if not isinstance(roles, list):
            return permission_report([(name, why, None) for name, why in _NEEDED],
                                     warnings=["the access token lists no roles; PMAP could not tell what it may do"])
        checks, warnings = role_checks({str(r) for r in roles})
        return permission_report(checks, {str(r) for r in roles} & _EXCESS, warnings)


def role_checks(held: set[str]) -> tuple[list[tuple[str, str, bool | None]], list[str]]:
    """Each needed view role: held, missing, or unknown when only a composite role that includes it is."""
    composites = sorted(held & _COMPOSITES)
    checks: list[tuple[str, str, bool | None]] = [
        (name, why, True if name in held else None if composites else False) for name, why in _NEEDED]
    warnings = []
    if composites and any(granted is None for _n, _w, granted in checks):
        warnings.append(f"the token names the composite role(s) {', '.join(composites)} but not each view role "
                        "they include: PMAP cannot tell them apart from the token")
    return checks, warnings


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="checkmarx_one", display_name="Checkmarx One", category=Category.SAST,
        connection_model=CheckmarxConnection, credentials_model=CheckmarxCredentials,
        report_formats=("checkmarx_xml", "checkmarx_json", "sarif"),
        implementation=CheckmarxConnector(),
        docs_url="https://checkmarx.com/resource/documents/en/34965-68618-generating-an-api-key.html",
        notes="The tenant is a connection setting; the IAM host is derived from the AST host (.ast. -> .iam.).",
    ),
)
