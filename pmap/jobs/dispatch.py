"""Where a queued job goes to run: threads of this process (the embedded default) or a broker's workers.

The ``jobs`` table is the queue's truth either way; a dispatcher only says "job X is ready". A job runs through
one function, the runner's ``execute`` (claim under a lease, run its kind's task function, finish), whichever
carries it there, so the embedded default and Celery workers run the same code.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("pmap.jobs.dispatch")


@dataclass(frozen=True, slots=True)
class Again:
    """A live attempt holds the job: deliver it again in ``after`` seconds."""

    after: float


@dataclass(frozen=True, slots=True)
class Requeue:
    """This process stopped before the job ended: the job is queued again, for another delivery."""


#: what executing a delivery of a job came to: done (None: finished, or not this delivery's to run), again later,
#: or back to the queue
Outcome = Again | Requeue | None
#: the runner's one entry point: (job id, id of the request that queued it) -> outcome
Execute = Callable[[uuid.UUID, "str | None"], Outcome]


class Dispatcher(Protocol):
    """Hands ready jobs to whatever runs them. Extension point: a new engine implements these four members."""

    #: whether this process runs the jobs it dispatches (it then recovers orphaned jobs at start)
    runs_here: bool

    def start(self, execute: Execute) -> None:
        """Begin running (or sending) jobs with ``execute``."""

    def dispatch(self, job_id: uuid.UUID, kind: str, origin: str | None = None, *, delay: float = 0.0) -> None:
        """Say job ``job_id`` (of ``kind``) is ready, after ``delay`` seconds; ``origin``: the request id that
        queued it, for its log lines. Never a secret: ids only."""

    def shutdown(self) -> None:
        """Stop taking jobs; running ones are asked to stop by the runner."""


class ThreadDispatcher:
    """The embedded default: thread pools of this process run the jobs. Kinds named in ``pools`` run on pools of
    their own (a scan launch waits on its vendor for hours and must not hold the workers of imports)."""

    runs_here = True

    def __init__(self, workers: int, pools: Mapping[str, int] | None = None) -> None:
        self._workers = workers
        self._pool_sizes = dict(pools or {})
        self._default: ThreadPoolExecutor | None = None
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._execute: Execute | None = None
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()

    @property
    def workers(self) -> int:
        """Threads of the default pool."""
        return self._workers

    def start(self, execute: Execute) -> None:
        self._execute = execute
        self._default = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="pmap-job")
        self._pools = {kind: ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"pmap-{kind}")
                       for kind, size in self._pool_sizes.items()}

    def dispatch(self, job_id: uuid.UUID, kind: str, origin: str | None = None, *, delay: float = 0.0) -> None:
        if delay > 0:
            timer = threading.Timer(delay, self._later, (job_id, kind, origin))
            timer.daemon = True
            with self._lock:
                self._timers.add(timer)
            timer.start()
            return
        pool = self._pools.get(kind, self._default)
        if pool is None:
            raise RuntimeError("the job threads are not started")
        try:
            pool.submit(self._run, job_id, kind, origin)
        except RuntimeError:  # shut down meanwhile: the job stays queued for the next start
            log.info("job %s stays queued: the service is stopping", job_id)

    def _later(self, job_id: uuid.UUID, kind: str, origin: str | None) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
        self.dispatch(job_id, kind, origin)

    def _run(self, job_id: uuid.UUID, kind: str, origin: str | None) -> None:
        assert self._execute is not None  # noqa: S101 - set by start
        outcome = self._execute(job_id, origin)
        if isinstance(outcome, Again):
            self.dispatch(job_id, kind, origin, delay=outcome.after)

    def shutdown(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
        for pool in (self._default, *self._pools.values()):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
