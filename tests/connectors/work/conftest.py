"""Fixtures of the work-tracker and CI/CD connector tests: a loopback receiver recording webhook deliveries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pmap.connectors.base import ConnectionTestResult, OperationContext
from pmap.connectors.runner import operation_context, run_connection_test
from pmap.core.settings import Settings

from .cases import catalog_entry


@dataclass
class Received:
    """One delivery the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A loopback HTTP server answering ``status`` to every POST and keeping what it got."""

    url: str = ""
    status: int = 204
    deliveries: list[Received] = field(default_factory=list)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free loopback port."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            state.deliveries.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/test"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def context(settings: Settings, vendor: str, connection: dict[str, Any], credentials: dict[str, str],
            purpose: str = "connection_test", budget: float | None = None) -> OperationContext:
    """The operation context the app would build."""
    return operation_context(settings, catalog_entry(vendor), connection, credentials, purpose=purpose, budget=budget)


def run_test(settings: Settings, vendor: str, connection: dict[str, Any], credentials: dict[str, str]) -> ConnectionTestResult:
    """A connection test through the runner, as the API runs it."""
    return run_connection_test(context(settings, vendor, connection, credentials), catalog_entry(vendor))
