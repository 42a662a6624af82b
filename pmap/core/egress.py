"""The egress guard: which addresses PMAP may connect to, and a connection path pinned to them.

A connector's base URL is user input, so every outbound connection is vetted here. A host is
resolved once, every address it resolves to is checked, and the connection is then made to one
of those checked addresses (:class:`PinnedBackend`) while the Host header, TLS SNI and the
certificate check keep using the hostname. DNS therefore cannot answer differently between the
check and the connect (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpcore
import httpx

from pmap.core import clock
from pmap.core.errors import ConfigurationError, EgressDenied, UpstreamError
from pmap.core.urlpath import control_character_in

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_ENV = "PMAP_EGRESS_ALLOW_CIDRS"
DEFAULT_PORTS = {"http": 80, "https": 443}

# Cloud instance metadata and platform endpoints that sit outside the link-local range.
_METADATA = {
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud metadata
    ipaddress.ip_address("168.63.129.16"),  # Azure WireServer / platform endpoint
    ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud legacy metadata
}
_THIS_NETWORK_V4 = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPAT = ipaddress.ip_network("::/96")


@dataclass(frozen=True)
class EgressPolicy:
    """Where outbound calls may go: ``production`` refuses loopback/private unless allow-listed."""

    production: bool
    allow_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_strings(cls, production: bool, allow_cidrs: str | None) -> EgressPolicy:
        """Build a policy from settings: ``allow_cidrs`` is a comma-separated list of CIDRs."""
        nets: list[IPNetwork] = []
        for raw in (allow_cidrs or "").split(","):
            item = raw.strip()
            if not item:
                continue
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError as exc:
                raise ConfigurationError(f"{ALLOW_ENV}: {item!r} is not an IP network in CIDR form") from exc
        return cls(production=production, allow_cidrs=tuple(nets))

    def allows(self, ip: IPAddress) -> bool:
        """True when ``ip`` is inside one of the allow-listed networks."""
        return any(ip.version == net.version and ip in net for net in self.allow_cidrs)


def _plain(ip: ipaddress._BaseAddress) -> IPAddress:
    # a zone id ("fe80::1%eth0") does not change which range the address is in
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    return ip  # type: ignore[return-value]


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address reaches (NAT64, 6to4, Teredo, v4-compatible)."""
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _V4_COMPAT and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _always_refused(ip: IPAddress) -> str | None:
    if ip in _METADATA:
        return "a cloud metadata service address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if ip.is_unspecified or (ip.version == 4 and ip in _THIS_NETWORK_V4):
        return "an unspecified ('this network') address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.version == 4 and ip.is_reserved:
        return "a reserved or broadcast address"
    if ip.version == 6 and ip.is_reserved and not ip.is_loopback:
        return "a reserved IPv6 address"
    if ip.version == 6 and ip.is_site_local:
        return "a deprecated site-local IPv6 address"
    return None


def check_address(ip: ipaddress._BaseAddress, policy: EgressPolicy) -> str | None:
    """Why ``ip`` may not be contacted under ``policy``, or ``None`` when it may."""
    addr = _plain(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            # ::ffff:a.b.c.d reaches the IPv4 host a.b.c.d: judge that host, nothing else
            reason = check_address(addr.ipv4_mapped, policy)
            return f"{reason} (IPv4-mapped {addr.ipv4_mapped})" if reason else None
        inner = _embedded_v4(addr)
        if inner is not None:
            reason = check_address(inner, policy)
            if reason:
                return f"{reason} (embedded IPv4 {inner})"
            if any(addr in net for net in _NAT64):
                return None  # NAT64 is how IPv6-only networks reach public IPv4; the v4 host decides
    reason = _always_refused(addr)
    if reason:
        return reason
    if policy.production and not addr.is_global and not policy.allows(addr):
        kind = "a loopback" if addr.is_loopback else "a private or internal"
        return f"{kind} address, not allowed in production unless listed in {ALLOW_ENV}"
    return None


def normalize_host(host: str) -> str:
    """Lower-case host without IPv6 brackets or a trailing dot (the key pins are stored under)."""
    return host.strip().strip("[]").rstrip(".").lower()


def parse_destination(url: str) -> httpx.URL:
    """``url`` parsed and vetted as an outbound destination (http(s), a host, no credentials). Refusals never
    repeat the URL: a vendor-supplied one may carry a signature in its query."""
    if control_character_in(url):
        # a CR/LF/NUL hidden as %0d%0a/%00 parses, then breaks every request built from it
        raise EgressDenied("The URL holds a control character (CR, LF, NUL, TAB, DEL), raw or percent-encoded")
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:  # IDNA failures are UnicodeErrors
        raise EgressDenied(f"The URL is not valid: {exc}") from exc
    if parsed.scheme not in DEFAULT_PORTS:
        got = f"not {parsed.scheme!r}" if parsed.scheme else "and the URL has no scheme"
        raise EgressDenied(f"Only http:// and https:// URLs are allowed, {got}")
    if not parsed.raw_host:
        raise EgressDenied("The URL has no host")
    if parsed.userinfo:
        raise EgressDenied("The URL must not contain a user name or password; use the credential fields")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise EgressDenied("The URL has an invalid port")
    return parsed


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """``(scheme, normalized host, port)`` of a parsed destination, default ports filled in."""
    host = normalize_host(url.raw_host.decode("ascii"))
    return url.scheme, host, url.port or DEFAULT_PORTS[url.scheme]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _getaddrinfo(host: str, port: int, timeout: float | None) -> list[tuple[Any, ...]]:
    if timeout is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    # the OS resolver has no timeout of its own; a daemon thread keeps the caller within its budget
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["ok"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except Exception as exc:
            box["err"] = exc

    worker = threading.Thread(target=run, name=f"pmap-dns-{host}", daemon=True)
    worker.start()
    worker.join(max(timeout, 0.0))
    if worker.is_alive() or not box:
        raise UpstreamError(f"DNS lookup of {host} did not answer within {timeout:.1f} s", step="dns")
    if "err" in box:
        raise box["err"]
    result: list[tuple[Any, ...]] = box["ok"]
    return result


def resolve_and_check(host: str, port: int, policy: EgressPolicy, *, timeout: float | None = None) -> list[str]:
    """Resolve ``host`` once and return its addresses if every one is allowed.

    Raises :class:`EgressDenied` if any address is refused (a name that mixes safe and unsafe
    answers is refused whole) and ``UpstreamError(step="dns")`` if the name does not resolve.
    """
    name = normalize_host(host)
    if not name:
        raise EgressDenied("The URL has no host name")
    literal = _literal(name)
    if literal is not None:
        reason = check_address(literal, policy)
        if reason:
            raise EgressDenied(f"Refusing to connect to {name}: {reason}")
        return [str(_plain(literal))]
    try:
        infos = _getaddrinfo(name, port, timeout)
    except socket.gaierror as exc:
        raise UpstreamError(f"Could not resolve host {name}: {exc.strerror or exc}", step="dns") from exc
    except (UnicodeError, OSError) as exc:
        raise UpstreamError(f"Could not resolve host {name}: {exc}", step="dns") from exc
    ips: list[str] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        reason = check_address(ip, policy)
        if reason:
            raise EgressDenied(f"Refusing to connect to {name}: it resolves to {ip}, {reason}")
        if str(ip) not in ips:
            ips.append(str(ip))
    if not ips:
        raise UpstreamError(f"Could not resolve host {name}: no addresses", step="dns")
    return ips


# --- the pinned connection path ----------------------------------------------------------------

@lru_cache(maxsize=64)
def ssl_context(verify: bool, ca_bundle_pem: str | None) -> ssl.SSLContext:
    """The TLS context of a client: verification on or off, the system store or an integration's bundle."""
    # contexts are safe to share between threads; building one reads the system CA store
    if not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_bundle_pem:
        # the integration's bundle replaces the system store, as curl --cacert does
        return ssl.create_default_context(cadata=ca_bundle_pem)
    return ssl.create_default_context()


class PinnedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the guard checked, and cuts every socket wait at ``deadline``.

    ``deadline`` is a :func:`pmap.core.clock.monotonic` value set by the caller per attempt, so a server that
    trickles bytes cannot hold a worker past the operation's budget.
    """

    def __init__(self) -> None:
        self._pins: dict[str, list[str]] = {}
        self._inner = httpcore.SyncBackend()
        self.deadline: float | None = None

    def pin(self, host: str, ips: Iterable[str]) -> None:
        """Record the checked addresses of ``host``; connections to it go only there."""
        self._pins[normalize_host(host)] = list(ips)

    def pinned(self, host: str) -> list[str] | None:
        """The checked addresses of ``host``, or ``None`` if it was never checked."""
        return self._pins.get(normalize_host(host))

    def clamp(self, timeout: float | None, exc: type[Exception]) -> float | None:
        """``timeout`` cut to what is left before the deadline; raises ``exc`` once it has passed."""
        if self.deadline is None:
            return timeout
        left = self.deadline - clock.monotonic()
        if left <= 0:
            raise exc("the operation's time budget is spent")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect to the first reachable checked address of ``host`` (never to an unchecked one)."""
        ips = self.pinned(host)
        if not ips:
            raise httpcore.ConnectError(f"{host} was not checked by the egress guard")
        failure: Exception | None = None
        for ip in ips:
            wait = self.clamp(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(ip, port, wait, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self)
        raise failure or httpcore.ConnectError(f"no address of {host} could be connected")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Unix sockets are never a vendor destination."""
        raise httpcore.ConnectError("unix sockets are not allowed for outbound calls")

    def sleep(self, seconds: float) -> None:
        """Sleep, as httpcore's connection retries expect."""
        clock.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every blocking call ends by the backend's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, backend: PinnedBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._backend.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._backend.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        wait = self._backend.clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, wait), self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


_EXC_MAP: list[tuple[type[Exception], type[httpx.HTTPError]]] = [
    # most specific first
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProtocolError, httpx.ProtocolError),
]


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _EXC_MAP:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _Body(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport over httpcore whose connections go through a :class:`PinnedBackend`."""

    def __init__(self, ssl_context: ssl.SSLContext, backend: PinnedBackend) -> None:
        self.backend = backend
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            network_backend=backend,
            max_connections=10,
            max_keepalive_connections=5,
            keepalive_expiry=30.0,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a pinned connection; httpcore errors become httpx errors."""
        if not isinstance(request.stream, httpx.SyncByteStream):
            raise TypeError("the pinned transport sends synchronous request bodies only")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = self._pool.handle_request(core_request)
        if not isinstance(response.stream, Iterable):
            raise TypeError("httpcore answered without a synchronous body stream")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()
