"""Fixtures of the scanner connector tests: a loopback webhook receiver and runner shortcuts."""

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


def context(settings: Settings, vendor: str, connection: dict[str, Any], credentials: dict[str, str],
            purpose: str = "connection_test", budget: float | None = None) -> OperationContext:
    """The operation context the app would build."""
    return operation_context(settings, catalog_entry(vendor), connection, credentials, purpose=purpose, budget=budget)


def run_test(settings: Settings, vendor: str, connection: dict[str, Any],
             credentials: dict[str, str]) -> ConnectionTestResult:
    """A connection test through the runner, as the API runs it."""
    return run_connection_test(context(settings, vendor, connection, credentials), catalog_entry(vendor))


# --- a webhook receiver ----------------------------------------------------------------------------

WAIT_SECONDS = 10.0


@dataclass
class Delivery:
    """One delivery as received: headers (lower-cased names) and the raw body."""

    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A loopback endpoint recording deliveries."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int) -> list[Delivery]:
        """Block (bounded) until ``count`` deliveries arrived; return what arrived."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.deliveries) >= count, timeout=WAIT_SECONDS)
            return list(self.deliveries)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 answering 200."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec = holder["r"]
            with rec.cond:
                rec.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
                rec.cond.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(url=f"http://127.0.0.1:{httpd.server_address[1]}/hooks/test")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=WAIT_SECONDS)
