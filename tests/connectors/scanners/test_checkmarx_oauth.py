"""Checkmarx One with an OAuth client (client credentials grant) over real HTTP to the sandbox: the token is
fetched once for operations within its lifetime and again after expiry; a refused client fails at auth; a
findings pull authenticates with the client."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pmap.connectors.base import FindingsPull, PermissionState
from pmap.connectors.vendors import _oauth
from pmap.core.settings import Settings
from pmap_sandbox.scanners import _common
from pmap_sandbox.server import SandboxServer
from tests.conftest import VirtualClock

from .cases import implementation, settings_for, unique
from .conftest import context, run_test

VENDOR = "checkmarx_one"


def _oauth_case(sandbox: SandboxServer, marker: str = "ok") -> tuple[dict[str, Any], dict[str, str]]:
    connection, _key = settings_for(VENDOR, sandbox.base_url)
    return connection, {"client_id": unique("client"), "client_secret": unique(marker)}


def _token_requests(sandbox: SandboxServer) -> int:
    return int(getattr(sandbox.app.state, "sandbox_store", {}).get(VENDOR, {}).get("token_requests", 0))


@pytest.fixture(autouse=True)
def _empty_token_cache() -> None:
    _oauth.CACHE.clear()


def test_checkmarx_oauth_connection_test_says_oauth(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = _oauth_case(sandbox)
    result = run_test(dev_settings, VENDOR, connection, credentials)
    assert result.ok, result.message
    assert result.message is not None and _oauth.AUTHENTICATED_WITH_OAUTH in result.message
    assert result.version == "3.21.4"


def test_checkmarx_api_key_says_api_key(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for(VENDOR, sandbox.base_url)
    result = run_test(dev_settings, VENDOR, connection, credentials)
    assert result.ok and result.message is not None and "API key" in result.message


def test_checkmarx_token_cached_until_expiry(sandbox: SandboxServer, dev_settings: Settings,
                                             virtual_clock: VirtualClock) -> None:
    connection, credentials = _oauth_case(sandbox)
    before = _token_requests(sandbox)
    assert run_test(dev_settings, VENDOR, connection, credentials).ok
    report = implementation(VENDOR).check_permissions(
        context(dev_settings, VENDOR, connection, credentials, purpose="permissions"))
    assert {p.state for p in report.permissions} == {PermissionState.GRANTED}
    assert _token_requests(sandbox) == before + 1  # two operations, one token
    virtual_clock.sleep(1800)  # the sandbox's tokens live 1800 s
    assert run_test(dev_settings, VENDOR, connection, credentials).ok
    assert _token_requests(sandbox) == before + 2


def test_checkmarx_api_key_is_not_cached(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for(VENDOR, sandbox.base_url)
    before = _token_requests(sandbox)
    assert run_test(dev_settings, VENDOR, connection, credentials).ok
    assert run_test(dev_settings, VENDOR, connection, credentials).ok
    assert _token_requests(sandbox) == before + 2 and len(_oauth.CACHE) == 0


def test_checkmarx_wrong_client_secret_fails_at_auth(sandbox: SandboxServer, dev_settings: Settings,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    connection, credentials = _oauth_case(sandbox, marker="bad")
    with caplog.at_level(logging.DEBUG):
        result = run_test(dev_settings, VENDOR, connection, credentials)
    assert not result.ok and result.failed_step == "auth", result
    assert credentials["client_secret"] not in result.model_dump_json() + caplog.text
    echoed = run_test(dev_settings, VENDOR, *_oauth_case(sandbox, marker="echo"))
    assert echoed.failed_step == "auth" and "echo-" not in (echoed.message or "")


def test_checkmarx_oauth_client_pulls_findings(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = _oauth_case(sandbox)
    _common.seed(sandbox.app, VENDOR, credentials["client_id"], count=30, fixed_every=5)
    ctx = context(dev_settings, VENDOR, connection, credentials, purpose="findings_pull", budget=30.0)
    before = _token_requests(sandbox)
    feed = implementation(VENDOR).pull_findings(ctx, FindingsPull())
    findings = list(feed.findings)
    assert feed.complete and len(findings) == 30
    assert sum(f.status == "fixed" for f in findings) == 6
    assert _token_requests(sandbox) == before + 1  # one client credentials exchange
    assert all(credentials["client_secret"] not in str(f.extra) for f in findings)
