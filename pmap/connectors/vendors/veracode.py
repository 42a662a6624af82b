"""Veracode REST APIs with ``VERACODE-HMAC-SHA-256`` request signing.

Veracode's published scheme: the signing key is derived from the hex API secret as
``HMAC(HMAC(HMAC(secret, nonce), timestamp_ms), "vcode_request_version_1")`` and signs
``id={api_id}&host={host}&url={path?query}&method={METHOD}``; the header is
``VERACODE-HMAC-SHA-256 id=..,ts=..,nonce=..,sig=..``. The signature is computed per attempt on
the request actually sent (a retry gets a fresh nonce and timestamp).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Generator
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
    OperationContext,
    PermissionReport,
    Probe,
)
from pmap.connectors.vendors._support import (
    check,
    dig,
    expiry,
    json_of,
    parse_when,
    permission_report,
    text,
)

SCHEME = "VERACODE-HMAC-SHA-256"
_REQUEST_VERSION = b"vcode_request_version_1"
# roles (Identity API role_name values and descriptions, normalized) that read findings / administer
_READ_ROLES = {"reviewer", "securitylead", "resultsapi", "extseclead", "extreviewer", "extresultsapi"}
_ADMIN_ROLES = {"administrator", "extadmin", "adminapi", "extadminapi"}


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


class VeracodeConnector(Connector, ChecksPermissions):
    """Veracode: the API user, its roles and its API credential expiry."""

    def _self(self, ctx: OperationContext) -> dict[str, Any]:
        with ctx.client() as c:
            resp = check(ctx, c.get("/api/authn/v2/users/self", auth=_auth(ctx)), "GET /api/authn/v2/users/self",
                         auth_hint="check the API ID and key, and that they have not expired (Veracode: API "
                                   "Credentials, generate new ones)")
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
