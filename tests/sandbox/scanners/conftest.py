"""Fixtures: one sandbox server with the scanner routers, an httpx client, a webhook receiver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from pmap_sandbox.scanners import ROUTERS, SANDBOX_VENDORS
from pmap_sandbox.server import SandboxServer, build_app
from tests.loopback_receiver import Receiver, serve_receiver


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


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 and a free port."""
    with serve_receiver("/hook") as rec:
        yield rec
