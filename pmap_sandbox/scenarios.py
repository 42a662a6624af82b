"""Scenario markers shared by every sandbox vendor: parse them from credential values, keep rate-limit state.

A credential VALUE selects the behaviour of the simulated vendor: any non-empty value authenticates
unless it contains one of the markers below (``"token-ratelimit-42"`` -> ``{"ratelimit"}``). Vendor
modules call :func:`gate` first, then answer the failure in the vendor's own error shape.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

BAD: Final = "bad"
ECHO: Final = "echo"
EXPIRED: Final = "expired"
EXPIRING: Final = "expiring"
MANAGED: Final = "managed"
RATELIMIT: Final = "ratelimit"
SLOW: Final = "slow"
DOWN: Final = "down"
NOPERM: Final = "noperm"
ADMIN: Final = "admin"

MARKERS: Final[tuple[str, ...]] = (
    BAD,
    ECHO,
    EXPIRED,
    EXPIRING,
    MANAGED,
    RATELIMIT,
    SLOW,
    DOWN,
    NOPERM,
    ADMIN,
)

SLOW_SECONDS: Final = 15.0  # longer than PMAP's 10 s default timeout
RETRY_AFTER_SECONDS: Final = 1
EXPIRING_DAYS: Final = 10

_lock = threading.Lock()
_seen: set[str] = set()  # rate-limit keys that already got their one 429


def scenario_of(*values: str | None) -> set[str]:
    """The set of markers contained in any of ``values`` (case-insensitive); ``None``/empty are ignored."""
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        low = value.lower()
        found.update(m for m in MARKERS if m in low)
    return found


def consume_ratelimit(key: str) -> bool:
    """True exactly once per ``key`` (the request to answer 429); False for every later request."""
    with _lock:
        if key in _seen:
            return False
        _seen.add(key)
        return True


def reset_ratelimits() -> None:
    """Forget every rate-limit counter (tests that reuse a credential value across servers)."""
    with _lock:
        _seen.clear()


async def maybe_sleep(scenarios: Iterable[str], seconds: float = SLOW_SECONDS) -> None:
    """Sleep ``seconds`` without blocking the event loop when ``slow`` is among ``scenarios``."""
    if SLOW in set(scenarios):
        await asyncio.sleep(seconds)


async def gate(key: str, scenarios: set[str]) -> str | None:
    """Apply the transport-level scenarios in a fixed order; return the failure to answer, or None.

    Returns ``"bad"`` or ``"echo"`` (answer the vendor's 401/403), ``"down"`` (503) or
    ``"ratelimit"`` (429 with ``Retry-After``, only for the first request of ``key``). ``slow``
    is applied here by sleeping. ``key`` should include the vendor key so vendors do not share counters.
    """
    await maybe_sleep(scenarios)
    if BAD in scenarios:
        return BAD
    if ECHO in scenarios:
        return ECHO
    if DOWN in scenarios:
        return DOWN
    if RATELIMIT in scenarios and consume_ratelimit(key):
        return RATELIMIT
    return None


def license_expiry(scenarios: Iterable[str], now: datetime | None = None) -> datetime:
    """When the simulated license ends: 30 days ago (expired), in 10 days (expiring), else in ~2 years."""
    now = now or datetime.now(UTC)
    marks = set(scenarios)
    if EXPIRED in marks:
        return now - timedelta(days=30)
    if EXPIRING in marks:
        return now + timedelta(days=EXPIRING_DAYS)
    return now + timedelta(days=730)


def license_expired(scenarios: Iterable[str]) -> bool:
    """True when the simulated license is already expired."""
    return EXPIRED in set(scenarios)
