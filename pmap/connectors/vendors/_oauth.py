"""OAuth 2.0 client credentials: credential kinds, the token request, and the in-memory token cache.

A vendor type whose credentials model offers OAuth client credentials beside its older kind lists its
kinds in ``credential_kinds`` and validates with :func:`one_kind` (exactly one complete kind, a 422
naming the fields otherwise); :func:`kinds_schema` makes its JSON Schema say the same.

:func:`access_token` asks the vendor's token endpoint (through the operation's guarded client) for an
access token, or reuses the one cached for the same target, client id and client secret. The cache
lives in process memory only, is keyed by the token URL, the client id and a keyed hash of the secret
(never the secret), holds a token until its ``expires_in`` minus a margin, is bounded and thread-safe.
A cached token is registered with the redactor while it is cached (and lingers masked after), and is
added to the operation's secrets: it is never stored, logged or returned.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr

from pmap.connectors.base import OperationContext
from pmap.connectors.vendors._support import check, fail, json_of, on_auth_refused, text
from pmap.core import clock, redaction

OAUTH = "oauth_client_credentials"
OAUTH_FIELDS = ("client_id", "client_secret")
#: what a connection test's message says when OAuth authenticated
AUTHENTICATED_WITH_OAUTH = "authenticated with OAuth 2.0 client credentials"
#: seconds before the vendor's expiry at which a cached token is no longer used
EXPIRY_MARGIN = 60.0
#: lifetime assumed when the vendor's answer has no usable ``expires_in``
DEFAULT_LIFETIME = 300.0
MAX_ENTRIES = 512
_PEPPER = secrets.token_bytes(32)  # per process: the cache key's secret hash cannot be tested offline


# --- credential kinds ----------------------------------------------------------------------------------

def _given(model: BaseModel, name: str) -> bool:
    value = getattr(model, name, None)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value not in (None, "")


def _label(fields: tuple[str, ...]) -> str:
    return " and ".join(fields)


def one_kind(model: BaseModel, kinds: Mapping[str, tuple[str, ...]]) -> str:
    """The one complete credential kind ``model`` holds; ``ValueError`` naming the fields otherwise."""
    complete, partial = [], []
    for name, fields in kinds.items():
        given = [f for f in fields if _given(model, f)]
        if len(given) == len(fields):
            complete.append(name)
        elif given:
            missing = [f for f in fields if f not in given]
            partial.append(f"{_label(tuple(given))} given without {_label(tuple(missing))}")
    choices = " or ".join(f"({_label(f)})" for f in kinds.values())
    if partial:
        raise ValueError(f"incomplete credentials: {'; '.join(partial)}; give exactly one of {choices}")
    if len(complete) > 1:
        raise ValueError(f"give exactly one kind of credentials, not several: {choices}")
    if not complete:
        raise ValueError(f"give exactly one kind of credentials: {choices}")
    return complete[0]


def kind_of(credentials: Any) -> str | None:
    """The credential kind an operation's credentials hold (None for a model without kinds)."""
    kinds: Mapping[str, tuple[str, ...]] | None = getattr(type(credentials), "credential_kinds", None)
    if not kinds:
        return None
    for name, fields in kinds.items():
        if all(_given(credentials, f) for f in fields):
            return name
    return None


def uses_oauth(ctx: OperationContext) -> bool:
    """Whether the operation authenticates with OAuth 2.0 client credentials."""
    return kind_of(ctx.credentials) == OAUTH


def kinds_schema(kinds: Mapping[str, tuple[str, ...]], titles: Mapping[str, str]) -> dict[str, Any]:
    """JSON Schema keywords saying exactly one kind is given, whole, and nothing of another."""
    branches = []
    for name, fields in kinds.items():
        others = [f for other, fs in kinds.items() if other != name for f in fs]
        # a field given as null counts as absent (the API drops nulls), so presence means a string value
        branches.append({"title": titles.get(name, name), "required": list(fields),
                         "properties": {f: {"type": "string"} for f in fields},
                         "not": {"anyOf": [{"required": [f], "properties": {f: {"type": "string"}}}
                                           for f in others]}})
    return {"oneOf": branches, "x-credential-kinds": {k: list(v) for k, v in kinds.items()}}


# --- the token cache -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Entry:
    token: str
    expires: float  # clock.monotonic() after which the token is not used
    handle: int  # its redaction registration


def cache_key(token_url: str, client_id: str, client_secret: str) -> str:
    """The cache key of a client at a token endpoint: never the secret, a keyed hash of it."""
    digest = hmac.new(_PEPPER, client_secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"{token_url}\n{client_id}\n{digest}"


def lifetime(expires_in: Any) -> float:
    """Seconds to keep a token the vendor said lives ``expires_in`` seconds (minus the margin)."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        seconds = DEFAULT_LIFETIME
    if seconds != seconds or seconds <= 0:  # NaN, zero or negative: do not cache
        return 0.0
    return seconds - EXPIRY_MARGIN if seconds > 2 * EXPIRY_MARGIN else seconds / 2


class TokenCache:
    """Access tokens in process memory, until they expire; bounded (oldest out first) and thread-safe."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, key: str) -> str | None:
        """The live token under ``key``, or None (an expired one is dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if clock.monotonic() >= entry.expires:
                self._drop(key)
                return None
            return entry.token

    def put(self, key: str, token: str, seconds: float) -> None:
        """Keep ``token`` for ``seconds`` (nothing kept when ``seconds`` is not positive)."""
        if seconds <= 0:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = _Entry(token, clock.monotonic() + seconds, redaction.register([token]))
            while len(self._entries) > self._max:
                self._drop(next(iter(self._entries)))

    def forget(self, tokens: Iterable[str]) -> int:
        """Drop the entries holding any of ``tokens`` (a token the vendor refused); how many were dropped."""
        refused = set(tokens)
        with self._lock:
            keys = [key for key, entry in self._entries.items() if entry.token in refused]
            for key in keys:
                self._drop(key)
        return len(keys)

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            for key in list(self._entries):
                self._drop(key)

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        redaction.unregister(entry.handle)  # it stays masked a while (redaction.LINGER_SECONDS)


CACHE = TokenCache()
on_auth_refused(CACHE.forget)  # a token the vendor refused is dropped at once


class _KeyLock:
    """One client's fetch lock: concurrent operations of one client wait for one token request."""

    __slots__ = ("lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()


_fetch_guard = threading.Lock()
_fetching: weakref.WeakValueDictionary[str, _KeyLock] = weakref.WeakValueDictionary()  # gone when unused


def _key_lock(key: str) -> _KeyLock:
    with _fetch_guard:
        found = _fetching.get(key)
        if found is None:
            found = _KeyLock()
            _fetching[key] = found
        return found


# --- the token request ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TokenEndpoint:
    """Where and how a vendor issues client-credentials tokens."""

    base_url: str  # the token host (the integration's own host, or the vendor's fixed IAM host)
    path: str
    vendor: str  # for messages: "ServiceNow"
    hint: str  # what to check when the endpoint refuses the client
    auth_statuses: tuple[int, ...] = (400, 401, 403)
    extra_form: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        """The token endpoint's URL (part of the cache key)."""
        return self.base_url.rstrip("/") + self.path


def remember(ctx: OperationContext, token: str) -> None:
    """Add ``token`` to the operation's secrets, so every message and excerpt of the operation masks it."""
    if token not in ctx.secrets:
        ctx.secrets = (*ctx.secrets, token)


def access_token(ctx: OperationContext, endpoint: TokenEndpoint) -> str:
    """A Bearer access token for the operation's ``client_id`` and ``client_secret`` (cached until expiry)."""
    client_id = str(getattr(ctx.credentials, "client_id", None) or "")
    client_secret = ctx.secret("client_secret")
    if not client_id or not client_secret:
        raise fail(ctx, "OAuth 2.0 needs client_id and client_secret", step="auth")
    key = cache_key(endpoint.url, client_id, client_secret)
    token = CACHE.get(key)
    if token is None:
        guard = _key_lock(key)  # held by reference while in use, so every waiter shares it
        with guard.lock:
            token = CACHE.get(key)  # another operation of this client may have fetched it meanwhile
            if token is None:
                token, seconds = _request(ctx, endpoint, client_id, client_secret)
                CACHE.put(key, token, seconds)
    remember(ctx, token)
    return token


def _request(ctx: OperationContext, endpoint: TokenEndpoint, client_id: str, client_secret: str) -> tuple[str, float]:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
            **dict(endpoint.extra_form)}
    what = f"the {endpoint.vendor} OAuth 2.0 token request"
    with ctx.client(endpoint.base_url) as c:
        # a token request changes nothing on the vendor: safe to retry when rate-limited
        resp = c.post(endpoint.path, data=form, headers={"Accept": "application/json"}, retry_unsafe=True)
        # every refusal of the client is step auth, with the vendor's hint
        check(ctx, resp, what, auth=endpoint.auth_statuses, permission=(), auth_hint=endpoint.hint)
    body = json_of(ctx, resp, what)
    token = text(body.get("access_token"))
    if not token:
        raise fail(ctx, f"{what} was answered without an access_token", step="response")
    kind = (text(body.get("token_type")) or "Bearer").lower()
    if kind != "bearer":
        raise fail(ctx, f"{what} issued a {kind!r} token; PMAP sends Bearer tokens", step="response")
    remember(ctx, token)
    return token, lifetime(body.get("expires_in"))
