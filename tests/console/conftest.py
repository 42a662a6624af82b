"""Fixtures of the console's browser tests: one PMAP process, one vendor sandbox, one chromium per worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from pmap_sandbox.server import SandboxServer, build_app
from tests.console.harness import CHROMIUM_ARGS, Server, Watched, chromium_or_fail, sign_in, start_server, watch


@pytest.fixture(scope="session")
def console_sandbox() -> Iterator[SandboxServer]:
    """Every simulated vendor on a free loopback port."""
    with SandboxServer(build_app()) as server:
        yield server


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """PMAP serving the console on the embedded SQLite default."""
    server = start_server(tmp_path_factory.mktemp("console"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's chromium, headless, that never reaches beyond loopback on its own."""
    b = playwright_driver.chromium.launch(executable_path=chromium_or_fail(), args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture()
def signed_in(browser: Browser, console_server: Server) -> Iterator[Callable[[str], Watched]]:
    """signed_in(role) -> a fresh browser context signed in with that role's token, watched."""
    opened: list[Watched] = []

    def open_as(role: str) -> Watched:
        watched = watch(browser, console_server.base_url)
        opened.append(watched)
        sign_in(watched, console_server.tokens[role])
        return watched

    yield open_as
    for w in opened:
        w.context.close()
