"""Database engine, session factory and the declarative base shared by every domain."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import JSON, DateTime, MetaData, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from pmap.core.files import private_sqlite_file, sqlite_path

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite
JSONVariant = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """A new random UUID primary key."""
    return uuid.uuid4()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for every PMAP table."""

    metadata = MetaData(naming_convention=NAMING)


def database_location(url: str) -> str:
    """Where ``url`` points, fit for a log line: a SQLite file's absolute path, or the URL without its password."""
    path = sqlite_path(url)
    if path is not None:
        return f"SQLite file {path}"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "a database URL that cannot be parsed"


#: How long a SQLite write waits for the one write lock before it fails (503, see :func:`is_busy`).
#: Imports hold the lock only for their final publish step (:mod:`pmap.findings.staging`): measured
#: 4-11 s for 100,000 SARIF findings and 14-15 s for 100,000 .nessus findings (357 MB) on the shared
#: 2-core machine (``python -m bench.sqlite_writers``), so 30 s covers it at least twice.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
#: SQLite's primary result codes for "another connection holds the lock"
_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
#: PostgreSQL's: lock_not_available (lock_timeout, NOWAIT), serialization_failure, deadlock_detected
_PG_BUSY_STATES = frozenset({"55P03", "40001", "40P01"})


def is_busy(exc: BaseException) -> bool:
    """Whether a database error means another writer held a lock: nothing was written, a retry can succeed."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_BUSY_CODES  # extended codes (BUSY_SNAPSHOT) keep the primary in the low byte
        return "database is locked" in str(orig)
    return getattr(orig, "sqlstate", None) in _PG_BUSY_STATES


#: a database's errors as they reach PMAP: through SQLAlchemy, or from the drivers' own cursors (bulk COPY runs on the
#: raw psycopg cursor): never a report's fault
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, psycopg.Error, sqlite3.Error)


def make_engine(url: str, *, echo: bool = False, busy_timeout: float = SQLITE_BUSY_TIMEOUT_SECONDS) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout of ``busy_timeout`` seconds and a
    private file (0600)."""
    if url.startswith("sqlite"):
        private_sqlite_file(url)  # before SQLite opens it: SQLite would create it under the umask
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": busy_timeout})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def is_foreign_key_violation(exc: BaseException) -> bool:
    """Whether a database error is a foreign key violation (PostgreSQL SQLSTATE 23503, SQLite's message):
    a row written for a parent another transaction deleted meanwhile."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc  # wrapped by SQLAlchemy, or the driver's own
    return getattr(orig, "sqlstate", None) == "23503" or (
        isinstance(orig, sqlite3.IntegrityError) and "FOREIGN KEY constraint failed" in str(orig))


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def write_transaction(engine: Engine, *, advisory_lock: int | None = None) -> Iterator[Connection]:
    """A transaction that holds the write lock from its start, committed on success.

    On SQLite ``BEGIN IMMEDIATE``: in WAL mode a transaction that reads first and writes later fails at once
    ("database is locked") when another connection committed in between; this one waits its turn instead (busy
    timeout), and it is the only writer, so it is serialized with every other. On PostgreSQL, ``advisory_lock``
    (a 64-bit key) serializes it with the other transactions taking that key (``pg_advisory_xact_lock``)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif advisory_lock is not None:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_lock})
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
