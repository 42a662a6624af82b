"""A loopback HTTP endpoint that records every request it gets (any method: headers and body), shared by
the sandbox, connector and webhook tests. Given an upstream it also forwards each request there and
answers with the upstream's answer: a man in the middle that sees everything sent through it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

WAIT_SECONDS = 10.0


@dataclass
class Received:
    """One request as the receiver saw it: path, lower-cased headers, the raw body and the method."""

    path: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"


@dataclass
class Receiver:
    """Records requests and answers ``status`` (a test may change it), or forwards them to an upstream."""

    url: str
    status: int = 200
    deliveries: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int) -> list[Received]:
        """Block until ``count`` deliveries arrived (bounded wait); return them."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.deliveries) >= count, timeout=WAIT_SECONDS)
            return list(self.deliveries)


#: hop-by-hop and framing headers a forwarding listener does not copy
_HOP = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding",
                  "content-encoding"})


@contextmanager
def serve_receiver(path: str = "/hooks/test", upstream: str | None = None) -> Iterator[Receiver]:
    """A :class:`Receiver` on 127.0.0.1 and a free port, for the duration of the block. With
    ``upstream`` (a base URL) each request is also forwarded to ``upstream`` + its path, and the
    answer relayed with the upstream's address replaced by the receiver's."""
    holder: dict[str, Receiver] = {}
    origin: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec = holder["r"]
            with rec.cond:
                rec.deliveries.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                               self.command))
                rec.cond.notify_all()
            if upstream is None:
                self._answer(rec.status, {}, b"")
            else:
                self._forward(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _record

        def _forward(self, body: bytes) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            assert upstream is not None  # _record forwards only when there is an upstream
            got = httpx.request(self.command, upstream.rstrip("/") + self.path, headers=headers,
                                content=body, timeout=WAIT_SECONDS, trust_env=False)
            mine, theirs = origin[0], str(httpx.URL(upstream).copy_with(path="/", query=None)).rstrip("/")
            out = {k: v.replace(theirs, mine) for k, v in got.headers.items() if k.lower() not in _HOP}
            self._answer(got.status_code, out, got.content.replace(theirs.encode(), mine.encode()))

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    with serve_handler(Handler) as base:
        origin.append(base)
        holder["r"] = Receiver(url=f"{base}{path}")
        yield holder["r"]


@contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on 127.0.0.1 and a free port in a thread, for the duration of the block; yields
    its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=WAIT_SECONDS)
