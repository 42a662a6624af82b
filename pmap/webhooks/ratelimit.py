"""Token buckets for the webhook receivers: verified deliveries per integration (the ``verified``
budget), failed verifications per source address and per integration (:class:`FailedBudget`).

Two implementations of one interface (:class:`Buckets`: ``take(key)`` is 0.0 when a token was taken,
otherwise the seconds until one is available), ``rate_per_minute`` tokens a minute per key, bursting
up to the same number:

- :class:`TokenBuckets`, in memory, **per process**: with several workers each holds its own buckets,
  so the effective limit is the configured rate times the worker count. Its table is bounded: when it
  is full, buckets that have refilled completely (idle keys) are dropped first, so random ids cannot
  grow it forever;
- :class:`RedisTokenBuckets`, chosen when a Redis is configured (``PMAP_REDIS_URL``, else a redis://
  ``PMAP_BROKER_URL``): the limit is **global**, every process takes from the same bucket. One Lua
  script (``EVALSHA``) refills and takes atomically on the server's clock (``TIME``), so neither
  concurrent processes nor their clocks' skew matter. A bucket is the hash
  ``pmap:ratelimit:<budget>:<key>`` (the key is an integration id or a source address, never anything
  secret) that expires once it would have refilled completely: idle keys cost no memory and need no
  eviction.

When Redis cannot be reached (:class:`SharedRedis`), a check neither fails open nor fails the delivery:
it is answered by in-process buckets of the same rate (per process again, as without Redis), counted
(``pmap_webhook_rate_limit_fallbacks``, by budget) and logged at most once a minute, without the URL's
password. The client fails fast (0.5 s timeouts, no retries) and, after a failure, Redis is left alone
for :data:`RETRY_AFTER` seconds, so a Redis that hangs costs one timeout per interval, not one per
delivery. Calls into Redis block: the receiver makes them in a worker thread (``blocking``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from redis.exceptions import RedisError

from pmap.core.metrics import Budget
from pmap.core.redis_client import TIMEOUT, connect, location

log = logging.getLogger("pmap.webhooks.ratelimit")

PREFIX = "pmap:ratelimit"  # the namespace of every bucket key
RETRY_AFTER = 5.0  # seconds Redis is not asked again after it failed to answer
WARN_EVERY = 60.0  # at most one warning about an unreachable Redis in this many seconds

# KEYS[1]: the bucket; ARGV[1]: tokens a minute (and the burst). Returns the wait in seconds, as a string
# (a Lua number would be truncated to an integer). Stored values are written with 17 digits: exact.
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = capacity / 60.0
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
elseif now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1)
return string.format('%.17g', wait)
"""


class Buckets(Protocol):
    """Token buckets by key."""

    @property
    def blocking(self) -> bool:
        """A call may wait on the network: the receiver makes it in a worker thread."""

    def take(self, key: str) -> float:
        """0.0 when a token was taken; otherwise the seconds until one is available."""


class TokenBuckets:
    """``rate_per_minute`` tokens a minute per key, bursting up to the same number; in this process."""

    blocking = False

    def __init__(self, rate_per_minute: int, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_minute / 60.0
        self._capacity = float(rate_per_minute)
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0.0 when a token was taken; otherwise the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - at) * self._rate)
            if tokens >= 1.0:
                if key not in self._buckets and len(self._buckets) >= self._max_keys:
                    self._evict(now)
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate

    def _evict(self, now: float) -> None:
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self._rate >= self._capacity]
        for k in full or list(self._buckets)[: self._max_keys // 10 or 1]:
            del self._buckets[k]


class SharedRedis:
    """The Redis of one app's budgets (one connection pool) and its failure policy: :meth:`take` is None
    when Redis did not answer, and then the caller answers from its in-process buckets."""

    def __init__(self, url: str, *, on_fallback: Callable[[str], None] | None = None,
                 timeout: float = TIMEOUT, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = connect(url, timeout)
        self.prefix = PREFIX
        self._where = location(url)  # never the password
        self._script = self.client.register_script(_TAKE)
        self._on_fallback = on_fallback
        self._clock = clock
        self._lock = threading.Lock()
        self._retry_at = -math.inf  # Redis is not asked before then
        self._warned_at = -math.inf
        self._fallbacks = 0  # since the last warning
        self._down = False

    def key(self, budget: str, key: str) -> str:
        """The Redis key of one bucket."""
        return f"{self.prefix}:{budget}:{key}"

    def take(self, budget: str, key: str, rate_per_minute: int) -> float | None:
        """The wait of the shared bucket (0.0: a token was taken), or None when Redis did not answer."""
        if self._clock() < self._retry_at:
            self._fell_back(budget, None)
            return None
        try:
            wait = float(self._script(keys=[self.key(budget, key)], args=[rate_per_minute]))
        except (RedisError, OSError, ValueError) as exc:  # down, unreachable, too slow, or a strange answer
            self._fell_back(budget, exc)
            return None
        if self._down:
            with self._lock:
                recovered, self._down = self._down, False
            if recovered:
                log.warning("webhook rate limits: Redis at %s answers again; the limits are global again",
                            self._where)
        return wait

    def _fell_back(self, budget: str, exc: BaseException | None) -> None:
        now, count = self._clock(), 0
        with self._lock:
            self._fallbacks += 1
            if exc is not None:
                self._retry_at = now + RETRY_AFTER
                self._down = True
            warn = exc is not None and now - self._warned_at >= WARN_EVERY
            if warn:
                self._warned_at, count, self._fallbacks = now, self._fallbacks, 0
        if self._on_fallback is not None:
            self._on_fallback(budget)
        if warn:  # the exception's class only: its message may name the host, never more is needed
            log.warning("webhook rate limits: Redis at %s did not answer (%s); each process limits on its own "
                        "until it does (%d checks answered so since the last warning)", self._where,
                        type(exc).__name__, count)

    def close(self) -> None:
        """Close the connections."""
        self.client.close()


class RedisTokenBuckets:
    """``rate_per_minute`` tokens a minute per key, bursting up to the same number, shared by every process
    through Redis; answered by in-process buckets of the same rate when Redis does not answer."""

    blocking = True

    def __init__(self, shared: SharedRedis, budget: str, rate_per_minute: int) -> None:
        self._shared = shared
        self._budget = budget
        self._rate = rate_per_minute
        self.fallback = TokenBuckets(rate_per_minute)

    def take(self, key: str) -> float:
        """0.0 when a token was taken; otherwise the seconds until one is available."""
        wait = self._shared.take(self._budget, key, self._rate)
        return self.fallback.take(key) if wait is None else wait


class FailedBudget:
    """How many failed verifications are recorded one by one: ``rate_per_minute`` per source address
    and per integration. Beyond it a failure is only counted (see :mod:`pmap.webhooks.unrecorded`);
    a delivery that verifies is never charged here."""

    def __init__(self, rate_per_minute: int, *, sources: Buckets | None = None,
                 integrations: Buckets | None = None) -> None:
        self._sources = sources or TokenBuckets(rate_per_minute)
        self._integrations = integrations or TokenBuckets(rate_per_minute)

    @property
    def blocking(self) -> bool:
        """A call may wait on the network: the receiver makes it in a worker thread."""
        return self._sources.blocking or self._integrations.blocking

    def admit(self, source: str, integration_id: object | None) -> bool:
        """Charge one failure; True when it is still to be recorded one by one."""
        # the source first: a flooding source spends its own tokens, not those of the integration,
        # so a vendor's genuinely misconfigured deliveries from elsewhere are still recorded
        if self._sources.take(source) > 0:
            return False
        return integration_id is None or self._integrations.take(str(integration_id)) == 0


def budgets(verified_per_minute: int, failed_per_minute: int,
            shared: SharedRedis | None) -> tuple[Buckets, FailedBudget]:
    """The verified budget and the failed budget of one receiver: in Redis when ``shared``, else in memory."""
    if shared is None:
        return TokenBuckets(verified_per_minute), FailedBudget(failed_per_minute)
    return (RedisTokenBuckets(shared, Budget.VERIFIED.value, verified_per_minute),
            FailedBudget(failed_per_minute,
                         sources=RedisTokenBuckets(shared, Budget.FAILED_SOURCE.value, failed_per_minute),
                         integrations=RedisTokenBuckets(shared, Budget.FAILED_INTEGRATION.value, failed_per_minute)))
