"""Group commit for the receiver: one writer thread stores every delivery waiting at that moment in
one transaction, and each request is answered only after that commit.

While one batch commits (the fsync), the next deliveries queue up, so under load a commit carries
many deliveries; alone, a delivery waits for nothing but its own commit (plus a short linger). The
results of a batch are handed back to the event loop in one call. The thread starts on demand and
exits after a second without work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time

from pmap.core.db import is_busy
from pmap.webhooks.store import Pending, Store

log = logging.getLogger("pmap.webhooks.writer")

MAX_BATCH = 64
#: Under load (the previous commit ended less than BUSY_SECONDS ago), how long the writer waits for
#: company once a delivery is queued: the event loop is still parsing the next requests, and a commit
#: shared by several deliveries costs a fraction of one per delivery (database CPU, round trips,
#: parameter encoding). An idle receiver writes a lone delivery at once.
LINGER_SECONDS = 0.005
BUSY_SECONDS = 0.05
IDLE_EXIT_SECONDS = 1.0

_Item = tuple[Pending, "asyncio.Future[str]", asyncio.AbstractEventLoop]


class BatchWriter:
    """Queues :class:`Pending` deliveries and resolves each one's future with its store result."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_write = 0.0

    def submit(self, pending: Pending) -> asyncio.Future[str]:
        """Queue one delivery (from the event loop); the future yields STORED, SEEN or STALE once
        committed, or raises what the store raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        with self._lock:
            self._queue.put((pending, future, loop))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pmap-webhook-writer", daemon=True)
                self._thread.start()
        return future

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_EXIT_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            self._write(self._gather(first))
            self._last_write = time.monotonic()

    def _gather(self, first: _Item) -> list[_Item]:
        batch = [first]
        now = time.monotonic()
        linger_until = now + LINGER_SECONDS if now - self._last_write < BUSY_SECONDS else now
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = linger_until - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[_Item]) -> None:
        try:
            results: list[str | BaseException] = list(self._store.store_batch([p for p, _, _ in batch]))
        except Exception as exc:
            if is_busy(exc):
                # the write lock stayed taken: nothing was committed and each delivery alone would wait
                # as long again; every request answers 503 + Retry-After and its vendor delivers again
                log.warning("the database stayed busy: %d webhook deliveries answered 503", len(batch))
                results = [exc] * len(batch)
            elif len(batch) > 1:
                # nothing was committed; one at a time, so one bad delivery cannot fail the others
                for item in batch:
                    self._write([item])
                return
            else:
                log.exception("storing a webhook delivery failed")
                results = [exc]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[str], str | BaseException]]] = {}
        for (_, future, loop), result in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, result))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, settled)
        if self._store.seal is not None and any(pending.audit for pending, _, _ in batch):
            self._store.seal()  # the audit events just committed join the chain (never raises)


def _settle(settled: list[tuple[asyncio.Future[str], str | BaseException]]) -> None:
    for future, result in settled:
        if future.done():  # the request was cancelled (client gone)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
