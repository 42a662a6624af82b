"""The webhook budgets in Redis (pmap.webhooks.ratelimit): one budget shared by every process, refilled on the
server's clock, idle keys expiring, and a Redis that does not answer leaving each check to the process's own
buckets (counted, warned about once a minute without the password), never to a 500 or to no limit at all."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.common import free_port
from pmap.core.metrics import Budget
from pmap.webhooks import ratelimit
from pmap.webhooks.ratelimit import RETRY_AFTER, WARN_EVERY, FailedBudget, RedisTokenBuckets, SharedRedis
from tests.conftest import REPO, Api, LiveRedis
from tests.observability.conftest import scrape, value

from .conftest import create_integration, payload, signed

VERIFIED = Budget.VERIFIED.value
PASSWORD = "hunter2-redis-password"
FALLBACKS = "pmap_webhook_rate_limit_fallbacks_total"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _down_url() -> str:
    """A Redis URL with a password whose port nothing listens on."""
    return f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "pmap.webhooks.ratelimit" and r.levelno == logging.WARNING]


def test_two_instances_share_one_budget(shared_redis: LiveRedis) -> None:
    one, two = SharedRedis(shared_redis.url), SharedRedis(shared_redis.url)  # as two processes would hold them
    try:
        a, b = RedisTokenBuckets(one, VERIFIED, 4), RedisTokenBuckets(two, VERIFIED, 4)
        assert [a.take("i1"), b.take("i1"), a.take("i1"), b.take("i1")] == [0.0] * 4
        wait_a, wait_b = a.take("i1"), b.take("i1")
        assert 0 < wait_a <= 15 and 0 < wait_b <= 15  # 4 a minute: a token every 15 s
        assert b.take("i2") == 0.0  # another key has its own bucket
        prefix = shared_redis.prefix
        assert shared_redis.client.exists(f"{prefix}:verified:i1", f"{prefix}:verified:i2") == 2
    finally:
        one.close()
        two.close()


def test_a_separate_process_takes_from_the_same_budget(shared_redis: LiveRedis) -> None:
    script = ("import json, sys\n"
              "from pmap.webhooks import ratelimit\n"
              "ratelimit.PREFIX = sys.argv[2]\n"
              "shared = ratelimit.SharedRedis(sys.argv[1])\n"
              "buckets = ratelimit.RedisTokenBuckets(shared, 'verified', 5)\n"
              "print(json.dumps([buckets.take('shared-key') for _ in range(3)]))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script, shared_redis.url, shared_redis.prefix], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == [0.0, 0.0, 0.0]
    shared = SharedRedis(shared_redis.url)
    try:
        buckets = RedisTokenBuckets(shared, VERIFIED, 5)
        assert [buckets.take("shared-key") for _ in range(2)] == [0.0, 0.0]
        assert buckets.take("shared-key") > 0  # the other process spent the first three
    finally:
        shared.close()


def test_a_spent_bucket_refills_on_the_servers_clock(shared_redis: LiveRedis) -> None:
    shared = SharedRedis(shared_redis.url)
    try:
        buckets = RedisTokenBuckets(shared, VERIFIED, 600)  # 10 tokens a second, a burst of 600
        for _ in range(1000):
            wait = buckets.take("k")
            if wait > 0:
                break
        assert 0 < wait <= 0.1
        time.sleep(wait + 0.05)  # the wait it announced, and a margin
        assert buckets.take("k") == 0.0
        assert buckets.fallback.take("k") == 0.0  # the in-process buckets were never charged
    finally:
        shared.close()


def test_a_bucket_expires_once_it_would_be_full_again(shared_redis: LiveRedis) -> None:
    shared = SharedRedis(shared_redis.url)
    try:
        key = f"{shared_redis.prefix}:verified:k"
        slow = RedisTokenBuckets(shared, VERIFIED, 60)  # one token a second
        assert slow.take("k") == 0.0
        assert 0 < shared_redis.client.pttl(key) <= 1001  # one token short: full again in a second
        while slow.take("k") == 0.0:
            pass
        assert 59_000 < shared_redis.client.pttl(key) <= 60_001  # empty: a minute to refill
        shared_redis.client.delete(key)
        fast = RedisTokenBuckets(shared, VERIFIED, 60_000)  # 1000 a second: one token is back within 1 ms
        assert fast.take("k") == 0.0
        deadline = time.monotonic() + 5
        while shared_redis.client.exists(key):
            assert time.monotonic() < deadline, "an idle key did not expire"
            time.sleep(0.01)
    finally:
        shared.close()


def test_redis_down_falls_back_to_the_process_buckets_warning_once_a_minute(caplog: pytest.LogCaptureFixture,
                                                                             ) -> None:
    clock, counted = FakeClock(), list[str]()
    url = _down_url()
    shared = SharedRedis(url, on_fallback=counted.append, clock=clock)
    try:
        buckets = RedisTokenBuckets(shared, VERIFIED, 2)
        with caplog.at_level(logging.WARNING, logger="pmap.webhooks.ratelimit"):
            assert [buckets.take("i"), buckets.take("i")] == [0.0, 0.0]
            assert buckets.take("i") > 0  # not open: the process's own bucket limits
            clock.now += RETRY_AFTER + 1  # Redis is asked again, and fails again
            assert buckets.take("j") == 0.0
        assert counted == [VERIFIED] * 4
        [warning] = _warnings(caplog)  # one warning for the four checks
        assert PASSWORD not in warning and f"127.0.0.1:{url.rsplit(':', 1)[1]}" in warning
        assert "ConnectionError" in warning
        caplog.clear()
        clock.now += WARN_EVERY
        with caplog.at_level(logging.WARNING, logger="pmap.webhooks.ratelimit"):
            assert buckets.take("k") == 0.0
        [again] = _warnings(caplog)
        assert "4 checks" in again and PASSWORD not in again  # the three since the first warning, and this one
    finally:
        shared.close()


def test_after_a_failure_redis_is_left_alone_for_a_while_then_used_again(shared_redis: LiveRedis,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    clock, calls = FakeClock(), list[object]()
    shared = SharedRedis(shared_redis.url, clock=clock)
    try:
        script = shared._script

        def failing(**kw: object) -> object:
            calls.append(kw)
            raise RedisConnectionError("gone")

        monkeypatch.setattr(shared, "_script", failing)
        buckets = RedisTokenBuckets(shared, VERIFIED, 2)
        assert buckets.take("i") == 0.0 and buckets.take("i") == 0.0
        assert len(calls) == 1  # the second check did not wait on a Redis that just failed
        monkeypatch.setattr(shared, "_script", script)
        clock.now += RETRY_AFTER
        with caplog.at_level(logging.WARNING, logger="pmap.webhooks.ratelimit"):
            assert buckets.take("i") == 0.0  # Redis again: its bucket is still full
        assert any("answers again" in m for m in _warnings(caplog))
        assert shared_redis.client.exists(f"{shared_redis.prefix}:verified:i")
    finally:
        shared.close()


def test_the_failed_budget_charges_sources_and_integrations_in_redis(shared_redis: LiveRedis) -> None:
    shared = SharedRedis(shared_redis.url)
    try:
        _verified, failed = ratelimit.budgets(10, 2, shared)
        second = SharedRedis(shared_redis.url)  # another process
        other = ratelimit.budgets(10, 2, second)[1]
        assert failed.blocking
        iid = uuid.uuid4()
        assert failed.admit("10.0.0.1", iid) and other.admit("10.0.0.1", iid)
        assert not failed.admit("10.0.0.1", iid)  # the source's two are spent, across both
        assert other.admit("10.0.0.2", None)
        assert shared_redis.client.exists(f"{shared_redis.prefix}:failed_source:10.0.0.1",
                                          f"{shared_redis.prefix}:failed_integration:{iid}") == 2
        assert not FailedBudget(2).blocking
        second.close()
    finally:
        shared.close()


# --- the receiver over HTTP ------------------------------------------------------------------------------------

def _github(api: Api) -> tuple[str, str]:
    h = api.token()
    iid = create_integration(api.client, h, "github_issues")
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
    return iid, api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"]


def _send(api: Api, iid: str, secret: str) -> httpx.Response:
    body = payload("github")
    return api.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, secret))


def test_two_apps_share_the_verified_budget_through_redis(make_api: Callable[..., Api],
                                                          shared_redis: LiveRedis) -> None:
    one = make_api(redis_url=SecretStr(shared_redis.url), webhook_rate_per_minute=3)
    two = make_api(redis_url=SecretStr(shared_redis.url), webhook_rate_per_minute=3)
    iid, secret = _github(one)
    assert [_send(one, iid, secret).status_code, _send(two, iid, secret).status_code,
            _send(one, iid, secret).status_code] == [202, 202, 202]
    for app in (two, one):  # each has taken at most two: only the shared budget is spent
        limited = _send(app, iid, secret)
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 20
    assert shared_redis.client.exists(f"{shared_redis.prefix}:verified:{iid}")
    # failures are charged in Redis too: per source and per integration
    assert one.client.post(f"/hooks/{uuid.uuid4()}", content=b"{}").status_code == 401
    assert shared_redis.client.exists(f"{shared_redis.prefix}:failed_source:testclient")
    assert value(scrape(one.client), FALLBACKS, budget=VERIFIED) == 0


def test_with_redis_down_deliveries_are_limited_per_process_and_it_is_said(make_api: Callable[..., Api],
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    api = make_api(redis_url=SecretStr(_down_url()), webhook_rate_per_minute=2)
    iid, secret = _github(api)
    with caplog.at_level(logging.WARNING, logger="pmap.webhooks.ratelimit"):
        codes = [_send(api, iid, secret).status_code for _ in range(3)]
    assert codes == [202, 202, 429]  # neither open nor a 500: the process's own budget
    [warning] = _warnings(caplog)
    assert PASSWORD not in warning and "redis://127.0.0.1:" in warning
    assert value(scrape(api.client), FALLBACKS, budget=VERIFIED) == 3
    ready = api.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["redis"] == {
        "status": "failed", "error": "ConnectionError", "seconds": ready.json()["checks"]["redis"]["seconds"]}
    assert PASSWORD not in ready.text


def test_readyz_pings_the_configured_redis(make_api: Callable[..., Api], shared_redis: LiveRedis) -> None:
    plain = make_api()
    assert "redis" not in plain.client.get("/readyz").json()["checks"]
    api = make_api(redis_url=SecretStr(shared_redis.url))
    ready = api.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["redis"]["status"] == "ok"
    assert math.isfinite(ready.json()["checks"]["redis"]["seconds"])
