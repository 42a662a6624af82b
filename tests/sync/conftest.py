"""Fixtures of the sync tests: a sandbox of their own (they seed it), integrations pointing at it, and
helpers to request a sync and wait for its job."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
import pytest

from pmap_sandbox.server import SandboxServer, build_app
from tests.conftest import Api
from tests.connectors.work.cases import sandbox_key, settings_for

JOB_WAIT_SECONDS = 60.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    """Every simulated vendor on plain http, for this module alone (its tests seed vendors' data)."""
    with SandboxServer(build_app()) as server:
        yield server


@pytest.fixture()
def seed(sandbox: SandboxServer) -> Iterator[Any]:
    """``seed(vendor, count, fixed=[...], at=unix seconds)`` gives a sandbox vendor ``count`` findings, their
    changes stamped ``at`` (default now); the sandbox's state is reset first."""
    httpx.post(f"{sandbox.base_url}/_sandbox/reset", timeout=10).raise_for_status()

    def seed(vendor: str, count: int, fixed: list[int] | None = None, at: float | None = None) -> None:
        httpx.post(f"{sandbox.base_url}/_sandbox/seed/{vendor}",
                   json={"count": count, "fixed": fixed or [], "at": at}, timeout=10).raise_for_status()

    yield seed


def unique(marker: str = "ok") -> str:
    """A credential value with ``marker`` (the sandbox's scenario) that no other test uses."""
    return f"sync-{marker}-{uuid.uuid4().int % 10**12:012d}"


def integration(api: Api, headers: dict[str, str], sandbox: SandboxServer, vendor: str,
                credentials: dict[str, str], *, enabled: bool = True, **connection: Any) -> str:
    """Create an integration of ``vendor`` against the sandbox; its id."""
    body = {"name": f"{vendor}-{uuid.uuid4().hex[:8]}", "vendor": vendor, "enabled": enabled,
            "connection": {"base_url": sandbox.url(vendor), **connection}, "credentials": credentials}
    resp = api.client.post("/api/v1/integrations", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def start_sync(api: Api, headers: dict[str, str], integration_id: str, **body: Any) -> httpx.Response:
    """``POST /integrations/{id}/sync`` with ``body`` (none when empty)."""
    kwargs: dict[str, Any] = {"json": body} if body else {}
    return api.client.post(f"/api/v1/integrations/{integration_id}/sync", headers=headers, **kwargs)


def wait_job(api: Api, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    """The job once it has finished (succeeded or failed)."""
    deadline = time.monotonic() + JOB_WAIT_SECONDS
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {JOB_WAIT_SECONDS} s")


def sync(api: Api, headers: dict[str, str], integration_id: str, **body: Any) -> dict[str, Any]:
    """Request a sync, expect 202, and return its finished job."""
    resp = start_sync(api, headers, integration_id, **body)
    assert resp.status_code == 202, resp.text
    return wait_job(api, headers, resp.json()["job"]["id"])


def vendor_state(sandbox: SandboxServer, vendor: str, factory: type[T]) -> T:
    """The sandbox's in-memory data of ``vendor`` (created as its routes would on first use)."""
    root = getattr(sandbox.app.state, "sandbox_store", None)
    if root is None:
        root = {}
        sandbox.app.state.sandbox_store = root
    slots = root.setdefault(sandbox_key(vendor), {})
    found: T = slots.setdefault(factory.__qualname__, factory())
    return found


@pytest.fixture()
def fresh(sandbox: SandboxServer) -> SandboxServer:
    """The sandbox with its seeded state only."""
    httpx.post(f"{sandbox.base_url}/_sandbox/reset", timeout=10).raise_for_status()
    return sandbox


def pipeline_integration(api: Api, headers: dict[str, str], sandbox: SandboxServer, vendor: str,
                         marker: str = "ok", **connection: Any) -> tuple[str, dict[str, str]]:
    """A pipeline integration of ``vendor`` against the sandbox: its id and credentials."""
    settings, credentials = settings_for(vendor, sandbox.base_url, marker, **connection)
    body = {"name": f"{vendor}-{uuid.uuid4().hex[:8]}", "vendor": vendor, "connection": settings,
            "credentials": credentials}
    resp = api.client.post("/api/v1/integrations", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"]), credentials
