"""Retries with Retry-After, the per-attempt timeout and the operation budget."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pmap.core.egress import EgressPolicy
from pmap.core.errors import UpstreamError
from pmap.core.outbound import OutboundClient, OutboundConfig
from tests.conftest import VirtualClock

POLICY = EgressPolicy(production=False)
SECRET = "s3cr3t-Api-Key-0042"


@pytest.fixture
def waits(virtual_clock: VirtualClock) -> list[float]:
    """Retry waits, recorded on the virtual clock instead of slept."""
    return virtual_clock.waits


def _sequence(*replies: tuple[int, dict[str, str]]):
    """A route answering each request with the next reply (the last one repeats)."""
    queue = list(replies)

    def route(h) -> None:
        status, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        h.reply(status, f"status {status}", headers)

    return route


def test_retry_after_seconds_is_honoured(server, waits) -> None:
    server.routes["/"] = _sequence((503, {"Retry-After": "1"}), (429, {"Retry-After": "2"}), (200, {}))
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY)) as client:
        response = client.get("/")
        assert client.retries_done == 2
    assert response.status == 200 and waits == [1.0, 2.0] and len(server.seen) == 3


def test_retry_after_http_date_is_honoured(server, waits) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    server.routes["/"] = _sequence((503, {"Retry-After": when}), (200, {}))
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY)) as client:
        assert client.get("/").status == 200
    assert len(waits) == 1 and 0 < waits[0] <= 3.0


def test_retries_are_bounded(server, waits) -> None:
    server.routes["/"] = _sequence((500, {}))
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY, max_retries=2)) as client:
        response = client.get("/")
        assert client.retries_done == 2
    assert response.status == 500 and len(server.seen) == 3
    assert len(waits) == 2 and all(w > 0 for w in waits) and waits[1] > waits[0]


def test_a_wait_longer_than_the_budget_is_not_taken(server, waits) -> None:
    server.routes["/"] = _sequence((429, {"Retry-After": "120"}), (200, {}))
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY, budget=5)) as client:
        with pytest.raises(UpstreamError) as err:
            client.get("/", expected=(200,))
        assert client.retries_done == 0
    assert err.value.step == "http" and err.value.upstream_status == 429
    assert waits == [] and len(server.seen) == 1


def test_time_waited_is_spent_from_the_budget(server, waits) -> None:
    # waits and the deadline read one clock: after two 4 s waits of a 10 s budget a third is not taken
    server.routes["/"] = _sequence((429, {"Retry-After": "4"}))
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY, budget=10, max_retries=5)) as client:
        with pytest.raises(UpstreamError) as err:
            client.get("/", expected=(200,))
        assert client.retries_done == 2 and client.remaining_budget < 2.1
    assert err.value.upstream_status == 429 and waits == [4.0, 4.0] and len(server.seen) == 3


def test_unsafe_methods_retry_only_when_the_caller_opts_in(server, waits) -> None:
    server.routes["/scans"] = _sequence((503, {"Retry-After": "0"}))
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY)) as client:
        assert client.post("/scans", json={}).status == 503
        assert len(server.seen) == 1
        assert client.post("/scans", json={}, retry_unsafe=True).status == 503
    assert len(server.seen) == 4 and all(s.body == b"{}" for s in server.seen)


def test_client_errors_are_not_retried(server, waits) -> None:
    server.routes["/"] = _sequence((404, {}))
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY)) as client:
        assert client.get("/").status == 404
    assert waits == [] and len(server.seen) == 1


def _stall(h) -> None:
    h.server.release.wait(10)  # answer only when the test is over
    h.reply(200, "late")


def _trickle(h) -> None:
    # every byte arrives well within the per-call timeout, but the whole body never within budget
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    for _ in range(1000):
        if h.server.release.wait(0.05):
            return
        h.wfile.write(b"x")
        h.wfile.flush()


@pytest.mark.parametrize("route", [_stall, _trickle], ids=["stall", "trickle"])
def test_the_budget_bounds_the_operation(server, route) -> None:
    server.routes["/slow"] = route
    config = OutboundConfig(policy=POLICY, timeout=10.0, budget=1.0)
    started = time.monotonic()
    with (
        OutboundClient(server.url(), config, secrets=[SECRET]) as client,
        pytest.raises(UpstreamError) as err,
    ):
        client.get(f"/slow?key={SECRET}")
    elapsed = time.monotonic() - started
    assert err.value.step == "timeout" and "timed out" in err.value.message
    assert SECRET not in err.value.message and "[REDACTED]" in err.value.message
    assert elapsed < config.budget * 2.5  # loose: the point is "not 10 s"


def test_per_attempt_timeout_applies_inside_the_budget(server) -> None:
    server.routes["/slow"] = _stall
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY, timeout=0.3, budget=10.0)) as client:
        with pytest.raises(UpstreamError, match="after 0.3 s") as err:
            client.get("/slow")
        assert client.remaining_budget > 5
    assert err.value.step == "timeout"


def test_nothing_is_sent_once_the_budget_is_spent(server) -> None:
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY, budget=0.01)) as client:
        time.sleep(0.02)
        with pytest.raises(UpstreamError, match="budget") as err:
            client.get("/")
    assert err.value.step == "timeout" and server.seen == []


def test_unparseable_retry_after_falls_back_to_backoff(server, waits) -> None:
    server.routes["/"] = _sequence((503, {"Retry-After": "soon"}), (200, {}))
    with OutboundClient(server.url(), OutboundConfig(policy=POLICY)) as client:
        assert client.get("/").status == 200
    assert len(waits) == 1 and 0 < waits[0] <= 0.5


def test_clients_of_one_operation_share_its_deadline(server) -> None:
    from pmap.connectors.base import OperationContext

    ctx = OperationContext(vendor="x", purpose="connection_test", connection=None, credentials=None,
                           outbound=OutboundConfig(policy=POLICY, budget=10.0), deadline=time.monotonic() - 1)
    with ctx.client(server.url()) as client:  # a later client gets what is left, not a fresh budget
        assert client.remaining_budget <= 0.05
        with pytest.raises(UpstreamError, match="budget") as err:
            client.get("/")
    assert err.value.step == "timeout" and server.seen == []
