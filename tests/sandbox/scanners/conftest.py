"""Fixtures: one sandbox server with the scanner routers, an httpx client, a webhook receiver."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pmap.sandbox.scanners import ROUTERS, SANDBOX_VENDORS
from pmap.sandbox.server import SandboxServer, build_app

WAIT_SECONDS = 10.0


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """The scanner part of the sandbox on a free loopback port."""
    with SandboxServer(build_app(ROUTERS, SANDBOX_VENDORS)) as server:
        yield server


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    """A plain httpx client that never reads proxy settings from the environment."""
    with httpx.Client(timeout=10.0, trust_env=False) as c:
        yield c


def vendor_url(server: SandboxServer, key: str) -> str:
    """The base URL a PMAP user would configure for ``key``."""
    return server.base_url + SANDBOX_VENDORS[key]["base_path"]


def cred(marker: str = "ok") -> str:
    """A unique credential value carrying ``marker`` (unique so rate-limit counters never collide).

    Digits only after the marker: hex could spell ``bad`` by chance.
    """
    return f"{marker}-{uuid.uuid4().int % 10**12:012d}"


@dataclass
class Received:
    """One delivery as the receiver saw it: raw body bytes and headers."""

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
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            rec = state["r"]
            with rec.cond:
                rec.deliveries.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                rec.cond.notify_all()
            self.send_response(rec.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["r"] = Receiver(url=f"http://127.0.0.1:{httpd.server_address[1]}/hook")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state["r"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=WAIT_SECONDS)
