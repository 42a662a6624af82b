"""Veracode REST APIs with ``VERACODE-HMAC-SHA-256`` request signing.

Veracode's published scheme: the signing key is derived from the hex API secret as
``HMAC(HMAC(HMAC(secret, nonce), timestamp_ms), "vcode_request_version_1")`` and signs
``id={api_id}&host={host}&url={path?query}&method={METHOD}``; the header is
``VERACODE-HMAC-SHA-256 id=..,ts=..,nonce=..,sig=..``. The signature is computed per attempt on
the request actually sent (a retry gets a fresh nonce and timestamp).

Findings are pulled per application: ``GET /appsec/v1/applications`` (HAL paging: ``page`` from 0 and ``size``,
``_embedded.applications``, ``page.total_pages``), then the application's policy findings from
``GET /appsec/v2/applications/{guid}/findings`` on the same paging: once with ``scan_type=SCA`` (Veracode
returns SCA findings only when asked for them alone) and once without (static, dynamic and manual findings),
one page in memory. CLOSED findings are fixed, approved mitigations mitigated or false positives. The Findings
API has no change-time filter (``mitigated_after`` covers mitigations only), so every pull is full, and
complete. Veracode answers too many requests with 429 and the seconds to wait (the guarded client waits).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Generator, Iterator
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator

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
from pmap.connectors.vendors._support import (
    check,
    dig,
    expiry,
    fail,
    json_of,
    parse_when,
    permission_report,
    text,
)
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.sast_sca.veracode import KEY_JSON as FINDINGS_FORMAT
from pmap.findings.formats.sast_sca.veracode import api_finding

SCHEME = "VERACODE-HMAC-SHA-256"
_REQUEST_VERSION = b"vcode_request_version_1"
# roles (Identity API role_name values and descriptions, normalized) that read findings / administer
_READ_ROLES = {"reviewer", "securitylead", "resultsapi", "extseclead", "extreviewer", "extresultsapi"}
_ADMIN_ROLES = {"administrator", "extadmin", "adminapi", "extadminapi"}
#: applications and findings per page (HAL ``size``)
PAGE_SIZE = 100
_AUTH_HINT = ("check the API ID and key, and that they have not expired (Veracode: API Credentials, generate new "
              "ones)")


def _norm(value: object) -> str:
    return "".join(str(value or "").lower().split())


class VeracodeCredentials(Credentials):
    """An API ID and its hex API secret key (Veracode calls them ``api_id`` and ``api_key``)."""

    api_id: SecretStr = Field(description="API ID")
    api_key: SecretStr = Field(description="API secret key (hex)")

    @field_validator("api_key")
    @classmethod
    def _hex(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw or len(raw) % 2 or any(ch not in string.hexdigits for ch in raw):
            raise ValueError("the API secret key is hexadecimal text")  # never echo the value
        return value


class VeracodeConnection(ConnectionSettings):
    base_url: str = Field(
        default="https://api.veracode.com",
        description="https://api.veracode.com (EU: https://api.veracode.eu, US Fed: https://api.veracode.us)")


def signature(api_id: str, secret_hex: str, host: str, url: str, method: str, ts: str, nonce_hex: str) -> str:
    """The hex request signature, as Veracode's documentation and client libraries compute it."""
    data = f"id={api_id}&host={host}&url={url}&method={method.upper()}".encode()
    k_nonce = hmac.new(bytes.fromhex(secret_hex), bytes.fromhex(nonce_hex), hashlib.sha256).digest()
    k_date = hmac.new(k_nonce, ts.encode(), hashlib.sha256).digest()
    k_sig = hmac.new(k_date, _REQUEST_VERSION, hashlib.sha256).digest()
    return hmac.new(k_sig, data, hashlib.sha256).hexdigest()


class VeracodeHmacAuth(httpx.Auth):
    """Signs each request as sent: host without port, raw path with its query, fresh nonce and time."""

    def __init__(self, api_id: str, secret_hex: str) -> None:
        self._id, self._secret = api_id, secret_hex

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        ts = str(int(time.time() * 1000))
        nonce = secrets.token_hex(16)
        url = request.url.raw_path.decode("ascii")
        sig = signature(self._id, self._secret, request.url.host, url, request.method, ts, nonce)
        request.headers["Authorization"] = f"{SCHEME} id={self._id},ts={ts},nonce={nonce},sig={sig}"
        yield request


def _auth(ctx: OperationContext) -> VeracodeHmacAuth:
    return VeracodeHmacAuth(ctx.secret("api_id"), ctx.secret("api_key"))


def _hal(ctx: OperationContext, c: OutboundClient, path: str, params: dict[str, Any], key: str, what: str,
         hint: str) -> Iterator[Any]:
    """The ``_embedded.<key>`` items of every page of ``path`` (``page`` from 0, ``size``), one page in memory."""
    page = 0
    while True:
        resp = check(ctx, c.get(path, auth=_auth(ctx), params={**params, "page": page, "size": PAGE_SIZE}), what,
                     auth_hint=_AUTH_HINT, permission_hint=hint)
        body = json_of(ctx, resp, what)
        del resp
        embedded = body.get("_embedded")
        # an empty HAL page carries no _embedded at all
        items = [] if embedded is None else embedded.get(key) if isinstance(embedded, dict) else None
        if not isinstance(items, list):
            raise fail(ctx, f"Veracode's answer to {what} has no _embedded.{key} list", step="response")
        yield from items
        page += 1
        total = dig(body, "page", "total_pages")
        if not items or (isinstance(total, int) and page >= total) or (total is None and len(items) < PAGE_SIZE):
            return


def _findings(ctx: OperationContext) -> Iterator[ParsedFinding]:
    with ctx.client() as c:
        for app in _hal(ctx, c, "/appsec/v1/applications", {}, "applications", "listing applications",
                        "the API user needs a role that sees applications (Results API, Reviewer or Security Lead)"):
            guid = text(app.get("guid")) if isinstance(app, dict) else None
            if not guid:
                raise fail(ctx, "an application of Veracode's answer has no guid", step="response")
            name = text(dig(app, "profile", "name")) or guid
            target = vendor_path("/appsec/v2/applications/{guid}/findings", guid=guid)
            for params in ({"scan_type": "SCA"}, {}):  # SCA findings come only when asked for alone
                for item in _hal(ctx, c, target, params, "findings", "reading an application's findings",
                                 "the API user needs the Results API role (or Reviewer or Security Lead)"):
                    try:
                        finding = api_finding(item, name)
                    except ReportError as exc:
                        raise fail(ctx, f"a finding could not be read: {exc.message}", step="response") from None
                    yield finding


class VeracodeConnector(Connector, ChecksPermissions, SyncsFindings):
    """Veracode: the API user, its roles and its API credential expiry; every application's findings."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """Every application's policy findings, SCA ones included, read as ``veracode_json``: CLOSED ones fixed;
        always a full, complete pull (the Findings API has no change-time filter, so ``pull.since`` is unused)."""
        return FindingsFeed(format=FINDINGS_FORMAT, findings=_findings(ctx), complete=True)

    def _self(self, ctx: OperationContext) -> dict[str, Any]:
        with ctx.client() as c:
            resp = check(ctx, c.get("/api/authn/v2/users/self", auth=_auth(ctx)), "GET /api/authn/v2/users/self",
                         auth_hint=_AUTH_HINT)
        return json_of(ctx, resp, "the API user")

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /api/authn/v2/users/self`` (signed); API credentials expiring soon are a warning."""
        me = self._self(ctx)
        expires = parse_when(dig(me, "api_credentials", "expiration_ts"))
        license_: dict[str, Any] | None = None
        warnings: list[str] = []
        if expires is not None:
            license_, warnings = expiry(expires, what="Veracode API credential", kind="api_credentials",
                                        advice="generate new API credentials and update this integration")
        org = text(dig(me, "organization", "org_name"))
        who = text(me.get("user_name")) or "the API user"
        return Probe(product="Veracode", license=license_, warnings=warnings,
                     message=f"authenticated as {who}" + (f" ({org})" if org else ""))

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """The user's roles: one that reads results is needed; administrator roles are excess."""
        listed = [r for r in self._self(ctx).get("roles") or [] if isinstance(r, dict)]
        granted, excess = False, []
        for role in listed:
            # role_name values (e.g. "extseclead") and descriptions ("Security Lead") both identify a role
            keys = {_norm(role.get("role_name")), _norm(role.get("role_description"))} - {""}
            granted = granted or bool(keys & _READ_ROLES)
            if keys & _ADMIN_ROLES:
                excess.append(text(role.get("role_description")) or text(role.get("role_name")) or "administrator")
        notes = [] if listed else ["the API user holds no roles"]
        return permission_report([("a results-reading role (Reviewer, Security Lead or Results API)",
                                   "reading findings", granted)], excess, notes)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="veracode", display_name="Veracode", category=Category.SAST,
        connection_model=VeracodeConnection, credentials_model=VeracodeCredentials,
        default_base_url="https://api.veracode.com", report_formats=("veracode_xml", "veracode_json"),
        implementation=VeracodeConnector(),
        docs_url="https://docs.veracode.com/r/c_enabling_hmac",
        notes="Requests are signed with VERACODE-HMAC-SHA-256; expired API credentials are refused (step auth), "
              "credentials expiring within 30 days are a warning.",
    ),
)
