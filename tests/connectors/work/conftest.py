"""Fixtures of the work-tracker and CI/CD connector tests: a loopback receiver recording webhook deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pmap.connectors.base import ConnectionTestResult, OperationContext
from pmap.connectors.runner import operation_context, run_connection_test
from pmap.core.settings import Settings
from tests.loopback_receiver import Receiver, serve_receiver

from .cases import catalog_entry


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 and a free port."""
    with serve_receiver("/hooks/test") as rec:
        yield rec


def context(settings: Settings, vendor: str, connection: dict[str, Any], credentials: dict[str, str],
            purpose: str = "connection_test", budget: float | None = None) -> OperationContext:
    """The operation context the app would build."""
    return operation_context(settings, catalog_entry(vendor), connection, credentials, purpose=purpose, budget=budget)


def run_test(settings: Settings, vendor: str, connection: dict[str, Any],
             credentials: dict[str, str]) -> ConnectionTestResult:
    """A connection test through the runner, as the API runs it."""
    return run_connection_test(context(settings, vendor, connection, credentials), catalog_entry(vendor))
