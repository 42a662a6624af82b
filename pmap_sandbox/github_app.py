"""GitHub Apps on the simulated GitHub: installation access tokens minted with an App's RS256 JWT.

``POST /app/installations/{installation_id}/access_tokens`` takes ``Authorization: Bearer <app JWT>``: the
JWT's ``iss`` names an App registered on this sandbox with its public key (a test registers one with
:func:`register_app`), its RS256 signature must verify, and ``exp`` must be in the future and at most 10
minutes after ``iat``, as GitHub demands; otherwise 401 "A JSON web token could not be decoded" (GitHub's
wording). It answers 201 with a ``ghs_`` token that expires in an hour. An installation token authenticates
the repository routes but not ``/user`` (403 "Resource not accessible by integration"), and lists its
repositories at ``GET /installation/repositories``. Each vendor key counts the tokens it minted (``mints``).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

# standalone (no sandbox imports): the work-tool and the scanner GitHub sandboxes both mount these routes


def json_response(status: int, body: Any) -> JSONResponse:
    """A JSON answer."""
    return JSONResponse(body, status_code=status)


def parse_scheme(value: str | None, *schemes: str) -> str | None:
    """The credential after one of ``schemes`` (case-insensitive)."""
    scheme, _, token = (value or "").strip().partition(" ")
    return token.strip() if scheme.lower() in {s.lower() for s in schemes} and token.strip() else None


_DOCS = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"


@dataclass
class GitHubApps:
    """Registered Apps (app id -> public key PEM), minted installation tokens (token -> expiry), mint count."""

    apps: dict[str, bytes] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    mints: int = 0


def _apps(app: FastAPI, key: str) -> GitHubApps:
    root = getattr(app.state, "sandbox_store", None)
    if root is None:
        root = {}
        app.state.sandbox_store = root
    slots = root.setdefault(key, {})
    found = slots.setdefault(GitHubApps.__qualname__, GitHubApps())
    if not isinstance(found, GitHubApps):
        raise TypeError("the sandbox store holds something else under GitHubApps")
    return found


def register_app(app: FastAPI, key: str, app_id: str, public_pem: bytes) -> None:
    """Register a GitHub App (its id and public key) on the sandbox app's ``key`` vendor."""
    _apps(app, key).apps[app_id] = public_pem


def mints(app: FastAPI, key: str) -> int:
    """How many installation tokens ``key`` minted on this sandbox app."""
    return _apps(app, key).mints


def installation_token(request: Request, key: str) -> bool:
    """Whether the request carries a live installation token of this vendor key."""
    token = parse_scheme(request.headers.get("authorization"), "bearer", "token")
    expiry = _apps(request.app, key).tokens.get(token or "")
    return expiry is not None and expiry > time.time()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _verified_claims(apps: GitHubApps, jwt: str) -> dict[str, Any] | None:
    try:
        header_b64, payload_b64, sig_b64 = jwt.split(".")
        header, claims = json.loads(_unb64(header_b64)), json.loads(_unb64(payload_b64))
        signature = _unb64(sig_b64)
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(claims, dict):
        return None
    public = apps.apps.get(str(claims.get("iss")))
    if public is None:
        return None
    key = serialization.load_pem_public_key(public)
    if not isinstance(key, rsa.RSAPublicKey):
        return None
    try:
        key.verify(signature, f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return None
    iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
    if not isinstance(iat, int) or not isinstance(exp, int) or exp <= now or exp - iat > 600 or iat > now + 60:
        return None
    return claims


def register(router: APIRouter, key: str) -> None:
    """Add the installation token and installation repositories routes."""

    @router.post("/app/installations/{installation_id}/access_tokens")
    async def access_tokens(request: Request, installation_id: str) -> Response:
        apps = _apps(request.app, key)
        jwt = parse_scheme(request.headers.get("authorization"), "bearer")
        if not jwt or _verified_claims(apps, jwt) is None:
            return json_response(401, {"message": "A JSON web token could not be decoded", "documentation_url": _DOCS,
                                       "status": "401"})
        if not installation_id.isdigit():
            return json_response(404, {"message": "Not Found", "documentation_url": _DOCS, "status": "404"})
        apps.mints += 1
        token = "ghs_" + secrets.token_urlsafe(27)
        expires = datetime.now(UTC) + timedelta(hours=1)
        apps.tokens[token] = expires.timestamp()
        return json_response(201, {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   "permissions": {"issues": "write", "metadata": "read", "actions": "read"},
                                   "repository_selection": "all"})
