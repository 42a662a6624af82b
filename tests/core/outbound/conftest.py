"""Loopback HTTP(S) servers and DNS fakes for the outbound-layer tests."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Route = Callable[["Handler"], None]


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TestServer

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append(Seen(self.command, self.path, headers, body))
        route = self.server.routes.get(self.path.split("?", 1)[0], self.server.default)
        route(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    def reply(self, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None) -> None:
        """Send a complete response with a Content-Length."""
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class TestServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[Seen] = []
        self.routes: dict[str, Route] = {}
        self.release = threading.Event()  # slow handlers wait on it; set at teardown
        self.default: Route = lambda h: h.reply(200, b'{"ok": true}', {"Content-Type": "application/json"})
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up mid-response are expected here

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}"


def _serve(server: TestServer) -> Iterator[TestServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[TestServer]:
    """A plain HTTP server on 127.0.0.1 with configurable routes."""
    yield from _serve(TestServer())


@dataclass
class TlsMaterial:
    cert_pem: str
    cert_file: Path
    key_file: Path


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """A self-signed certificate for ``localhost`` made at run time (also usable as its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (folder / "cert.pem").write_text(pem)
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return TlsMaterial(pem, folder / "cert.pem", folder / "key.pem")


@pytest.fixture
def tls_server(tls_material: TlsMaterial) -> Iterator[TestServer]:
    """An HTTPS server on 127.0.0.1 presenting the self-signed ``localhost`` certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_material.cert_file, tls_material.key_file)
    yield from _serve(TestServer(ctx))


@dataclass
class FakeDns:
    """Answers chosen names with chosen addresses (a list per call); everything else is real DNS."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def set(self, name: str, *per_call: list[str]) -> None:
        self.answers[name] = list(per_call)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Patch ``socket.getaddrinfo``: later calls for a name get the later answers (the last repeats)."""
    dns = FakeDns()
    real = socket.getaddrinfo

    def fake(host: str, port: object, *args: object, **kw: object) -> list[tuple[object, ...]]:
        dns.calls.append(str(host))
        if host in dns.answers:
            queue = dns.answers[host]
            ips = queue.pop(0) if len(queue) > 1 else queue[0]
            out: list[tuple[object, ...]] = []
            for ip in ips:
                family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                addr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
                out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", addr))
            return out
        return list(real(host, port, *args, **kw))  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return dns


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record every address a TCP connection is opened to (the connection still happens)."""
    seen: list[tuple[str, int]] = []
    real = socket.create_connection

    def spy(address: tuple[str, int], *args: object, **kw: object) -> socket.socket:
        seen.append(address)
        return real(address, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", spy)
    return seen


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make any DNS lookup or socket connect fail the test loudly; returns what was attempted."""
    attempts: list[str] = []

    def forbid(name: str) -> Callable[..., object]:
        def boom(*args: object, **kw: object) -> object:
            attempts.append(name)
            raise AssertionError(f"{name} was called: a packet would have been sent")
        return boom

    monkeypatch.setattr(socket, "getaddrinfo", forbid("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", forbid("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", forbid("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", forbid("socket.connect_ex"))
    return attempts
