"""Fixtures and helpers of the webhook tests: integrations per scheme, signed deliveries, extra apps
with other settings, and PMAP served over real HTTP next to the vendor sandbox."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from bench.common import free_port
from pmap.app import create_app
from pmap.connectors.base import secret_field_names
from pmap.connectors.catalog import connector_types
from pmap.core.settings import Settings
from pmap.webhooks import clock
from pmap.webhooks.schemes import SCHEMES
from pmap_sandbox.scanners import SANDBOX_VENDORS as SCANNER_VENDORS
from pmap_sandbox.server import SandboxServer
from pmap_sandbox.work import SANDBOX_VENDORS as WORK_VENDORS
from tests.conftest import Api

SANDBOX_VENDORS = {**SCANNER_VENDORS, **WORK_VENDORS}
#: the vendor type each scheme is exercised with (the first catalog vendor using it otherwise)
PREFERRED = {"github": "github_issues", "gitlab_token": "gitlab_issues", "jira": "jira_cloud",
             "azure_devops_basic": "azure_boards", "sonarqube": "sonarqube", "snyk": "snyk",
             "servicenow": "servicenow", "standard_webhooks": "jenkins"}
#: connection settings the sandbox's fixtures need beyond the base URL
EXTRA_CONNECTION: dict[str, dict[str, Any]] = {
    "jira_cloud": {"project_key": "SEC"}, "github_issues": {"repository": "acme/webapp"},
    "github": {"repository": "acme/webapp"}, "gitlab_issues": {"project": "acme/webapp"},
    "azure_boards": {"project": "Security"}, "jenkins": {"job": "webapp-security"},
}
#: the event header a sender adds per scheme (verification never depends on it)
EVENT_HEADER = {"github": "X-GitHub-Event", "gitlab_token": "X-Gitlab-Event", "snyk": "X-Snyk-Event"}
TIMESTAMPED = {"servicenow", "standard_webhooks"}


def vendor_for(scheme: str) -> str | None:
    """A catalog vendor type whose deliveries use ``scheme`` (None when no vendor uses it)."""
    types = connector_types()
    preferred = PREFERRED.get(scheme)
    if preferred is not None and preferred in types and types[preferred].webhook_scheme == scheme:
        return preferred
    return next((k for k, ct in types.items() if ct.webhook_scheme == scheme), None)


def unique(prefix: str) -> str:
    """``prefix`` plus digits only (digits never spell a sandbox marker)."""
    return f"{prefix}-{uuid.uuid4().int % 10**12:012d}"


def integration_body(vendor: str, base: str = "http://127.0.0.1:9", marker: str = "ok",
                     name: str | None = None) -> dict[str, Any]:
    """A create-integration body for ``vendor`` pointing at sandbox root ``base``; secrets carry ``marker``."""
    descriptor = SANDBOX_VENDORS.get(vendor, {"base_path": f"/{vendor}", "valid_credentials": {}})
    model = connector_types()[vendor].credentials_model
    secrets = set(secret_field_names(model))
    connection: dict[str, Any] = {**descriptor.get("connection", {}), **EXTRA_CONNECTION.get(vendor, {})}
    if "base_url" in connector_types()[vendor].connection_model.model_fields:
        connection["base_url"] = base + descriptor["base_path"]
    credentials: dict[str, str] = {}
    for field, value in descriptor["valid_credentials"].items():
        if field not in model.model_fields:
            connection[field] = value
        else:
            credentials[field] = unique(marker) if field in secrets else unique("user")
    return {"name": name or unique(vendor), "vendor": vendor, "connection": connection, "credentials": credentials}


def create_integration(client: Any, headers: dict[str, str], vendor: str, **kw: Any) -> str:
    """Create an integration through the API; its id."""
    r = client.post("/api/v1/integrations", json=integration_body(vendor, **kw), headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def signed(scheme: str, body: bytes, secret: str, *, delivery_id: str | None = None, timestamp: int | None = None,
           event: str | None = None) -> dict[str, str]:
    """The headers a vendor using ``scheme`` sends with ``body``."""
    ts = int(clock.now().timestamp()) if timestamp is None else timestamp
    headers = SCHEMES[scheme].sign(body, secret, delivery_id=delivery_id or unique("d"), timestamp=ts)
    headers["Content-Type"] = "application/json"
    if event and scheme in EVENT_HEADER:
        headers[EVENT_HEADER[scheme]] = event
    return headers


def payload(scheme: str, n: int = 0) -> bytes:
    """A distinct body; Azure DevOps carries its delivery id in the body's ``id``."""
    return (b'{"id":"%s","eventType":"git.push","n":%d,"note":"hello"}' % (uuid.uuid4().hex.encode(), n))


def settle(api: Api, timeout: float = 10.0) -> None:
    """Wait until the app's processor has processed every accepted delivery."""
    rt = getattr(cast(FastAPI, api.client.app).state, "webhook_runtime", None)
    if rt is not None:
        assert rt.processor.wait_idle(timeout)


def deliveries(client: Any, headers: dict[str, str], iid: str, **params: Any) -> list[dict[str, Any]]:
    """Every recorded delivery of an integration, newest first."""
    r = client.get(f"/api/v1/integrations/{iid}/webhook/deliveries", params={"limit": 200, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def generic(body: dict[str, Any]) -> dict[str, Any]:
    """An error body without its per-request correlation id."""
    return {k: v for k, v in body["error"].items() if k != "correlation_id"}


@pytest.fixture
def travel(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move the webhooks clock ``seconds`` into the future (cumulative)."""
    offset = [0.0]
    real = clock.now

    def move(seconds: float) -> None:
        offset[0] += seconds
        shift = offset[0]
        from datetime import timedelta

        monkeypatch.setattr(clock, "now", lambda: real() + timedelta(seconds=shift))

    return move


# --- PMAP over real HTTP next to the sandbox ---------------------------------------------------------

@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """Every simulated vendor on one loopback server."""
    with SandboxServer() as server:
        yield server


@dataclass
class Served:
    """PMAP served by uvicorn on loopback (vendors can reach its receiver), with an httpx client."""

    base_url: str
    http: httpx.Client
    app: Any

    @property
    def state(self) -> Any:
        return self.app.state.pmap

    def token(self, org: str = "acme", role: str = "admin") -> dict[str, str]:
        from pmap.auth.principal import Role
        from pmap.auth.service import get_or_create_org, issue_token
        from pmap.core.db import transaction

        with transaction(self.state.sessions) as session:
            value = issue_token(session, get_or_create_org(session, org), Role(role), f"test-{role}").token
        return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    """PMAP on a free loopback port whose PMAP_PUBLIC_BASE_URL is that port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(settings.model_copy(update={"public_base_url": base}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "PMAP did not start"
        time.sleep(0.02)
    with httpx.Client(base_url=base, timeout=60, trust_env=False) as http:
        yield Served(base, http, app)
    server.should_exit = True
    thread.join(timeout=10)
