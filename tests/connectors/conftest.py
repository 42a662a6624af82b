"""Fixtures shared by the connector tests: the whole vendor sandbox (plain http and TLS), development
settings, PMAP's log handler, and a closed loopback port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pmap.core.logs import configure_logging
from pmap.core.settings import Settings
from pmap_sandbox.server import SandboxServer, build_app


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """Every simulated vendor on plain http."""
    with SandboxServer(build_app()) as server:
        yield server


@pytest.fixture(scope="session")
def tls_sandbox() -> Iterator[SandboxServer]:
    """Every simulated vendor on https with a throw-away self-signed certificate."""
    with SandboxServer(build_app(), tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def dev_settings() -> Settings:
    """Development settings: loopback destinations are allowed."""
    return Settings(env="development", database_url="sqlite://", platform_key=None)


@pytest.fixture()
def pmap_logs() -> None:
    """PMAP's redacting log handler on the root logger, at DEBUG so every line is seen."""
    configure_logging(production=False, level="DEBUG")


@pytest.fixture()
def closed_port() -> int:
    """A loopback port nothing listens on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return int(port)
