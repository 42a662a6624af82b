"""A loopback HTTP endpoint that records webhook deliveries, shared by the sandbox and connector tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WAIT_SECONDS = 10.0


@dataclass
class Received:
    """One delivery as the receiver saw it: path, lower-cased headers and the raw body."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records deliveries and answers ``status`` (a test may change it)."""

    url: str
    status: int = 200
    deliveries: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int) -> list[Received]:
        """Block until ``count`` deliveries arrived (bounded wait); return them."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.deliveries) >= count, timeout=WAIT_SECONDS)
            return list(self.deliveries)


@contextmanager
def serve_receiver(path: str = "/hooks/test") -> Iterator[Receiver]:
    """A :class:`Receiver` on 127.0.0.1 and a free port, for the duration of the block."""
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

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(url=f"http://127.0.0.1:{httpd.server_address[1]}{path}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=WAIT_SECONDS)
