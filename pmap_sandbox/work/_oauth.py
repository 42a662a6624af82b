"""OAuth 2.0 client credentials for the simulated work trackers: a token endpoint and Bearer callers.

``POST <token path>`` (form ``grant_type=client_credentials``, ``client_id``, ``client_secret``) issues
a random access token with ``expires_in``; the scenario markers of the client secret decide the answer
(``bad`` refuses it in the vendor's error shape) and travel with the token, so a token minted for a
``noperm`` client reads as that client. Each vendor counts its token requests (``token_requests``), so
a test can prove PMAP caches tokens.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import Response

from pmap_sandbox.work._base import Caller, Dialect, Reply, admit, json_response, parse_scheme, state

#: (status, OAuth error code, description) -> the vendor's token error response
TokenError = Callable[[int, str, str], Response]


@dataclass
class OAuthTokens:
    """The tokens one vendor issued, and how many token requests it answered."""

    tokens: dict[str, tuple[Caller, float]] = field(default_factory=dict)
    requests: int = 0


class _TokenDialect(Dialect):
    def __init__(self, error: TokenError) -> None:
        self.error = error

    def missing(self, request: Request) -> Response:
        return self.error(401, "invalid_client", "client authentication failed")

    def bad(self, request: Request) -> Response:
        return self.error(401, "access_denied", "client authentication failed")

    def echo(self, request: Request, echoed: str) -> Response:
        return self.error(401, "access_denied", f"client authentication failed for {echoed}")

    def down(self, request: Request) -> Response:
        return self.error(503, "temporarily_unavailable", "service unavailable")

    def ratelimited(self, request: Request) -> Response:
        return self.error(429, "too_many_requests", "rate limit exceeded")


async def issue(request: Request, vendor_key: str, error: TokenError, principal: Callable[[str], str],
                ttl: int) -> Response:
    """Answer one client-credentials token request (``principal`` names the user the client acts as)."""
    store = state(request, vendor_key, OAuthTokens)
    store.requests += 1
    form = await request.form()
    if str(form.get("grant_type") or "") != "client_credentials":
        return error(400, "unsupported_grant_type", "only client_credentials is supported")
    client_id, client_secret = str(form.get("client_id") or ""), str(form.get("client_secret") or "")
    if not client_id:
        return error(401, "invalid_client", "client authentication failed")
    caller = await admit(vendor_key + ":oauth", _TokenDialect(error), request, client_id, client_secret)
    token = secrets.token_urlsafe(32)
    store.tokens[token] = (Caller(principal(client_id), client_secret, caller.marks), time.time() + ttl)
    return json_response(200, {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": ""})


def bearer_caller(request: Request, vendor_key: str, refused: Callable[[Request], Response]) -> Caller | None:
    """The caller of a ``Bearer`` token this vendor issued (None without one; ``refused`` when unknown
    or expired)."""
    token = parse_scheme(request.headers.get("authorization"), "Bearer")
    if token is None:
        return None
    found = state(request, vendor_key, OAuthTokens).tokens.get(token)
    if found is None or found[1] < time.time():
        raise Reply(refused(request))
    return found[0]


def token_requests(app: FastAPI, vendor_key: str) -> int:
    """How many token requests ``vendor_key`` answered on this sandbox app."""
    slots = getattr(app.state, "sandbox_store", {}).get(vendor_key, {})
    store = slots.get(OAuthTokens.__qualname__)
    return store.requests if isinstance(store, OAuthTokens) else 0
