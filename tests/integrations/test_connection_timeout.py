"""A connection's ``timeout_seconds`` (the schema allows up to 120 s) is honoured by a connection
test even past the deployment's PMAP_CONNECTION_TEST_TIMEOUT; the schema says so."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pmap.connectors.base import ConnectionSettings
from pmap.connectors.catalog import connector_types
from pmap.connectors.runner import operation_context, run_connection_test
from pmap.core.settings import Settings
from tests.conftest import Api

CREDS = {"access_key": "a" * 20, "secret_key": "b" * 20}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def _settings(test_timeout: float) -> Settings:
    return Settings(env="development", database_url="sqlite://", connection_test_timeout=test_timeout)


@pytest.mark.parametrize("timeout", [0.5, 10.0, 60.0, 120.0])
def test_the_schema_maximum_becomes_the_call_timeout_and_budget(timeout: float) -> None:
    ct = connector_types()["tenable_vm"]
    ctx = operation_context(_settings(10.0), ct, {"base_url": "https://cloud.tenable.com", "timeout_seconds": timeout},
                            CREDS, purpose="connection_test")
    assert ctx.outbound.timeout == timeout  # per call, as the integration asks
    assert ctx.outbound.budget == max(10.0, timeout)  # and the test lasts long enough for one such call
    assert ctx.remaining() == pytest.approx(max(10.0, timeout), abs=1.0)


def test_a_longer_deployment_budget_still_applies() -> None:
    ct = connector_types()["tenable_vm"]
    ctx = operation_context(_settings(60.0), ct, {"base_url": "https://cloud.tenable.com", "timeout_seconds": 5},
                            CREDS, purpose="connection_test")
    assert (ctx.outbound.timeout, ctx.outbound.budget) == (5.0, 60.0)


def test_a_silent_vendor_is_waited_for_as_long_as_the_integration_says(silent_server: int) -> None:
    ct = connector_types()["tenable_vm"]
    connection = {"base_url": f"http://127.0.0.1:{silent_server}", "timeout_seconds": 1.0}
    started = time.monotonic()
    # the deployment's budget (0.3 s) is shorter than the integration's timeout: the timeout wins
    result = run_connection_test(operation_context(_settings(0.3), ct, connection, CREDS, purpose="connection_test"),
                                 ct)
    waited = time.monotonic() - started
    assert result.failed_step == "timeout", result.message
    cut = re.search(r"timed out after (\d+(?:\.\d+)?) s", result.message or "")
    assert cut and float(cut.group(1)) >= 0.8, result.message  # not the deployment's 0.3 s
    assert 0.9 <= waited < 5.0


def test_the_schema_states_the_cap_and_refuses_beyond_it(api: Api) -> None:
    prop = ConnectionSettings.model_json_schema()["properties"]["timeout_seconds"]
    assert prop["maximum"] == 120 and "120" in prop["description"]
    assert "PMAP_CONNECTION_TEST_TIMEOUT" in prop["description"]
    h = api.token()
    body = {"vendor": "tenable_vm", "connection": {"timeout_seconds": 120.5}, "credentials": CREDS}
    r = api.client.post("/api/v1/integrations/test", json=body, headers=h)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "connection.timeout_seconds", r.text
