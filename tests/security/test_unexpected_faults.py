"""An unexpected fault answers 500 with a correlation id and nothing internal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pmap.integrations import service
from tests.conftest import Api, canary


def test_500_has_correlation_id_and_no_detail(api: Api, monkeypatch: pytest.MonkeyPatch,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    secret = canary()
    from pmap.core import redaction

    def explode(*_a: object, **_kw: object) -> None:
        with redaction.secrets_in_use([secret]):
            raise RuntimeError(f"database password is {secret} at /srv/pmap/internal.py")

    monkeypatch.setattr(service, "list_page", explode)
    r = api.client.get("/api/v1/integrations", headers=api.token())
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["code"] == "internal_error" and len(err["correlation_id"]) == 32
    assert r.headers["x-correlation-id"] == err["correlation_id"]
    assert secret not in r.text and "internal.py" not in r.text and "RuntimeError" not in r.text
    logs = capfd.readouterr().err
    assert err["correlation_id"] in logs  # the fault is logged, with its correlation id
    assert "RuntimeError" in logs and secret not in logs


def test_a_client_that_leaves_mid_body_is_no_fault(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging

    from starlette.requests import Request
    from starlette.types import Message, Receive, Scope, Send

    from pmap.core.http_errors import RequestContextMiddleware

    async def app(scope: Scope, receive: Receive, _send: Send) -> None:
        await Request(scope, receive).body()

    sent: list[Message] = []
    messages: Iterator[Message] = iter([{"type": "http.request", "body": b"{", "more_body": True},
                                        {"type": "http.disconnect"}])

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/hooks/x", "raw_path": b"/hooks/x", "query_string": b"",
             "headers": [(b"content-length", b"10")]}
    with caplog.at_level(logging.INFO, logger="pmap"):
        asyncio.run(RequestContextMiddleware(app, default_limit=1024, limits=[])(scope, receive, send))
    assert sent == []  # nobody is left to answer
    assert "disconnected" in caplog.text and not [r for r in caplog.records if r.levelno >= logging.ERROR]
