"""Verification of inbound webhook deliveries, one scheme per vendor convention.

Every scheme verifies the RAW body bytes (never a re-serialization), compares in constant time and
fails closed: no usable secret, a missing, duplicated or malformed header, a stale timestamp or a
mismatch is a rejection. Several secrets may be configured at once (current first, then the previous
one during a rotation); :attr:`Verdict.secret_index` says which one matched.

Delivery ids are taken only after the proof verified. A vendor header id is used when present and
sane (printable ASCII, 1-200 characters); otherwise, and always for SonarQube (which sends none), the
id is ``sha256:<hex of the body>``: the same event delivered twice has the same bytes. Azure DevOps
carries its id in the body: the top-level ``id`` field, read after the credentials verified.

De-duplication needs a key the sender cannot change: where the signature does not cover the id
header (GitHub, Jira, Bitbucket, Snyk, SonarQube, ServiceNow), :attr:`Verdict.replay_key` is the hash
of the signed bytes, so a captured delivery sent again under a fresh id header is still a duplicate
(a vendor's own redelivery carries the same bytes). Standard Webhooks signs its id, which is the key.

ServiceNow has no outbound signing of its own, so PMAP defines one (``servicenow``)::

    X-PMAP-Timestamp: <unix seconds>
    X-PMAP-Signature: v1=<base64 HMAC-SHA256(secret, "<timestamp>.<raw body>")>
    X-PMAP-Delivery:  <unique id>          (timestamp tolerance: 5 minutes)

An instance admin pastes this into an async business rule (or a Script Include) on the table to
forward; the secret lives in an encrypted system property (type password2)::

    (function executeRule(current, previous) {
        var secret = gs.getProperty('x_pmap.webhook_secret');
        var body = JSON.stringify({table: current.getTableName(), sys_id: current.getUniqueValue(),
                                   number: current.getValue('number'), state: current.getValue('state')});
        var ts = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));
        var mac = new GlideCertificateEncryption().generateMac(
            GlideStringUtil.base64Encode(secret), 'HmacSHA256', ts + '.' + body);
        var r = new sn_ws.RESTMessageV2();
        r.setEndpoint(gs.getProperty('x_pmap.webhook_url'));
        r.setHttpMethod('post');
        r.setRequestHeader('Content-Type', 'application/json');
        r.setRequestHeader('X-PMAP-Timestamp', ts);
        r.setRequestHeader('X-PMAP-Signature', 'v1=' + mac);
        r.setRequestHeader('X-PMAP-Delivery', gs.generateGUID());
        r.setRequestBody(body);
        r.executeAsync();
    })(current, previous);
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from pmap.connectors.vendors.azure_devops import AZURE_USERNAME
from pmap.core.registry import Registry

TOLERANCE_SECONDS = 300
_MAX_ID_CHARS = 200


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of verifying one delivery. ``reason`` is short and internal (logs, metrics)."""

    ok: bool
    reason: str
    delivery_id: str | None = None
    timestamp: int | None = None
    secret_index: int | None = None  # which configured secret matched (0 = current)
    replay_key: str | None = None  # de-duplication key when the signature does not cover delivery_id


class WebhookScheme(Protocol):
    """How one vendor proves a delivery; ``key`` names it in :data:`SCHEMES`."""

    @property
    def key(self) -> str:
        """The scheme's name: github, gitlab_token, jira, ... standard_webhooks."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> Verdict:
        """Accept or reject a delivery; never raises for bad input."""
        ...

    def generate_secret(self) -> str:
        """A new random secret in the form the vendor accepts."""
        ...

    def sign(self, body: bytes, secret: str, *, delivery_id: str, timestamp: int) -> dict[str, str]:
        """The headers a sender adds (for tests and documentation)."""
        ...


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Headers:
    """Case-insensitive view of request headers that refuses a header given twice with different values."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        # a multi-dict (Starlette) yields repeated headers here; a caller's mapping may hold anything
        items: Iterable[tuple[object, object]] = headers.items()
        self._values: dict[str, set[str]] = {}
        for name, value in items:
            if isinstance(name, str) and isinstance(value, str):
                self._values.setdefault(name.lower(), set()).add(value.strip())

    def get(self, name: str) -> str | None:
        values = self._values.get(name.lower())
        if not values:
            return None
        if len(values) > 1:
            raise _Reject(f"duplicate {name} header")
        value = next(iter(values))
        return value or None

    def require(self, name: str, what: str = "signature") -> str:
        value = self.get(name)
        if value is None:
            raise _Reject(f"missing {what} header")
        return value


def _usable(secrets: Sequence[object]) -> list[tuple[int, str]]:
    if isinstance(secrets, str):  # a bare string is a sequence of characters: refuse, don't iterate
        raise _Reject("secrets must be a list")
    usable = [(i, s) for i, s in enumerate(secrets) if isinstance(s, str) and s.strip()]
    if not usable:
        raise _Reject("no secret configured")
    return usable


def _raw(body: bytes) -> bytes:
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if not isinstance(body, bytes):
        raise _Reject("body must be the raw bytes")
    return body


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _match_mac(candidates: Sequence[bytes], keys: Sequence[tuple[int, bytes]], data: bytes) -> int | None:
    """Index of the first secret whose HMAC of ``data`` equals one of ``candidates``."""
    for index, key in keys:
        expected = _hmac(key, data)
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate):
                return index
    return None


def _clean_id(value: str | None) -> str | None:
    if value is None or not 0 < len(value) <= _MAX_ID_CHARS:
        return None
    return value if all(33 <= ord(c) <= 126 for c in value) else None


def body_id(body: bytes) -> str:
    """The de-duplication id of a delivery that carries none: ``sha256:<hex>`` of its bytes."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _timestamp(raw: str, now: float) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise _Reject("malformed timestamp header")
    ts = int(raw)
    if abs(now - ts) > TOLERANCE_SECONDS:
        raise _Reject("timestamp outside tolerance")
    return ts


def _token() -> str:
    return _random.token_urlsafe(32)  # 43 characters, 256 bits


class _Check(Protocol):
    def __call__(self, h: _Headers, body: bytes, keys: list[tuple[int, str]], now: float) -> Verdict: ...


def _guarded(check: _Check, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> Verdict:
    try:
        return check(_Headers(headers), _raw(body), _usable(secrets), now)
    except _Reject as rejected:
        return Verdict(False, rejected.reason)
    except Exception:
        return Verdict(False, "malformed input")


# --- HMAC-SHA256 hex of the raw body ---------------------------------------------------------------

@dataclass(frozen=True)
class HexHmacScheme:
    """``<header>: <prefix><hex HMAC-SHA256(secret, body)>``: GitHub, Jira, Bitbucket, Snyk, SonarQube."""

    key: str
    header: str
    prefix: str  # "sha256=" or "" (SonarQube)
    id_headers: tuple[str, ...] = ()
    legacy_header: str | None = None  # GitHub's SHA-1 header: named in the reason, never accepted

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> Verdict:
        """Accept when the hex signature matches one of ``secrets``."""
        return _guarded(self._check, headers, body, secrets, now)

    def _check(self, h: _Headers, body: bytes, keys: list[tuple[int, str]], now: float) -> Verdict:
        if self.legacy_header and h.get(self.header) is None and h.get(self.legacy_header) is not None:
            raise _Reject("sha1 signature not accepted")
        value = h.require(self.header)
        if self.prefix:
            algorithm, sep, value = value.partition("=")
            if not sep:
                raise _Reject("malformed signature header")
            algorithm = algorithm.strip().lower()
            if algorithm != self.prefix[:-1]:
                # fixed texts only: the header is attacker-controlled and reasons end up in logs
                raise _Reject("sha1 signature not accepted" if algorithm == "sha1"
                              else "unsupported signature algorithm")
        value = value.strip()
        if len(value) != 64:
            raise _Reject("malformed signature header")
        try:
            candidate = bytes.fromhex(value)
        except ValueError:
            raise _Reject("malformed signature header") from None
        index = _match_mac([candidate], [(i, s.encode()) for i, s in keys], body)
        if index is None:
            return Verdict(False, "signature mismatch")
        delivery = next((v for v in (_clean_id(h.get(n)) for n in self.id_headers) if v), None)
        # the id header is not signed: de-duplicate on the signed bytes
        return Verdict(True, "ok", delivery or body_id(body), None, index, replay_key=body_id(body))

    def generate_secret(self) -> str:
        """A random 43-character secret (SonarQube needs 16+, the others any length)."""
        return _token()

    def sign(self, body: bytes, secret: str, *, delivery_id: str, timestamp: int) -> dict[str, str]:
        """The signature header (and the id header, when the vendor has one)."""
        out = {self.header: self.prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
        if self.id_headers:
            out[self.id_headers[0]] = delivery_id
        return out


# --- a static token or credentials ---------------------------------------------------------------

def _same(given: str, expected: str) -> bool:
    # compare digests so neither the content nor the length of the secret shows in the timing
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


#: schemes whose vendor sends the secret itself with every delivery (a header token, a Basic password) rather
#: than a signature made with it: over plain http anyone on the path reads it
SECRET_SENT_WITH_EACH_DELIVERY = frozenset({"gitlab_token", "azure_devops_basic"})


@dataclass(frozen=True)
class GitLabTokenScheme:
    """GitLab's token mode: ``X-Gitlab-Token`` carries the secret itself (nothing is signed)."""

    key: str = "gitlab_token"

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> Verdict:
        """Accept when the token equals one of ``secrets``."""
        return _guarded(self._check, headers, body, secrets, now)

    def _check(self, h: _Headers, body: bytes, keys: list[tuple[int, str]], now: float) -> Verdict:
        token = h.require("X-Gitlab-Token", "token")
        index = next((i for i, s in keys if _same(token, s)), None)
        if index is None:
            return Verdict(False, "token mismatch")
        # Idempotency-Key stays the same across GitLab's retries; the UUID is per attempt
        delivery = _clean_id(h.get("Idempotency-Key")) or _clean_id(h.get("X-Gitlab-Webhook-UUID"))
        return Verdict(True, "ok", delivery or body_id(body), None, index)

    def generate_secret(self) -> str:
        """A random 43-character token (GitLab accepts up to 255)."""
        return _token()

    def sign(self, body: bytes, secret: str, *, delivery_id: str, timestamp: int) -> dict[str, str]:
        """The token header and both id headers."""
        return {"X-Gitlab-Token": secret, "Idempotency-Key": delivery_id, "X-Gitlab-Webhook-UUID": delivery_id}



@dataclass(frozen=True)
class AzureBasicScheme:
    """Azure DevOps service hooks: HTTP Basic, user ``pmap``, password = the secret (nothing is signed)."""

    key: str = "azure_devops_basic"

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> Verdict:
        """Accept when the Basic credentials are ``pmap`` and one of ``secrets``."""
        return _guarded(self._check, headers, body, secrets, now)

    def _check(self, h: _Headers, body: bytes, keys: list[tuple[int, str]], now: float) -> Verdict:
        value = h.require("Authorization", "authorization")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise _Reject("malformed authorization header")
        try:
            pair = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _Reject("malformed authorization header") from None
        if ":" not in pair:
            raise _Reject("malformed authorization header")
        index = next((i for i, s in keys if _same(pair, f"{AZURE_USERNAME}:{s}")), None)
        if index is None:
            return Verdict(False, "credentials mismatch")
        return Verdict(True, "ok", _azure_id(body) or body_id(body), None, index)

    def generate_secret(self) -> str:
        """A random 43-character password."""
        return _token()

    def sign(self, body: bytes, secret: str, *, delivery_id: str, timestamp: int) -> dict[str, str]:
        """The Authorization header (the delivery id travels in the body)."""
        token = base64.b64encode(f"{AZURE_USERNAME}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


def _azure_id(body: bytes) -> str | None:
    # only called once the credentials verified: unauthenticated bytes are never parsed
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("id") if isinstance(doc, dict) else None
    return _clean_id(value) if isinstance(value, str) else None


# --- timestamped HMAC schemes --------------------------------------------------------------------

@dataclass(frozen=True)
class StandardWebhooksScheme:
    """Standard Webhooks (also GitLab's signing tokens): ``v1,<base64 HMAC(id.timestamp.body)>``."""

    key: str = "standard_webhooks"

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> Verdict:
        """Accept a fresh (5 min) delivery signed with one of ``secrets`` (``whsec_<base64>``)."""
        return _guarded(self._check, headers, body, secrets, now)

    def _check(self, h: _Headers, body: bytes, keys: list[tuple[int, str]], now: float) -> Verdict:
        msg_id = h.require("webhook-id", "webhook-id")
        raw_ts = h.require("webhook-timestamp", "timestamp")
        signatures = h.require("webhook-signature")
        candidates = []
        for part in signatures.split(" "):
            version, sep, sig = part.partition(",")
            if sep and version == "v1":
                try:
                    candidates.append(base64.b64decode(sig, validate=True))
                except (binascii.Error, ValueError):
                    continue
        if not candidates:
            raise _Reject("malformed signature header")
        timestamp = _timestamp(raw_ts, now)
        decoded = [(i, k) for i, k in ((i, _whsec_key(s)) for i, s in keys) if k]
        if not decoded:
            raise _Reject("no usable secret")
        index = _match_mac(candidates, decoded, f"{msg_id}.{raw_ts}.".encode() + body)
        if index is None:
            return Verdict(False, "signature mismatch")
        return Verdict(True, "ok", _clean_id(msg_id) or body_id(body), timestamp, index)

    def generate_secret(self) -> str:
        """``whsec_`` + base64 of 32 random bytes (the spec allows 24-64)."""
        return "whsec_" + base64.b64encode(_random.token_bytes(32)).decode()

    def sign(self, body: bytes, secret: str, *, delivery_id: str, timestamp: int) -> dict[str, str]:
        """The three ``webhook-*`` headers."""
        key = _whsec_key(secret)
        if not key:
            raise ValueError("a Standard Webhooks secret is whsec_<base64>")
        mac = _hmac(key, f"{delivery_id}.{timestamp}.".encode() + body)
        return {"webhook-id": delivery_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": "v1," + base64.b64encode(mac).decode()}


def _whsec_key(secret: str) -> bytes | None:
    """``whsec_<base64>`` -> the decoded key (None when not base64); any other secret -> its UTF-8 bytes,
    as PMAP's sandbox sender does. Vendors that follow the spec (GitLab, Svix) always use the prefix."""
    if not secret.startswith("whsec_"):
        return secret.encode()
    try:
        key = base64.b64decode(secret[6:], validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


@dataclass(frozen=True)
class ServiceNowScheme:
    """PMAP's own scheme for ServiceNow outbound REST messages (see the module docstring)."""

    key: str = "servicenow"

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> Verdict:
        """Accept a fresh (5 min) delivery whose ``v1=`` signature matches one of ``secrets``."""
        return _guarded(self._check, headers, body, secrets, now)

    def _check(self, h: _Headers, body: bytes, keys: list[tuple[int, str]], now: float) -> Verdict:
        raw_ts = h.require("X-PMAP-Timestamp", "timestamp")
        value = h.require("X-PMAP-Signature")
        delivery = h.require("X-PMAP-Delivery", "delivery id")
        candidates = []
        for part in value.split(","):  # a list lets a sender sign with two secrets during a rotation
            version, sep, sig = part.strip().partition("=")
            if sep and version == "v1":
                try:
                    candidates.append(base64.b64decode(sig, validate=True))
                except (binascii.Error, ValueError):
                    continue
        if not candidates:
            raise _Reject("malformed signature header")
        timestamp = _timestamp(raw_ts, now)
        signed = raw_ts.encode() + b"." + body
        index = _match_mac(candidates, [(i, s.encode()) for i, s in keys], signed)
        if index is None:
            return Verdict(False, "signature mismatch")
        # X-PMAP-Delivery is not signed: within the timestamp window, de-duplicate on the signed bytes
        return Verdict(True, "ok", _clean_id(delivery) or body_id(body), timestamp, index, replay_key=body_id(signed))

    def generate_secret(self) -> str:
        """A random 43-character secret."""
        return _token()

    def sign(self, body: bytes, secret: str, *, delivery_id: str, timestamp: int) -> dict[str, str]:
        """The three ``X-PMAP-*`` headers the business rule sets."""
        mac = _hmac(secret.encode(), f"{timestamp}.".encode() + body)
        return {"X-PMAP-Timestamp": str(timestamp), "X-PMAP-Signature": "v1=" + base64.b64encode(mac).decode(),
                "X-PMAP-Delivery": delivery_id}


SCHEMES: Registry[WebhookScheme] = Registry(
    "webhook schemes",
    [
        HexHmacScheme("github", "X-Hub-Signature-256", "sha256=", ("X-GitHub-Delivery",), "X-Hub-Signature"),
        GitLabTokenScheme(),
        HexHmacScheme("jira", "X-Hub-Signature", "sha256=", ("X-Atlassian-Webhook-Identifier",)),
        HexHmacScheme("bitbucket", "X-Hub-Signature", "sha256=", ("X-Request-UUID",)),
        AzureBasicScheme(),
        HexHmacScheme("sonarqube", "X-Sonar-Webhook-HMAC-SHA256", ""),
        HexHmacScheme("snyk", "X-Hub-Signature", "sha256=", ("X-Snyk-Transport-ID",)),
        ServiceNowScheme(),
        StandardWebhooksScheme(),
    ],
    key=lambda scheme: scheme.key,
)
