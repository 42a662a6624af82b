"""The one guarded outbound HTTP layer every connector's vendor call goes through.

One :class:`OutboundClient` serves one operation (a connection test, a findings pull). It adds
what every vendor call needs and no connector should re-implement: the egress guard with
DNS-pinned connections (:mod:`pmap.core.egress`), per-attempt timeouts inside an overall
budget, bounded retries that honour ``Retry-After``, TLS options, a ``PMAP/<version>``
User-Agent, same-host-only redirects (a request may opt in to following a pre-signed storage
URL on another host, sent without its headers or credentials), a response size cap, and errors
mapped to :class:`~pmap.core.errors.UpstreamError` steps with credential values scrubbed.
"""

from __future__ import annotations

import random
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar

import httpx
import orjson

from pmap import __version__
from pmap.core import clock, redaction
from pmap.core.egress import (
    DEFAULT_PORTS,
    EgressPolicy,
    PinnedBackend,
    PinnedTransport,
    normalize_host,
    origin_of,
    parse_destination,
    resolve_and_check,
    ssl_context,
)
from pmap.core.errors import EgressDenied, UpstreamError, upstream_error
from pmap.core.redaction import scrub
from pmap.core.urlpath import dot_segment_in

DEFAULT_MAX_BODY = 5 * 1024 * 1024
MAX_REDIRECTS = 3
EXCERPT_CHARS = 300
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MIN_ATTEMPT = 0.05  # seconds: below this an attempt cannot succeed, so do not start one
_BACKOFF_BASE, _BACKOFF_CAP = 0.5, 8.0
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_E = TypeVar("_E", bound=BaseException)


@dataclass(frozen=True)
class OutboundConfig:
    """How one operation may call out: egress policy, TLS, timeouts, retries, identity."""

    policy: EgressPolicy
    verify_tls: bool = True
    ca_bundle_pem: str | None = None
    timeout: float = 10.0  # per attempt
    budget: float = 10.0  # overall deadline for the operation
    max_retries: int = 2
    user_agent: str = f"PMAP/{__version__}"
    max_body_bytes: int = DEFAULT_MAX_BODY  # larger bodies fail at step "response"


@dataclass
class OutboundResponse:
    """A read-only view of a vendor answer; the body was read fully (within the size cap)."""

    status: int
    headers: httpx.Headers
    content: bytes = field(repr=False)
    url: str
    elapsed_ms: float
    tls_verification_disabled: bool = False
    _secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def json(self) -> Any:
        """The body parsed as JSON; an unparseable body is ``UpstreamError(step="response")``."""
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError as exc:
            kind = self.headers.get("content-type", "no content type")
            raise UpstreamError(
                scrub(f"Expected JSON from {httpx.URL(self.url).host} but got {kind}: {_excerpt(self.text(), ())}",
                      extra=self._secrets),
                step="response",
                upstream_status=self.status,
            ) from exc

    def text(self) -> str:
        """The body decoded with its declared charset (UTF-8 otherwise; bad bytes replaced)."""
        charset = self.headers.get("content-type", "")
        encoding = "utf-8"
        for part in charset.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                encoding = value.strip("\"' ")
        try:
            return self.content.decode(encoding, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


def _excerpt(text: str, secrets: Iterable[str]) -> str:
    # scrub a generous prefix before cutting, so a cut can never leave part of a secret behind
    cleaned = " ".join(scrub(text[:8192], extra=secrets).split())
    return cleaned if len(cleaned) <= EXCERPT_CHARS else cleaned[: EXCERPT_CHARS - 1] + "…"


def target_of(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, base path)`` of ``url``, normalized to compare targets.

    Default ports are filled in, the host is lower-cased (IDNA as punycode, no brackets or trailing
    dot) and the path loses its trailing slash; query and fragment are ignored. Raises
    :class:`EgressDenied` for anything that is not an http(s) URL with a host.
    """
    parsed = parse_destination(url)
    scheme, host, port = origin_of(parsed)
    return scheme, host, port, parsed.path.rstrip("/")


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date)."""
    value = (value or "").strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` in ``exc``'s chain (``ssl`` and ``OSError`` hide inside)."""
    cur: BaseException | None = exc
    for _ in range(10):  # chains are short; the bound guards against cycles
        if cur is None or isinstance(cur, kind):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _os_reason(exc: BaseException) -> str:
    err = _cause(exc, OSError)
    return (err.strerror if err is not None and err.strerror else str(exc)) or type(exc).__name__


class OutboundClient:
    """A guarded HTTP client for one operation against one base URL; use it as a context manager.

    Cheap to build (no I/O until the first request). The budget clock starts at construction.
    Not thread-safe: an operation runs in one worker thread.
    """

    def __init__(self, base_url: str, config: OutboundConfig, *, secrets: Iterable[str] = ()) -> None:
        self._config = config
        self._secrets = tuple(s for s in secrets if s)
        self._base = parse_destination(base_url)
        self._origin = origin_of(self._base)
        # the path as given, still percent-encoded: decoding it would turn "%2F" into "/" when joined
        self._base_path = self._base.raw_path.decode("ascii").split("?", 1)[0].rstrip("/")
        self._deadline = clock.monotonic() + config.budget
        self._backend = PinnedBackend()
        self._client: httpx.Client | None = None
        self._closed = False
        self._retries = 0
        self._registered: list[int] = []  # redactor handles of the auth header values sent

    # --- properties callers read to add warnings -------------------------------------------------

    @property
    def tls_verification_disabled(self) -> bool:
        """True when this client talks HTTPS without verifying certificates (warn the user)."""
        return not self._config.verify_tls and self._origin[0] == "https"

    @property
    def plain_http(self) -> bool:
        """True when the base URL is plain http (credentials travel unencrypted)."""
        return self._origin[0] == "http"

    @property
    def retries_done(self) -> int:
        """How many retries this client has made so far, over all requests."""
        return self._retries

    @property
    def remaining_budget(self) -> float:
        """Seconds left of the operation's budget (never negative)."""
        return max(0.0, self._deadline - clock.monotonic())

    # --- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections; the client cannot be used afterwards."""
        self._closed = True
        if self._client is not None:
            self._client.close()
            self._client = None
        while self._registered:
            redaction.unregister(self._registered.pop())

    def _mask_auth_headers(self, request: httpx.Request) -> None:
        # the request as sent (httpx auth applied): what its auth headers carry (a Basic encoding, a signature)
        # is masked, in every encoding, in this client's errors and in logs while the operation runs
        carried = redaction.header_secrets(request.headers.items(), self._secrets)
        if new := [v for v in carried if v not in self._secrets]:
            self._secrets += tuple(new)
            self._registered.append(redaction.register(new))

    def _http(self) -> httpx.Client:
        if self._closed:
            raise RuntimeError("OutboundClient is closed")
        if self._client is None:
            try:
                ctx = ssl_context(self._config.verify_tls, self._config.ca_bundle_pem or None)
            except (ssl.SSLError, ValueError, TypeError) as exc:
                raise UpstreamError(f"The CA bundle of this integration could not be loaded: {exc}",
                                    step="tls") from exc
            self._client = httpx.Client(
                transport=PinnedTransport(ctx, self._backend),
                headers={"User-Agent": self._config.user_agent},
                follow_redirects=False,  # redirects are vetted below, one hop at a time
                event_hooks={"request": [self._mask_auth_headers]},
                trust_env=False,  # an environment proxy would bypass the pinned addresses
            )
        return self._client

    # --- requests ------------------------------------------------------------------------------

    def get(self, path: str, **kw: Any) -> OutboundResponse:
        """``request("GET", path, ...)``."""
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> OutboundResponse:
        """``request("POST", path, ...)``."""
        return self.request("POST", path, **kw)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | str | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        retry_unsafe: bool = False,
        expected: tuple[int, ...] | None = None,
        allow_host: str | None = None,
        max_bytes: int | None = None,
        signed_redirects: bool = False,
        sink: BinaryIO | None = None,
    ) -> OutboundResponse:
        """Send one request (with retries and same-host redirects) and return the answer.

        ``path`` joins the base URL's path; an absolute URL must have the base's scheme, host and
        port unless its host equals ``allow_host``. Any status is returned unless ``expected`` is
        given and does not contain it: then ``UpstreamError(step="http")`` with a body excerpt.

        ``signed_redirects``: a redirect to another host is followed as a pre-signed download URL
        (GitHub's artifact archives on its storage host, say): a plain GET that carries none of the
        request's headers, auth or body, over https (unless the request itself was plain http),
        through the same egress checks and DNS pinning as any call.
        ``sink``: a 2xx answer's body goes to this file as it arrives (within the cap), not to ``content``.
        """
        method = method.upper()
        url = self._url(path, allow_host)
        may_retry = method in _IDEMPOTENT or retry_unsafe
        body = {"json": json, "data": data, "content": content}
        attempt = 0
        while True:
            response = self._attempt(method, url, params, headers, body, auth, max_bytes, signed_redirects, sink)
            if not (may_retry and attempt < self._config.max_retries and self._retryable(response.status)):
                break
            wait = _retry_after(response.headers.get("retry-after"))
            if wait is None:
                wait = min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt) * random.uniform(0.8, 1.0)  # noqa: S311 - retry jitter, not a secret
            if wait + _MIN_ATTEMPT >= self.remaining_budget:
                break  # waiting as asked would overrun the budget: report what we have
            clock.sleep(wait)
            attempt += 1
            self._retries += 1
        if expected is not None and response.status not in expected:
            raise self._status_error(method, response)
        return response

    @staticmethod
    def _retryable(status: int) -> bool:
        return status == 429 or 500 <= status <= 599

    def _url(self, path: str, allow_host: str | None) -> httpx.URL:
        if not _ABSOLUTE.match(path):
            if dot_segment_in(path):  # httpx would resolve "..", and servers decode "%2e%2e" and "\\"
                raise EgressDenied("Refusing a request path with a '.' or '..' step (in any encoding) or a "
                                   "backslash: it could leave the base path of this integration")
            joined = f"{self._base_path}/{path.lstrip('/')}" if path else self._base_path or "/"
            try:
                return httpx.URL(f"{self._base.scheme}://{self._base.netloc.decode('ascii')}{joined}")
            except (httpx.InvalidURL, ValueError) as exc:
                raise EgressDenied(scrub(f"The request URL is not valid: {exc}", extra=self._secrets)) from None
        url = parse_destination(path)
        target = origin_of(url)
        if target == self._origin:
            return url
        if allow_host and target[1] == normalize_host(allow_host):
            if self._origin[0] == "https" and target[0] != "https":
                raise EgressDenied(f"Refusing to downgrade from https to http for {target[1]}")
            return url
        raise EgressDenied(
            f"Refusing to call {target[1]}:{target[2]}: requests must stay on {self._origin[1]}:{self._origin[2]}"
        )

    def _pin(self, url: httpx.URL) -> None:
        host = normalize_host(url.raw_host.decode("ascii"))
        if self._backend.pinned(host) is not None:
            return  # resolved once per operation; later answers of DNS are never consulted
        port = url.port or DEFAULT_PORTS[url.scheme]
        ips = resolve_and_check(host, port, self._config.policy, timeout=self._attempt_budget(url))
        self._backend.pin(host, ips)

    def _attempt_budget(self, url: httpx.URL) -> float:
        left = self._deadline - clock.monotonic()
        if left < _MIN_ATTEMPT:
            raise self._error(
                f"The {self._config.budget:g} s time budget of this operation is spent; "
                f"{url.host} was not called",
                step="timeout",
            )
        return min(self._config.timeout, left)

    def _attempt(
        self,
        method: str,
        url: httpx.URL,
        params: Any,
        headers: Mapping[str, str] | None,
        body: dict[str, Any],
        auth: Any,
        max_bytes: int | None,
        signed_redirects: bool = False,
        sink: BinaryIO | None = None,
    ) -> OutboundResponse:
        """One attempt: the request and any redirects it may follow, within one attempt timeout."""
        client = self._http()
        for hop in range(MAX_REDIRECTS + 1):
            self._pin(url)
            budget = self._attempt_budget(url)
            self._backend.deadline = clock.monotonic() + budget
            started = time.monotonic()  # latency is real elapsed time, not the deadline's clock
            try:
                request = client.build_request(method, url, params=params, headers=headers,
                                               timeout=httpx.Timeout(budget), **body)
            except UnicodeEncodeError:
                # header values are ASCII on the wire; the value itself is not repeated here
                raise self._error("A header of this request (a credential?) holds characters HTTP headers cannot "
                                  "carry (only ASCII is allowed); check the credentials", step="auth") from None
            response = self._exchange(client, request, auth, budget, max_bytes, sink)
            response.elapsed_ms = (time.monotonic() - started) * 1000
            location = response.headers.get("location")
            if response.status not in _REDIRECTS or not location:
                return response
            if hop == MAX_REDIRECTS:
                raise self._error(f"{url.host} redirected more than {MAX_REDIRECTS} times", step="http",
                                  upstream_status=response.status)
            url, crossed = self._redirect_target(url, location, response.status, signed_redirects)
            params = None  # the Location already carries its query
            if crossed:  # a pre-signed URL: it authorizes itself; nothing of the request goes along
                method, headers, auth, body = "GET", None, None, {}
            elif response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), {}
        raise AssertionError("unreachable")  # pragma: no cover

    def _redirect_target(self, current: httpx.URL, location: str, status: int,
                         signed_redirects: bool) -> tuple[httpx.URL, bool]:
        """Where a redirect leads, and whether it crosses to another host (only with ``signed_redirects``)."""
        try:
            nxt = current.join(location)
        except httpx.InvalidURL as exc:
            raise self._error(f"{current.host} sent an invalid redirect", step="http",
                              upstream_status=status) from exc
        here, there = origin_of(current), origin_of(nxt) if nxt.scheme in DEFAULT_PORTS else None
        if signed_redirects and there is not None and there[1] != here[1]:
            if here[0] == "https" and there[0] != "https":
                raise self._error(f"{here[1]} redirected to http://{there[1]}; not followed (no downgrade from "
                                  "https)", step="http", upstream_status=status)
            return nxt, True
        if there is None or there[1] != here[1]:
            host = (there[1] if there else "") or nxt.host or location
            raise self._error(
                f"{here[1]} redirected to another host ({host}); not followed. "
                f"Check the base URL (the server may expect {host})",
                step="http", upstream_status=status,
            )
        upgrade = here[0] == "http" and there[0] == "https" and there[2] == 443 and here[2] == 80
        if there != here and not upgrade:
            raise self._error(
                f"{here[1]} redirected to {there[0]}://{there[1]}:{there[2]}; not followed "
                f"(only same-host redirects on the same port, or to https, are followed)",
                step="http", upstream_status=status,
            )
        return nxt, False

    def _exchange(self, client: httpx.Client, request: httpx.Request, auth: Any, budget: float,
                  max_bytes: int | None, sink: BinaryIO | None = None) -> OutboundResponse:
        cap = max_bytes if max_bytes is not None else self._config.max_body_bytes
        host = request.url.host
        try:
            response = client.send(request, auth=auth, stream=True)
            try:
                declared = response.headers.get("content-length", "")
                if request.method != "HEAD" and declared.isdigit() and int(declared) > cap:
                    raise self._too_large(host, cap)
                chunks: list[bytes] = []
                size = 0
                out = sink if sink is not None and 200 <= response.status_code < 300 else None
                if out is not None:  # a retry starts the file again
                    out.seek(0)
                    out.truncate()
                keep: Callable[[bytes], object] = out.write if out is not None else chunks.append
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise self._too_large(host, cap)
                    keep(chunk)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise self._network_error(exc, request, budget) from exc
        except httpx.InvalidURL:  # httpx reads a redirect's Location as it receives the answer
            raise self._error(f"{host} answered with a malformed URL (an invalid redirect Location?)", step="http",
                              upstream_status=None) from None
        return OutboundResponse(
            status=response.status_code,
            headers=response.headers,
            content=b"".join(chunks),
            url=str(request.url),
            elapsed_ms=0.0,
            tls_verification_disabled=not self._config.verify_tls and request.url.scheme == "https",
            _secrets=self._secrets,
        )

    # --- errors --------------------------------------------------------------------------------

    def _error(self, message: str, *, step: str, upstream_status: int | None = None) -> UpstreamError:
        return upstream_error(scrub(message, extra=self._secrets), step=step, upstream_status=upstream_status)

    def _too_large(self, host: str, cap: int) -> UpstreamError:
        return self._error(f"The answer from {host} is larger than {cap} bytes; not read", step="response")

    def _network_error(self, exc: httpx.HTTPError, request: httpx.Request, budget: float) -> UpstreamError:
        host, port = request.url.host, request.url.port or DEFAULT_PORTS[request.url.scheme]
        what = f"{request.method} {request.url.raw_path.decode('ascii', 'replace')}"
        if isinstance(exc, httpx.TimeoutException):
            spent = " (the operation's time budget is spent)" if self.remaining_budget < _MIN_ATTEMPT else ""
            phase = "Connecting to" if isinstance(exc, httpx.ConnectTimeout) else "No complete answer from"
            return self._error(f"{phase} {host}:{port} timed out after {budget:.1f} s{spent} ({what})",
                               step="timeout")
        tls = _cause(exc, ssl.SSLError)
        if tls is not None:
            if isinstance(tls, ssl.SSLCertVerificationError):
                reason = str(tls.verify_message or tls.reason or tls).rstrip(".")
                hint = ("use the host name the certificate was issued for" if "mismatch" in reason.lower()
                        else "trust the issuing CA with this integration's CA bundle, or turn verification off")
                return self._error(f"TLS certificate verification failed for {host}: {reason} ({hint})", step="tls")
            hint = " (is the port serving plain HTTP? try http://)" if tls.reason == "WRONG_VERSION_NUMBER" else ""
            return self._error(f"TLS handshake with {host}:{port} failed: {tls.reason or tls}{hint}", step="tls")
        if isinstance(exc, httpx.ConnectError):
            return self._error(f"Could not connect to {host}:{port}: {_os_reason(exc)}", step="connect")
        hint = " (is the port serving HTTPS? try https://)" if request.url.scheme == "http" else ""
        if isinstance(exc, httpx.ProtocolError):
            return self._error(f"{host}:{port} did not answer with valid HTTP: {exc}{hint} ({what})", step="http")
        return self._error(f"The connection to {host}:{port} failed: {_os_reason(exc)}{hint} ({what})",
                           step="connect")

    def _status_error(self, method: str, response: OutboundResponse) -> UpstreamError:
        url = httpx.URL(response.url)
        reason = httpx.codes.get_reason_phrase(response.status)
        excerpt = _excerpt(response.text(), self._secrets)
        path = url.raw_path.decode("ascii", "replace")
        message = f"{url.host} answered HTTP {response.status} {reason} to {method} {path}"
        return self._error(f"{message}: {excerpt}" if excerpt else message, step="http",
                           upstream_status=response.status)
