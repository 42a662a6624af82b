"""Fixtures of the scanner connector tests: a loopback webhook receiver and runner shortcuts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pmap.connectors.base import ConnectionTestResult, OperationContext
from pmap.connectors.runner import operation_context, run_connection_test
from pmap.core.settings import Settings
from pmap_sandbox.scanners import _common
from pmap_sandbox.server import SandboxServer
from tests.loopback_receiver import Receiver, serve_receiver

from .cases import catalog_entry, settings_for


def context(settings: Settings, vendor: str, connection: dict[str, Any], credentials: dict[str, str],
            purpose: str = "connection_test", budget: float | None = None) -> OperationContext:
    """The operation context the app would build."""
    return operation_context(settings, catalog_entry(vendor), connection, credentials, purpose=purpose, budget=budget)


def run_test(settings: Settings, vendor: str, connection: dict[str, Any],
             credentials: dict[str, str]) -> ConnectionTestResult:
    """A connection test through the runner, as the API runs it."""
    return run_connection_test(context(settings, vendor, connection, credentials), catalog_entry(vendor))


# --- a webhook receiver ----------------------------------------------------------------------------



@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 and a free port."""
    with serve_receiver("/hooks/test") as rec:
        yield rec


def pull_context(sandbox: SandboxServer, settings: Settings, vendor: str, key_field: str, marker: str = "ok",
                 connection: dict[str, Any] | None = None, **seed: Any) -> tuple[OperationContext, str]:
    """A findings-pull context for ``vendor`` on the sandbox whose account (keyed by the credential
    ``key_field``) holds the generated data set ``seed``; the context and that key."""
    settings_, credentials = settings_for(vendor, sandbox.base_url, marker, **(connection or {}))
    key = credentials[key_field]
    _common.seed(sandbox.app, vendor, key, **{"count": 0, **seed})
    return context(settings, vendor, settings_, credentials, purpose="findings_pull", budget=30.0), key
