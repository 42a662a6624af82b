"""Admission control for outbound operations (connection tests, permission checks, webhook setup, tickets).

Synchronous routes run in one pool of :data:`WORKER_THREADS` threads. An outbound operation holds its
thread for as long as the vendor takes to answer (up to its time budget), so without a bound a burst
of slow ones from one operator fills the pool and every other request queues behind them.

:class:`OutboundSlots` admits at most ``PMAP_OUTBOUND_CONCURRENCY`` outbound operations at once, and
at most ``PMAP_OUTBOUND_CONCURRENCY_PER_ORG`` per organization. Admission never waits: beyond the
bound the request is answered 429 with ``Retry-After`` before it takes a worker thread (the route
dependency that admits runs on the event loop). The settings refuse a bound that would leave fewer
than :data:`RESERVED_THREADS` threads for everything else (reads, authentication, health checks,
the webhook receiver's database reads).

Per process: with several workers each admits its own bound.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pmap.core.errors import RateLimited

#: Threads of the pool that runs synchronous routes and the receiver's blocking work (set at start-up).
WORKER_THREADS = 100
#: Threads the outbound bound must leave to everything else.
RESERVED_THREADS = 20
#: What a refused caller is told to wait: a slot frees when any running operation ends, which
#: cannot be predicted; a few seconds keeps a retrying client from hammering.
RETRY_AFTER_SECONDS = 5


class OutboundSlots:
    """Counts outbound operations in progress, in total and per organization; admits without waiting."""

    def __init__(self, total: int, per_org: int) -> None:
        self.total = total
        self.per_org = per_org
        self._lock = threading.Lock()
        self._running = 0
        self._by_org: dict[uuid.UUID, int] = {}

    def in_use(self, organization_id: uuid.UUID | None = None) -> int:
        """Operations in progress, of one organization or in total."""
        with self._lock:
            return self._running if organization_id is None else self._by_org.get(organization_id, 0)

    def acquire(self, organization_id: uuid.UUID) -> None:
        """Take a slot for ``organization_id`` or raise :class:`RateLimited` at once."""
        with self._lock:
            mine = self._by_org.get(organization_id, 0)
            if mine >= self.per_org:
                raise _refused(f"this organization already runs {self.per_org} outbound operations "
                               "(connection tests, permission checks, webhook setup, tickets); retry later")
            if self._running >= self.total:
                raise _refused("PMAP is running as many outbound operations as it allows; retry later")
            self._running += 1
            self._by_org[organization_id] = mine + 1

    def release(self, organization_id: uuid.UUID) -> None:
        """Give back a slot taken by :meth:`acquire`."""
        with self._lock:
            self._running -= 1
            left = self._by_org.get(organization_id, 1) - 1
            if left > 0:
                self._by_org[organization_id] = left
            else:  # keep the table as small as the set of organizations with work in progress
                self._by_org.pop(organization_id, None)

    @contextmanager
    def admitted(self, organization_id: uuid.UUID) -> Iterator[None]:
        """Hold a slot for the body of the ``with``; released whatever happens in it."""
        self.acquire(organization_id)
        try:
            yield
        finally:
            self.release(organization_id)


def _refused(message: str) -> RateLimited:
    return RateLimited(message, details={"retry_after": RETRY_AFTER_SECONDS})
