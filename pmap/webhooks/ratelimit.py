"""In-memory token buckets for the webhook receivers: verified deliveries per integration
(:class:`TokenBuckets`), failed verifications per source address and per integration (:class:`FailedBudget`).

Per process: with several workers each holds its own buckets, so the effective limit is the
configured rate times the worker count. The table of buckets is bounded: when it is full, buckets
that have refilled completely (idle keys) are dropped first, so random ids cannot grow it forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBuckets:
    """``rate_per_minute`` tokens a minute per key, bursting up to the same number."""

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


class FailedBudget:
    """How many failed verifications are recorded one by one: ``rate_per_minute`` per source address
    and per integration. Beyond it a failure is only counted (see :mod:`pmap.webhooks.unrecorded`);
    a delivery that verifies is never charged here."""

    def __init__(self, rate_per_minute: int) -> None:
        self._sources = TokenBuckets(rate_per_minute)
        self._integrations = TokenBuckets(rate_per_minute)

    def admit(self, source: str, integration_id: object | None) -> bool:
        """Charge one failure; True when it is still to be recorded one by one."""
        # the source first: a flooding source spends its own tokens, not those of the integration,
        # so a vendor's genuinely misconfigured deliveries from elsewhere are still recorded
        if self._sources.take(source) > 0:
            return False
        return integration_id is None or self._integrations.take(str(integration_id)) == 0
