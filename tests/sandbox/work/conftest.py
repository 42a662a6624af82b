"""Fixtures: one sandbox server with the work-tool routers, an httpx client, a webhook receiver."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pmap.sandbox.server import SandboxServer, build_app
from pmap.sandbox.work import SANDBOX_VENDORS, build_routers

WAIT_SECONDS = 10.0


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """The work-tool part of the sandbox on a free loopback port (fresh routers, fresh state)."""
    with SandboxServer(build_app(build_routers(), SANDBOX_VENDORS)) as server:
        yield server


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    """A plain httpx client that never reads proxy settings and never follows redirects."""
    with httpx.Client(timeout=10.0, trust_env=False, follow_redirects=False) as c:
        yield c


def vendor_url(server: SandboxServer, key: str) -> str:
    """The base URL a PMAP user would configure for ``key``."""
    return server.base_url + SANDBOX_VENDORS[key]["base_path"]


def cred(marker: str = "ok") -> str:
    """A unique credential value carrying ``marker``; digits only after it, so no marker appears by chance."""
    return f"{marker}-{uuid.uuid4().int % 10**12:012d}"


def basic(user: str, password: str) -> dict[str, str]:
    """An HTTP Basic Authorization header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    """A Bearer Authorization header."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Received:
    """One delivery as the receiver saw it: path, lower-cased headers and the raw body."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A loopback HTTP endpoint that records deliveries and answers ``status``."""

    url: str
    status: int = 200
    deliveries: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int) -> list[Received]:
        """Block until ``count`` deliveries arrived (bounded wait); return them."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.deliveries) >= count, timeout=WAIT_SECONDS)
            return list(self.deliveries)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 and a free port."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec = holder["r"]
            with rec.cond:
                rec.deliveries.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                rec.cond.notify_all()
            self.send_response(rec.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(url=f"http://127.0.0.1:{httpd.server_address[1]}/hook")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=WAIT_SECONDS)
