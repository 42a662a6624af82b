"""Readiness: named checks, each run with a deadline, answered without anything secret.

``GET /readyz`` runs every check of :class:`Readiness` (the app registers the database, the key
provider, the Redis of shared state when one is configured (:func:`redis_check`) and, once one is
configured, the broker: a check is a name and a callable that raises when
its dependency is not usable). The answer carries, per check, ``ok`` or ``failed`` with the time it
took and, on failure, only the exception's class name (or ``timeout``): never a message, a URL, a
DSN or a key id, since probes call it without a token.

A check that hangs (a database that accepts connections and never answers) is abandoned at its
deadline; at most :data:`MAX_IN_FLIGHT` abandoned calls may still be running, beyond which a check
fails at once rather than start another thread (so a flood of probes cannot pile up threads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Engine

from pmap.core.redis_client import connect

log = logging.getLogger("pmap.health")

T = TypeVar("T")
Check = Callable[[], None]
MAX_IN_FLIGHT = 4


class Busy(Exception):
    """Too many earlier calls are still running: this one is not started."""


class DeadlineExceeded(Exception):
    """The call did not finish in time (it goes on in its thread, unattended)."""


class Bounded:
    """Runs blocking calls in threads of its own, each waited for at most ``timeout`` seconds."""

    def __init__(self, name: str, timeout: float) -> None:
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix=f"pmap-{name}")
        self._in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, fn: Callable[[], T]) -> T:
        """``fn()``, or :class:`DeadlineExceeded` after the timeout, or :class:`Busy` when too many hang."""
        with self._lock:
            if self._in_flight >= MAX_IN_FLIGHT:
                raise Busy()
            self._in_flight += 1
        future = self._executor.submit(fn)
        future.add_done_callback(self._done)
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            raise DeadlineExceeded() from None

    def _done(self, _future: Any) -> None:
        with self._lock:
            self._in_flight -= 1

    def shutdown(self) -> None:
        """Stop taking calls; a hung one is left to end on its own."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def database_check(engine: Engine, timeout: float) -> Check:
    """A real read of the schema (the migration table), with a server-side timeout on PostgreSQL."""
    millis = max(1, int(timeout * 1000))

    def check() -> None:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL statement_timeout = {millis}"))
            conn.execute(text("SELECT version_num FROM alembic_version")).all()

    return check


def redis_check(url: str, timeout: float) -> Check:
    """A PING of the Redis at ``url`` (connect and answer each within ``timeout``); one client, reused."""
    client = connect(url, timeout)

    def check() -> None:
        client.ping()

    return check


class Readiness:
    """The named checks behind ``/readyz``; append one with :meth:`add` (issue 12 adds the broker)."""

    def __init__(self, timeout: float) -> None:
        self._checks: dict[str, Check] = {}
        self._bounded = Bounded("ready", timeout)

    def add(self, name: str, check: Check) -> None:
        """Register a check under a fixed name (the name is the key of its result)."""
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} registered twice")
        self._checks[name] = check

    @property
    def names(self) -> list[str]:
        """The registered checks, in order."""
        return list(self._checks)

    def run(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """Every check, one after another: all ok, and each one's ``{status, seconds[, error]}``."""
        results: dict[str, dict[str, Any]] = {}
        for name, check in self._checks.items():
            started = time.perf_counter()
            result: dict[str, Any] = {"status": "ok"}
            try:
                self._bounded(check)
            except (DeadlineExceeded, Busy):
                result = {"status": "failed", "error": "timeout"}
                log.warning("readiness: %s did not answer within %.1f s", name, self._bounded.timeout)
            except Exception as exc:  # the class name is safe to answer; the message may hold a host or URL
                result = {"status": "failed", "error": type(exc).__name__}
                log.warning("readiness: %s failed", name, exc_info=exc)  # the log formatter scrubs it
            result["seconds"] = round(time.perf_counter() - started, 4)
            results[name] = result
        return all(r["status"] == "ok" for r in results.values()), results

    def shutdown(self) -> None:
        """Release the check threads."""
        self._bounded.shutdown()
