"""GitHub App credentials: an app id, an installation id and the App's private key, instead of a token.

PMAP signs a short RS256 app JWT (``iss`` = app id, ``iat`` 60 s back for clock drift, ``exp`` 9 minutes on,
GitHub's limit being 10) with ``cryptography``, and mints an installation access token with
``POST /app/installations/{installation_id}/access_tokens`` once per operation. The token is kept on the
operation's credentials object (gone with the operation), added to the operation's secrets and registered
with the redactor until it expires; it is never stored, logged or returned. An installation token cannot
read ``/user``: the connection test reads ``/installation/repositories`` instead.

A credential value is one line, so the private key is given base64-encoded (``base64 -w0 app.pem``) or as
the PEM with its line breaks turned into spaces; PMAP rebuilds the PEM in memory only to sign.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from pmap.connectors.base import Credentials, OperationContext, Probe
from pmap.connectors.vendors._oauth import TokenCache, kind_of, kinds_schema, one_kind, remember
from pmap.connectors.vendors._support import check, fail, json_of, parse_when, text
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path

APP = "github_app"
KINDS: Mapping[str, tuple[str, ...]] = {"token": ("token",), APP: ("app_id", "installation_id", "private_key")}
_TITLES = {"token": "Personal access token or installation token", APP: "GitHub App (app id, installation, key)"}
AUTHENTICATED_AS_APP = "authenticated as a GitHub App installation"
JWT_LIFETIME = 540
_API_VERSION = "2022-11-28"
#: minted installation tokens stay registered with the redactor until they expire (each under its own key)
_MINTED = TokenCache()


class GitHubTokenOrApp(Credentials):
    """A personal access token (classic or fine-grained) or an installation token; or a GitHub App."""

    model_config = ConfigDict(json_schema_extra=kinds_schema(KINDS, _TITLES))
    credential_kinds: ClassVar[Mapping[str, tuple[str, ...]]] = KINDS

    token: SecretStr | None = Field(default=None, description="GitHub token")
    app_id: str | None = Field(default=None, pattern=r"^\d{1,20}$", description="GitHub App id (instead of a token)")
    installation_id: str | None = Field(default=None, pattern=r"^\d{1,20}$",
                                        description="The App's installation id on the account or organization")
    private_key: SecretStr | None = Field(
        default=None, description="The App's private key: the PEM file base64-encoded on one line (base64 -w0 "
                                  "app.private-key.pem), or the PEM with its line breaks as spaces")
    _minted: str | None = PrivateAttr(default=None)  # the operation's installation token, in memory only

    @model_validator(mode="after")
    def _one_kind(self) -> GitHubTokenOrApp:
        one_kind(self, KINDS)
        return self


def uses_app(ctx: OperationContext) -> bool:
    """Whether the operation authenticates as a GitHub App."""
    return kind_of(ctx.credentials) == APP


def _pem(value: str) -> bytes:
    """The PEM of a one-line private key value (base64 of the file, or the PEM with spaces for line breaks)."""
    value = value.strip()
    if value.startswith("-----BEGIN"):
        head, _, rest = value[5:].partition("-----")
        body, _, tail = rest.partition("-----END")
        return f"-----{head}-----\n{chr(10).join(body.split())}\n-----END{tail}\n".encode()
    return base64.b64decode(value, validate=True)


def private_key(ctx: OperationContext) -> rsa.RSAPrivateKey:
    """The App's RSA private key; an unreadable key is step ``auth`` (its value is never shown)."""
    try:
        key = serialization.load_pem_private_key(_pem(ctx.secret("private_key")), password=None)
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm):
        raise fail(ctx, "the GitHub App private key could not be read: give the .pem file GitHub generated, "
                        "base64-encoded on one line (base64 -w0 app.private-key.pem)", step="auth") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise fail(ctx, "the GitHub App private key is not an RSA key", step="auth")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def app_jwt(app_id: str, key: rsa.RSAPrivateKey, now: float | None = None) -> str:
    """The RS256 JWT GitHub takes as the App's identity (valid 9 minutes, issued 60 s back)."""
    issued = int(time.time() if now is None else now) - 60
    header = _b64url(orjson.dumps({"alg": "RS256", "typ": "JWT"}))
    payload = _b64url(orjson.dumps({"iat": issued, "exp": issued + 60 + JWT_LIFETIME, "iss": app_id}))
    signature = key.sign(f"{header}.{payload}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64url(signature)}"


def installation_token(ctx: OperationContext) -> str:
    """The operation's installation access token (minted on first use, then reused by the operation)."""
    creds: GitHubTokenOrApp = ctx.credentials
    if creds._minted:
        return creds._minted
    jwt = app_jwt(str(creds.app_id), private_key(ctx))
    remember(ctx, jwt)
    path = vendor_path("/app/installations/{installation_id}/access_tokens", installation_id=creds.installation_id)
    headers = {"Authorization": f"Bearer {jwt}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": _API_VERSION}
    with ctx.client() as c:
        # minting changes nothing a retry could duplicate harmfully (another short-lived token at most)
        resp = check(ctx, c.post(path, headers=headers, retry_unsafe=True), "minting a GitHub App installation token",
                     ok=(201, 200), auth=(401,), permission=(403, 404),
                     auth_hint="check the App id and private key (GitHub refused the App's JWT)",
                     permission_hint="check the installation id: the App must be installed on the account")
    body = json_of(ctx, resp, "the installation token")
    token = text(body.get("token"))
    if not token:
        raise fail(ctx, "GitHub answered without an installation token", step="response")
    remember(ctx, token)
    expires = parse_when(body.get("expires_at"))
    seconds = (expires.timestamp() - time.time()) if expires else 3600.0
    _MINTED.put(secrets.token_hex(8), token, seconds)  # masked in every log line while it is valid
    creds._minted = token
    return token


def bearer(ctx: OperationContext) -> str:
    """The Bearer credential of the operation: the stored token, or the App's installation token."""
    return installation_token(ctx) if uses_app(ctx) else ctx.secret("token")


def app_probe(ctx: OperationContext, c: OutboundClient, headers: Mapping[str, str]) -> Probe:
    """``GET /installation/repositories``: what the installation sees (an installation cannot read ``/user``)."""
    resp = check(ctx, c.get("/installation/repositories", headers=dict(headers), params={"per_page": 1}),
                 "GET /installation/repositories", auth_hint="the installation token was refused")
    body: Any = json_of(ctx, resp, "the installation's repositories")
    count = body.get("total_count")
    seen = f" ({count} repositor{'y' if count == 1 else 'ies'})" if isinstance(count, int) else ""
    return Probe(product="GitHub", message=f"{AUTHENTICATED_AS_APP}{seen}")
