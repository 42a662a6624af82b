"""The console's browser-test harness: PMAP as a real process, the vendor sandbox, Debian's chromium.

PMAP runs as ``python -m pmap.cli serve`` on the embedded SQLite default (what ``make run`` serves) with a
platform key and a bootstrap admin token made here at run time, its log kept for the canary hunt. Chromium
is driven by Playwright with ``executable_path`` set to Debian's browser (no browser is ever downloaded);
every request a page makes is recorded, and the pages' screenshots go to ``build/screenshots/`` (not
committed) for a reviewer to look at.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, Request, Route, expect

from pmap.connectors.base import secret_field_names
from pmap.connectors.catalog import connector_types
from pmap.core.crypto import generate_key
from tests.webhooks.conftest import integration_body

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = os.environ.get("PMAP_TEST_CHROMIUM", "/usr/bin/chromium")
#: flags for a headless chromium on a machine with no network and no screen: nothing phones home
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage"]
LOOPBACK = "127.0.0.1"


def chromium_or_fail() -> str:
    """Debian's chromium: `make test` installs it (scripts/ensure-chromium.sh); its absence fails the tests."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A PMAP process serving the console and the API."""

    base_url: str
    admin_token: str
    platform_key: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, method: str, path: str, role: str = "admin", **kw: Any) -> httpx.Response:
        """Call the API as ``role`` with a bearer token (set-up steps, not the journeys themselves)."""
        token = self.admin_token if role == "admin" else self.tokens[role]
        return httpx.request(method, f"{self.base_url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"},
                             timeout=30, trust_env=False, **kw)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_server(tmp: Path, extra_env: dict[str, str] | None = None, *, admin: str | None = None,
                 platform_key: str | None = "new") -> Server:
    """Start ``pmapctl serve`` on a free port with the data directory ``tmp/data`` (fresh, unless an earlier server
    of the same ``tmp`` left one: then pass its ``admin`` token); waits for /readyz. ``platform_key``: a key, "new"
    for a fresh one, or None for no keyring (the keys come from ``extra_env``, e.g. an HSM's)."""
    port = free_port()
    admin = admin or "pmap_" + secrets.token_urlsafe(32)
    key = generate_key() if platform_key == "new" else platform_key
    data = tmp / "data"
    log_path = tmp / "pmap.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAP_")}
    if key is not None:
        env["PMAP_PLATFORM_KEY"] = key
    env.update({"PMAP_ENV": "development", "PMAP_DATA_DIR": str(data),
                "PMAP_BOOTSTRAP_ADMIN_TOKEN": admin, "PMAP_PUBLIC_BASE_URL": f"http://{LOOPBACK}:{port}",
                "PMAP_SCHEDULER_INTERVAL": "1", "PMAP_SCAN_POLL_SECONDS": "1", "PMAP_LOG_LEVEL": "INFO",
                **(extra_env or {})})
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pmap.cli", "serve", "--host", LOOPBACK, "--port", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://{LOOPBACK}:{port}", admin, key or "", data, log_path, proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pmapctl serve exited {proc.returncode}: {server.log_text()[-2000:]}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=2, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        server.stop()
        raise RuntimeError(f"pmapctl serve did not become ready: {server.log_text()[-2000:]}")
    for role in ("operator", "viewer"):
        r = server.api("POST", "/tokens", json={"name": f"console {role}", "role": role})
        assert r.status_code == 201, r.text
        server.tokens[role] = r.json()["token"]
    server.tokens["admin"] = admin
    return server


@dataclass
class Watched:
    """A browser context and page whose every request, console message and page error is kept."""

    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)  # alert/confirm/prompt messages (dismissed): markup that ran
    bodies: list[str] = field(default_factory=list)  # every same-origin response body (pages and fragments)
    headers: list[str] = field(default_factory=list)


def watch(browser: Browser, base_url: str) -> Watched:
    """A fresh context (no storage, no cookies) at 1280x800 with everything it does recorded."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    watched = Watched(context, page)

    def on_request(request: Request) -> None:
        watched.requests.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        watched.console.append(f"{message.type}: {message.text}")

    def on_response(response: Any) -> None:
        if not response.url.startswith(base_url):
            return
        watched.headers.append(repr(sorted(response.headers.items())))
        try:
            if response.request.resource_type in ("document", "fetch", "xhr"):
                watched.bodies.append(response.text())
        except Exception:  # noqa: S110 - a redirect or an aborted request has no body to hunt in
            pass

    context.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    context.on("response", on_response)
    return watched


def sign_in(watched: Watched, token: str) -> Page:
    """Sign in through the form, as a person would; lands on the integrations list."""
    page = watched.page
    page.goto("/sign-in")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/integrations$"))
    return page


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot for reviewers, in build/screenshots/ (not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def settle(page: Page) -> None:
    """Wait until the page's script drew it (its loading placeholder is gone)."""
    expect(page.locator("#app .loading")).to_have_count(0, timeout=15_000)


class FirstRequestHeld:
    """Holds the first request a page makes to ``pattern`` until :meth:`release` (later ones pass): makes a
    page's slow first answer certain, so a test can act while it is in flight and let it arrive last."""

    def __init__(self, page: Page, pattern: str) -> None:
        self.page = page
        self.held: list[Route] = []
        page.route(pattern, self._hold_the_first)

    def _hold_the_first(self, route: Route) -> None:
        if self.held:
            route.continue_()
        else:
            self.held.append(route)

    def wait(self) -> None:
        """Wait until the first request is held (the page sends it once it has drawn its form)."""
        deadline = time.monotonic() + 15
        while not self.held:
            assert time.monotonic() < deadline, "the page sent no such request"
            self.page.wait_for_timeout(25)

    def release(self) -> None:
        """Let the held request go on (the page may have aborted it meanwhile), and wait for the network."""
        self.held[0].continue_()
        self.page.wait_for_load_state("networkidle")


def storage_dump(watched: Watched) -> str:
    """Everything the browser stores for the origin: cookies, localStorage, sessionStorage, IndexedDB names."""
    state = watched.context.storage_state()
    session = watched.page.evaluate("() => JSON.stringify(Object.assign({}, window.sessionStorage))")
    return repr(state) + session




def create_integration(server: Server, sandbox_base: str, vendor: str, *, marker: str = "ok",
                       name: str | None = None, role: str = "admin") -> dict[str, Any]:
    """Create an integration of ``vendor`` against the sandbox through the API (a journey's set-up); its JSON.
    ``marker`` picks the sandbox's scenario (``ok``, ``managed``, ``bad``...), as in tests/webhooks."""
    return create_integration_with_secrets(server, sandbox_base, vendor, marker=marker, name=name, role=role)[0]


def create_integration_with_secrets(server: Server, sandbox_base: str, vendor: str, *, marker: str = "ok",
                                    name: str | None = None, role: str = "admin") -> tuple[dict[str, Any], list[str]]:
    """:func:`create_integration`, and the secret values it was given (the canaries a journey hunts)."""
    body = integration_body(vendor, sandbox_base, marker, name)
    r = server.api("POST", "/integrations", role=role, json=body)
    assert r.status_code == 201, r.text
    secret_names = set(secret_field_names(connector_types()[vendor].credentials_model))
    return r.json(), [v for k, v in body["credentials"].items() if k in secret_names and v]


def assert_no_secret(watched: Watched, server: Server, secrets: list[str]) -> None:
    """After a journey: no secret in any page's HTML, any fragment (API answer), any response header, any URL
    the browser asked for, the browser's storage, or PMAP's log."""
    places = {
        "page HTML": [watched.page.content()],
        "responses": watched.bodies,
        "response headers": watched.headers,
        "request URLs": watched.requests,
        "browser storage": [storage_dump(watched)],
        "PMAP's log": [server.log_text()],
    }
    for secret in secrets:
        assert len(secret) >= 8, "a canary this short could match by chance"
        for place, texts in places.items():
            assert not any(secret in text for text in texts), f"a secret showed in {place}"
