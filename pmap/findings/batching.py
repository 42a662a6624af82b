"""A one-thread, bounded hand-off that lets database writes overlap with parsing.

The parser is CPU-bound Python; a batch upsert mostly waits on the database server (the GIL is
released while it does). Running the writes in one helper thread, at most ``depth`` batches
behind, overlaps the two. Order is preserved (one thread, FIFO), the connection is only ever used
by one thread at a time (the caller waits for :meth:`close` before touching it again), and an
error in the writer surfaces on the caller's next :meth:`submit` or at :meth:`close`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

_STOP = object()


class BackgroundWriter:
    """Runs submitted calls in order on one thread; use as a context manager around the producer."""

    def __init__(self, depth: int = 2, name: str = "pmap-import-writer") -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._closed = False
        self._abort = False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None or self._abort:
                continue  # keep draining so a producer blocked on a full queue is released
            fn, args = item
            try:
                fn(*args)
            except BaseException as exc:  # handed to the producer thread, which re-raises it
                self._error = exc

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; blocks while ``depth`` calls are pending. Re-raises a writer error."""
        if self._error is not None:
            self.close()
        self._queue.put((fn, args))

    def close(self) -> None:
        """Wait for every queued call; re-raise the first writer error, if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
            return
        # the producer failed: skip what is queued, wait until the writer stops using the
        # connection (the caller rolls back next), and let the producer's error win
        self._abort = True
        with contextlib.suppress(BaseException):  # the producer's exception is the one to report
            self.close()
