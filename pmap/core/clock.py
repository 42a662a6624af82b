"""The clock of PMAP's waits and deadlines.

Code that waits on time (a vendor's ``Retry-After``, a backoff, an export that is not ready yet) and the
deadlines those waits are measured against read this module, always as ``clock.sleep(...)`` and
``clock.monotonic()`` (never imported by name), so a test can run them on a virtual clock instead of
sleeping. Readings that measure real elapsed time (a call's latency) stay on :func:`time.monotonic`.
"""

from __future__ import annotations

import time


def monotonic() -> float:
    """Seconds on a monotonic clock: what every operation deadline is expressed in."""
    return time.monotonic()


def sleep(seconds: float) -> None:
    """Wait ``seconds`` (a retry, a backoff, a poll)."""
    time.sleep(seconds)
