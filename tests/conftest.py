"""Shared fixtures: real SQLite and PostgreSQL databases, a keyring made at run time, an app client, the test
Redis."""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from pmap.app import create_app
from pmap.core import clock
from pmap.core.crypto import generate_key
from pmap.core.db import Base
from pmap.core.settings import Settings
from pmap.core.state import AppState
from pmap.migrations import upgrade
from pmap.webhooks import ratelimit
from pmap_sandbox.scenarios import MARKERS

PG_URL = os.environ.get("PMAP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PMAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("PMAP_CORPUS_DIR", REPO.parent / "shared" / "corpus"))


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, migrated to nothing yet (for tests of one migration's data step)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    schema = f"pmap_m_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(PG_URL, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL schema of its own for this test run, migrated to head, dropped afterwards."""
    schema = f"pmap_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # pragma: no cover - make test ensures PostgreSQL
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL}: {exc}")
    url = _with_search_path(PG_URL, schema)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@dataclass
class LiveRedis:
    """The test Redis: its URL, a client, and the key prefix of this test's webhook budgets."""

    url: str
    client: redis.Redis
    prefix: str


@pytest.fixture
def shared_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveRedis]:
    """The test Redis, the webhook budgets' keys under a prefix of this test's own (so parallel workers and
    runs never share a bucket), every key under it deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:  # pragma: no cover - the test machine runs Redis
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = f"pmap-test:{uuid.uuid4().hex}:ratelimit"
    monkeypatch.setattr(ratelimit, "PREFIX", prefix)
    yield LiveRedis(REDIS_URL, client, prefix)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file for this test run."""
    path = tmp_path_factory.mktemp("sqlite") / "pmap.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def _truncate(url: str) -> None:
    engine = create_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # table names come from the models' metadata, never from input
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
        else:
            for t in tables:
                conn.execute(text(f'DELETE FROM "{t}"'))  # noqa: S608  # a model's table name, not input
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL, starting from empty tables."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_schema_url")
    _truncate(url)
    return url


@pytest.fixture
def platform_key() -> str:
    return generate_key()


@pytest.fixture
def settings(db_url: str, platform_key: str, tmp_path: Path) -> Settings:
    return Settings(
        env="development", database_url=db_url, data_dir=tmp_path / "data", platform_key=platform_key,
        bootstrap_admin_token=None,
        # no background scheduler in tests: a schedule a test sets must not start a sync of its own accord
        # (tests/schedules runs the scheduler where it is the subject)
        scheduler_enabled=False,
    )


@dataclass
class Api:
    """A test client plus helpers to mint tokens."""

    client: TestClient

    @property
    def app(self) -> FastAPI:
        return cast(FastAPI, self.client.app)

    @property
    def state(self) -> AppState:
        return cast(AppState, self.app.state.pmap)

    def token(self, org: str = "acme", role: str = "admin") -> dict[str, str]:
        from pmap.auth.principal import Role
        from pmap.auth.service import get_or_create_org, issue_token
        from pmap.core.db import transaction

        with transaction(self.state.sessions) as session:
            issued = issue_token(session, get_or_create_org(session, org), Role(role), f"test-{role}")
            value = issued.token
        return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Api(client)


@pytest.fixture
def make_api(settings: Settings) -> Iterator[Callable[..., Api]]:
    """Another app on the same database with some settings changed."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> Api:
        client = TestClient(create_app(settings.model_copy(update=overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return Api(client)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


class VirtualClock:
    """pmap.core.clock on virtual time: a wait is recorded and moves the clock on at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._offset = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
            self._offset += max(0.0, seconds)


@pytest.fixture
def virtual_clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Waits and deadlines of PMAP's code (retries, backoff, export polls) run on virtual time."""
    virtual = VirtualClock()
    monkeypatch.setattr(clock, "monotonic", virtual.monotonic)
    monkeypatch.setattr(clock, "sleep", virtual.sleep)
    return virtual


def marker_free_hex(nbytes: int) -> str:
    """Random hex that spells no sandbox scenario marker ("bad" is all hex letters)."""
    while True:
        value = secrets.token_hex(nbytes)
        if not any(marker in value for marker in MARKERS):
            return value


def canary(label: str = "") -> str:
    """A unique, greppable secret value, never carrying a sandbox scenario marker by chance (hex can spell
    "bad", which would make the sandbox refuse it: one canary in ~200 did)."""
    prefix = f"CANARY{label}"
    chance = [marker for marker in MARKERS if marker not in prefix.lower()]  # a label's marker is meant
    while True:
        value = prefix + secrets.token_hex(12)
        if not any(marker in value.lower() for marker in chance):
            return value


def without_actor(params: dict[str, Any]) -> dict[str, Any]:
    """A job's params less who asked (kind, name, token id: never a token), after checking that is all it holds."""
    actor = params.get("actor")
    assert isinstance(actor, dict) and set(actor) == {"kind", "name", "token_id"}
    return {k: v for k, v in params.items() if k != "actor"}
