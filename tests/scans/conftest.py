"""Fixtures of the scan launch tests: a sandbox of their own, integrations pointing at it, and helpers to
launch a scan and wait for its job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pmap_sandbox.scanners import SANDBOX_VENDORS
from pmap_sandbox.server import SandboxServer, build_app
from tests.conftest import Api
from tests.sync.conftest import wait_job


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    """Every simulated vendor on plain http, for this module alone (launched scans keep state in it)."""
    with SandboxServer(build_app()) as server:
        yield server


def unique(marker: str = "ok") -> str:
    """A credential value with ``marker`` (the sandbox's scenario) that no other test uses."""
    return f"scan-{marker}-{uuid.uuid4().int % 10**12:012d}"


def integration(api: Api, headers: dict[str, str], sandbox: SandboxServer, vendor: str,
                credentials: dict[str, str], *, enabled: bool = True) -> str:
    """Create an integration of ``vendor`` against the sandbox; its id."""
    body = {"name": f"{vendor}-{uuid.uuid4().hex[:8]}", "vendor": vendor, "enabled": enabled,
            "connection": {"base_url": sandbox.url(vendor, SANDBOX_VENDORS)}, "credentials": credentials}
    resp = api.client.post("/api/v1/integrations", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def start_launch(api: Api, headers: dict[str, str], integration_id: str, scan_id: str) -> httpx.Response:
    """``POST /integrations/{id}/scans``."""
    return api.client.post(f"/api/v1/integrations/{integration_id}/scans", headers=headers,
                           json={"scan_id": scan_id})


def launch(api: Api, headers: dict[str, str], integration_id: str, scan_id: str) -> dict[str, Any]:
    """Launch a scan, expect 202, and return its finished job."""
    resp = start_launch(api, headers, integration_id, scan_id)
    assert resp.status_code == 202, resp.text
    return wait_job(api, headers, resp.json()["job"]["id"])


def launches(api: Api, headers: dict[str, str], integration_id: str) -> list[dict[str, Any]]:
    """``GET /integrations/{id}/scans``: the launches, newest first."""
    resp = api.client.get(f"/api/v1/integrations/{integration_id}/scans", headers=headers)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items
