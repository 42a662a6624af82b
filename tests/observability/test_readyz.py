"""GET /readyz: 200 with each check when the database and the key provider answer, 503 naming the failed
check (by class name only) when the database is really down, unreachable, hung or lost its schema, and 200
again once it is back. No token, nothing secret."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from bench.common import free_port
from pmap.app import create_app
from pmap.core.crypto import generate_key
from pmap.core.health import MAX_IN_FLIGHT, Bounded, Busy, DeadlineExceeded
from pmap.core.settings import Settings
from pmap.migrations import upgrade
from tests.conftest import PG_URL, Api
from tests.observability.conftest import value

TIMEOUT = 1.0


class Forwarder:
    """A loopback TCP relay to PostgreSQL that a test can stop (connections refused and cut), pause
    (connections accepted, bytes held: a hung server) and start again on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.paused = threading.Event()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.paused.is_set():
                    time.sleep(0.01)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relayed(tmp_path: Path) -> Iterator[tuple[TestClient, Forwarder, str]]:
    """PMAP on a PostgreSQL schema of its own, reached through a relay; the client, the relay, the schema."""
    schema = f"pmap_r_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    direct = f"{PG_URL}?options=-csearch_path%3D{schema}"
    upgrade(direct)
    relay = Forwarder(("127.0.0.1", admin.url.port or 5432))
    relay.start()
    url = admin.url.set(port=relay.port).render_as_string(hide_password=False)
    settings = Settings(env="production", database_url=f"{url}?options=-csearch_path%3D{schema}",
                        data_dir=tmp_path / "data", platform_key=generate_key(), readiness_timeout=TIMEOUT)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield client, relay, schema
            relay.paused.clear()
            relay.stop()
            relay.start()  # the app's shutdown may still use the database
    finally:
        relay.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _ready(client: TestClient) -> tuple[int, dict[str, object]]:
    r = client.get("/readyz")  # no token
    assert r.headers["cache-control"] == "no-store"
    return r.status_code, r.json()


def _ready_unless_slow(client: TestClient, attempts: int = 10) -> tuple[int, dict[str, object]]:
    """:func:`_ready`, asked again while the database check only ran out of its 1 s (a loaded machine), so a
    test sees the condition it made, not the machine's speed."""
    for _ in range(attempts - 1):
        code, body = _ready(client)
        checks = body.get("checks")
        database = checks.get("database") if isinstance(checks, dict) else None
        if not isinstance(database, dict) or database.get("error") != "timeout":
            return code, body
    return _ready(client)


def test_readyz_answers_each_check_without_a_token_and_nothing_secret(api: Api) -> None:
    code, body = _ready(api.client)
    assert code == 200 and body["status"] == "ready"
    checks = body["checks"]
    assert isinstance(checks, dict) and set(checks) == {"database", "keyring"}
    for result in checks.values():
        assert set(result) == {"status", "seconds"} and result["status"] == "ok"
    raw = api.client.get("/readyz").text
    settings = api.state.settings
    assert settings.platform_key is not None
    for secret in (settings.platform_key.get_secret_value(), api.state.keys.primary.id, settings.resolved_database_url,
                   "postgres", "sqlite", str(settings.data_dir)):
        assert secret not in raw
    assert api.client.get("/healthz").status_code == 200  # unchanged beside it


@pytest.mark.postgres
def test_readyz_fails_while_the_database_is_down_and_recovers(relayed: tuple[TestClient, Forwarder, str]) -> None:
    client, relay, _schema = relayed
    assert _ready(client)[0] == 200
    relay.stop()  # refused, and every open connection cut
    code, body = _ready(client)
    assert code == 503 and body["status"] == "unavailable"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["database"]["status"] == "failed" and checks["database"]["error"] == "OperationalError"
    assert checks["keyring"]["status"] == "ok"
    raw = client.get("/readyz").text
    assert str(relay.port) not in raw and "127.0.0.1" not in raw and "postgres" not in raw.lower()
    scraped = client.get("/metrics")  # a scrape still answers, without the sync lag, and counts the failed read
    assert scraped.status_code == 200 and value(scraped.text, "pmap_sync_lag_read_errors_total") == 1
    relay.start()
    assert _ready(client)[0] == 200


@pytest.mark.postgres
def test_readyz_fails_at_its_deadline_when_the_database_hangs(relayed: tuple[TestClient, Forwarder, str]) -> None:
    client, relay, _schema = relayed
    assert _ready(client)[0] == 200
    relay.paused.set()  # connections open, nothing answers
    started = time.monotonic()
    code, body = _ready(client)
    took = time.monotonic() - started
    assert code == 503 and body["checks"]["database"] == {"status": "failed", "error": "timeout",  # type: ignore[index]
                                                          "seconds": pytest.approx(TIMEOUT, abs=0.5)}
    assert took < TIMEOUT + 1.5
    relay.paused.clear()
    deadline = time.monotonic() + 10
    while _ready(client)[0] != 200:
        assert time.monotonic() < deadline, "readyz did not recover"
        time.sleep(0.1)


@pytest.mark.postgres
def test_readyz_reads_the_schema_not_just_the_connection(relayed: tuple[TestClient, Forwarder, str]) -> None:
    client, _relay, schema = relayed
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        code, body = _ready_unless_slow(client)
        assert code == 503 and body["checks"]["database"]["error"] == "ProgrammingError"  # type: ignore[index]
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        upgrade(f"{PG_URL}?options=-csearch_path%3D{schema}")
        assert _ready_unless_slow(client)[0] == 200
    finally:
        admin.dispose()


def test_bounded_calls_give_up_at_the_deadline_and_refuse_when_too_many_hang() -> None:
    bounded = Bounded("t", 0.2)
    release = threading.Event()
    try:
        for _ in range(MAX_IN_FLIGHT):
            with pytest.raises(DeadlineExceeded):
                bounded(release.wait)
        started = time.monotonic()
        with pytest.raises(Busy):  # no fifth thread while four hang
            bounded(lambda: None)
        assert time.monotonic() - started < 0.1
        release.set()
        deadline = time.monotonic() + 5
        while True:
            try:
                assert bounded(lambda: 42) == 42
                break
            except Busy:
                assert time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        release.set()
        bounded.shutdown()
