"""SQLite imports: rows are staged in TEMP tables of the importing connection, then published in one short step.

SQLite has one write lock for the whole database. An import that wrote the findings table as it
parsed would hold that lock for the whole parse (minutes for a large report), and every other
writer (a webhook delivery, a token creation, a PATCH) would wait on it and fail. Writes to TEMP
tables take no lock on the main database, so the parsed rows (after the severity pipeline) are
staged there in batches, and :meth:`StagedWriter.publish` moves them in ONE ``BEGIN IMMEDIATE``
transaction of a few set-based statements: the counts of created, updated and reopened findings,
the upsert, the filtered marks, the merge of repeated occurrences, the resolution of absent findings on the
resources the report covered and the import record. Other
writers wait only for that step (4-5 s of a 20-30 s import of 100,000 SARIF findings, 15 s of a
55 s import of 100,000 .nessus findings: ``python -m bench.sqlite_writers``); a failure anywhere
before or during it leaves nothing in the database, as the import's one transaction did before.

The staged rows hold the values the direct upsert would have bound (the TEMP table's columns have
no type, so SQLite stores them as given) and the publish applies every rule of an import unchanged
(identity upsert, earliest first sighting, reopen, filtered, resolution of a full import).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from pmap.core.errors import NotFound
from pmap.findings.models import FindingStatus
from pmap.findings.rows import ROW_COLUMNS, Row, RowBuilder, Stream
from pmap.findings.storage import (
    COVERED,
    OCCURRENCES,
    apply_occurrences,
    fast_table,
    insert_covered,
    insert_occurrences,
    mark_filtered_statement,
    occurrence_rows,
    resolve_missing_statement,
    upsert_updates,
)
from pmap.integrations.models import Integration

STAGE, FILTERED_STAGE = "pmap_import_stage", "pmap_import_filtered"
#: How long the publish step waits for the write lock (other writers hold it for short transactions,
#: another import for its own publish step): staged work is not thrown away lightly.
PUBLISH_WAIT_SECONDS = 120.0
RESOLVED, SUPPRESSED, OPEN = FindingStatus.RESOLVED.value, FindingStatus.SUPPRESSED.value, FindingStatus.OPEN.value

_claimed: set[tuple[uuid.UUID, str]] = set()
_claims_lock = threading.Lock()


@contextmanager
def claim_stream(integration_id: uuid.UUID, scope: str) -> Iterator[bool]:
    """One import per stream (integration + scope) at a time in this process, as PostgreSQL's advisory
    lock gives (:func:`pmap.findings.storage.lock_stream`); yields False when another import holds it.
    Imports publish atomically whatever their order; this keeps their order the order they started."""
    key = (integration_id, scope)
    with _claims_lock:
        taken = key in _claimed
        _claimed.add(key)
    if taken:
        yield False
        return
    try:
        yield True
    finally:
        with _claims_lock:
            _claimed.discard(key)


@lru_cache(maxsize=1)
def _stage() -> sa.Table:
    """The staging table, with the findings table's bulk types so values are bound exactly as the upsert binds them."""
    return sa.Table(STAGE, sa.MetaData(), *(sa.Column(c.name, c.type) for c in fast_table("sqlite").columns))


@lru_cache(maxsize=1)
def _filtered_stage() -> sa.Table:
    return sa.Table(FILTERED_STAGE, sa.MetaData(), sa.Column("fingerprint", sa.Text))


@lru_cache(maxsize=1)
def _publish_upsert() -> Any:
    """``INSERT INTO findings SELECT .. FROM stage ON CONFLICT DO UPDATE``, in the order rows were parsed."""
    t, st = fast_table("sqlite"), _stage()
    if tuple(c.name for c in st.columns) != ROW_COLUMNS:
        raise TypeError("the row builder's column order no longer matches the findings table")
    # the WHERE resolves SQLite's parsing ambiguity of INSERT .. SELECT .. ON CONFLICT
    rows = sa.select(*st.c).where(sa.true()).order_by(sa.literal_column("rowid"))
    stmt = sqlite.insert(t).from_select(list(ROW_COLUMNS), rows)
    return stmt.on_conflict_do_update(index_elements=["integration_id", "scope", "fingerprint"],
                                      set_=upsert_updates(t, stmt))


def _drop(conn: Connection) -> None:
    for name in (STAGE, FILTERED_STAGE, COVERED, OCCURRENCES):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")


class StagedWriter:
    """Stages one import's rows on its connection; :meth:`publish` makes them the database's in one step."""

    def __init__(self, conn: Connection, stream: Stream) -> None:
        self._conn = conn
        self._stream = stream
        self._table = fast_table("sqlite")
        self._insert = sa.insert(_stage())
        self._insert_filtered = sa.insert(_filtered_stage())
        self.build = RowBuilder(stream)
        # ``resolved``: stated fixed and not resolved before; ``created_resolved``: new and stated fixed
        self.created = self.updated = self.reopened = self.resolved = self.created_resolved = 0
        self._covered = self._occurrences = False
        self._open_again: set[str] = set()  # see keep_open

    def write(self, rows: list[Row]) -> None:
        """Stage one batch of rows with distinct fingerprints (no lock on the main database)."""
        if rows:
            self._conn.execute(self._insert, [RowBuilder.as_dict(r) for r in rows])

    def mark_filtered(self, fingerprints: list[str]) -> None:
        """Stage the fingerprints of findings below the threshold (marked filtered at publish)."""
        if fingerprints:
            self._conn.execute(self._insert_filtered, [{"fingerprint": fp} for fp in fingerprints])

    def cover(self, resources: list[str]) -> None:
        """Stage resources the report covered (distinct; ``""`` is the unnamed one)."""
        if resources:
            self._covered = True
            self._conn.execute(insert_covered, [{"resource": r} for r in resources])

    def add_occurrences(self, items: list[tuple[str, int, str | None]]) -> None:
        """Stage later occurrences of findings (merged into them at publish)."""
        if items:
            self._occurrences = True
            self._conn.execute(insert_occurrences, occurrence_rows(items))

    @contextmanager
    def publish(self) -> Iterator[None]:
        """One write transaction: the staged rows are counted and moved in; the caller's last writes
        (resolution, the import record) run inside; it commits after."""
        conn = self._conn
        conn.commit()  # ends the staging transaction (TEMP tables only)
        # the write lock from the start: a deferred transaction that reads first could fail at its
        # first write without waiting (WAL), and waiting is what this step must do when others write
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # busy past PUBLISH_WAIT_SECONDS: run_import answers 503
        try:
            self._move()
            yield
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def keep_open(self, fingerprints: list[str]) -> None:
        """Findings whose report stated the first occurrence fixed or dismissed and a later one open: they stay
        open (applied to the staged rows at publish, before they are counted)."""
        self._open_again.update(fingerprints)

    def _move(self) -> None:
        conn, t, st, s = self._conn, self._table, _stage(), self._stream
        if self._open_again:  # a merged finding is open while any of its occurrences is; a rule's suppression stands
            fps = sorted(self._open_again)
            reopen = (sa.update(st).where(st.c.fingerprint.in_(sa.bindparam("fps", expanding=True)),
                                          st.c.status.in_((RESOLVED, SUPPRESSED)), st.c.suppressed_by_rule_id.is_(None))
                      .values(status=OPEN, resolved_at=None))
            for i in range(0, len(fps), 500):
                conn.execute(reopen, {"fps": fps[i:i + 500]})
        # an integration deleted while its report was parsed: its findings would have nowhere to go
        if conn.execute(sa.select(Integration.id).where(Integration.id == s.integration_id)).first() is None:
            raise NotFound("the integration was deleted while its report was being imported; nothing was imported")
        # what the upsert will do, counted before it runs (fingerprints are distinct within an import)
        staged = int(conn.execute(sa.select(sa.func.count()).select_from(st)).scalar() or 0)
        staged_resolved = int(conn.execute(
            sa.select(sa.func.count()).select_from(st).where(st.c.status == RESOLVED)).scalar() or 0)
        reopens = sa.case((sa.and_(t.c.status == RESOLVED, st.c.status != RESOLVED), 1), else_=0)
        resolves = sa.case((sa.and_(t.c.status != RESOLVED, st.c.status == RESOLVED), 1), else_=0)
        stays = sa.case((sa.and_(t.c.status == RESOLVED, st.c.status == RESOLVED), 1), else_=0)
        existing, reopened, resolved, stayed = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(reopens), 0),
                      sa.func.coalesce(sa.func.sum(resolves), 0), sa.func.coalesce(sa.func.sum(stays), 0))
            .select_from(st.join(t, sa.and_(t.c.integration_id == s.integration_id, t.c.scope == s.scope,
                                            t.c.fingerprint == st.c.fingerprint)))
        ).one()
        self.created, self.updated, self.reopened = staged - int(existing), int(existing), int(reopened)
        self.resolved = int(resolved)
        self.created_resolved = staged_resolved - int(resolved) - int(stayed)
        if staged:
            conn.execute(_publish_upsert())
        conn.execute(mark_filtered_statement(t, s, sa.select(_filtered_stage().c.fingerprint)))
        if self._occurrences:
            # each merged finding reads its own occurrences: by index, not a scan of all of them per finding
            conn.exec_driver_sql(f"CREATE INDEX temp.{OCCURRENCES}_fp ON {OCCURRENCES} (fingerprint, seq)")
            apply_occurrences(conn, s)

    def resolve_missing(self, *, covered_only: bool = True) -> int:
        """Mark resolved the findings of this stream the report did not contain (``covered_only``: only on
        the resources it covered; none when it covered none); returns how many."""
        if covered_only and not self._covered:
            return 0
        statement = resolve_missing_statement(self._table, self._stream, covered_only=covered_only)
        return int(self._conn.execute(statement).rowcount or 0)


@contextmanager
def staging(conn: Connection, stream: Stream) -> Iterator[StagedWriter]:
    """A :class:`StagedWriter` on ``conn`` with fresh, empty TEMP tables, dropped afterwards
    (the connection goes back to the pool); the publish step waits up to PUBLISH_WAIT_SECONDS."""
    previous = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    _drop(conn)  # a connection whose earlier import died before its clean-up
    # no column types: SQLite stores each value as bound, and the findings table's affinity applies at publish
    columns = ", ".join(f'"{c}"' for c in ROW_COLUMNS)  # quoted: "references" is a keyword
    conn.exec_driver_sql(f"CREATE TEMP TABLE {STAGE} ({columns})")
    conn.exec_driver_sql(f"CREATE TEMP TABLE {FILTERED_STAGE} (fingerprint)")
    conn.exec_driver_sql(f"CREATE TEMP TABLE {COVERED} (resource)")
    conn.exec_driver_sql(f"CREATE TEMP TABLE {OCCURRENCES} (fingerprint, seq, occurrence)")
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(PUBLISH_WAIT_SECONDS * 1000)}")
    try:
        yield StagedWriter(conn, stream)
    finally:
        try:
            conn.rollback()  # whatever was not published
            _drop(conn)
            conn.commit()
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous or 0)}")
        except DBAPIError:
            conn.invalidate()  # never hand a connection with staged rows back to the pool
