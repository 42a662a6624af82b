"""Downloads into a file (``sink``): a 2xx body streams to the file within the size cap and memory stays
bounded; other answers are read as usual; a retry starts the file again."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from pmap.core.egress import EgressPolicy
from pmap.core.errors import UpstreamError
from pmap.core.outbound import OutboundClient, OutboundConfig

from .conftest import Handler, Route

DEV = OutboundConfig(policy=EgressPolicy(production=False), timeout=30.0, budget=60.0)
CHUNK = bytes(range(256)) * 256  # 64 KiB, sent again and again: the server holds no large body
LARGE = 48 * 1024 * 1024


def _stream(total: int) -> Route:
    def route(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/zip")
        h.send_header("Content-Length", str(total))
        h.end_headers()
        for _ in range(total // len(CHUNK)):
            h.wfile.write(CHUNK)
    return route


def test_a_large_download_streams_to_the_file_with_bounded_memory(server, tmp_path: Path) -> None:
    server.routes["/artifact.zip"] = _stream(LARGE)
    target = tmp_path / "artifact.zip"
    with OutboundClient(server.url(), DEV) as client, open(target, "w+b") as fh:
        tracemalloc.start()
        try:
            response = client.get("/artifact.zip", max_bytes=LARGE, sink=fh)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status == 200 and response.content == b""
    assert target.stat().st_size == LARGE
    with open(target, "rb") as fh:
        assert fh.read(len(CHUNK)) == CHUNK
    assert peak < 8 * 1024 * 1024, f"the download held {peak} bytes in memory"


def test_the_size_cap_holds_for_a_file_too(server, tmp_path: Path) -> None:
    server.routes["/artifact.zip"] = _stream(4 * len(CHUNK))
    with OutboundClient(server.url(), DEV) as client, open(tmp_path / "a", "w+b") as fh, \
            pytest.raises(UpstreamError) as err:
        client.get("/artifact.zip", max_bytes=len(CHUNK), sink=fh)
    assert err.value.step == "response"


def test_an_error_answer_is_read_as_usual_and_not_written(server, tmp_path: Path) -> None:
    server.routes["/artifact.zip"] = lambda h: h.reply(404, '{"message": "Not Found"}')
    target = tmp_path / "a"
    with OutboundClient(server.url(), DEV) as client, open(target, "w+b") as fh:
        response = client.get("/artifact.zip", sink=fh)
    assert response.status == 404 and response.json() == {"message": "Not Found"}
    assert target.stat().st_size == 0


def test_a_retry_starts_the_file_again(server, tmp_path: Path) -> None:
    calls: list[int] = []

    def flaky(h: Handler) -> None:
        calls.append(1)
        if len(calls) == 1:
            h.reply(503, "busy", {"Retry-After": "0"})
        else:
            h.reply(200, b"PK-the-archive")

    server.routes["/artifact.zip"] = flaky
    target = tmp_path / "a"
    with open(target, "w+b") as fh:
        fh.write(b"left over from before")
        with OutboundClient(server.url(), DEV) as client:
            response = client.get("/artifact.zip", sink=fh)
    assert response.status == 200 and target.read_bytes() == b"PK-the-archive"
