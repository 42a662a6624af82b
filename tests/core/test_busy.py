"""Which database errors mean "another writer held the lock" (answered 503 + Retry-After, never 500)."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import OperationalError

from pmap.core.db import is_busy


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("pg")
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException) -> OperationalError:
    return OperationalError("UPDATE integrations ...", {}, orig)


def test_sqlite_busy_and_locked_are_busy_other_errors_are_not() -> None:
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
    snapshot = sqlite3.OperationalError("database is locked")
    snapshot.sqlite_errorcode = 517  # SQLITE_BUSY_SNAPSHOT: an extended code of SQLITE_BUSY
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    assert is_busy(_wrapped(busy)) and is_busy(_wrapped(snapshot)) and is_busy(busy)
    assert not is_busy(_wrapped(full))
    assert is_busy(_wrapped(sqlite3.OperationalError("database is locked")))  # no code: the message decides


def test_postgresql_lock_timeout_serialization_and_deadlock_are_busy() -> None:
    for state in ("55P03", "40001", "40P01"):
        assert is_busy(_wrapped(_PgError(state))), state
    assert not is_busy(_wrapped(_PgError("23505")))  # a unique violation is not a retryable lock
    assert not is_busy(_wrapped(Exception("disk full")))
