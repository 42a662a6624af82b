"""Fixtures: one sandbox server with the work-tool routers, an httpx client, a webhook receiver."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import pytest

from pmap_sandbox.server import SandboxServer, build_app
from pmap_sandbox.work import SANDBOX_VENDORS, build_routers
from tests.loopback_receiver import Receiver, serve_receiver


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


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 and a free port."""
    with serve_receiver("/hook") as rec:
        yield rec
