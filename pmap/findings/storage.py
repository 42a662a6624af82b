"""Writing findings on PostgreSQL: batched upserts in the import's one transaction, resolution, stream locks.

Everything here runs inside the import's single transaction, so a failure anywhere rolls the
whole import back. Rows (built by :mod:`pmap.findings.rows`) are written in batches of ~1,000 with
Core statements, never ORM objects: binary ``COPY`` of new rows straight into the table; rows that
already exist are copied to a temporary table and merged with one ``INSERT .. SELECT .. ON CONFLICT
DO UPDATE``. One ``SELECT`` per batch tells created from updated (and reopened) rows; a stream that
holds no rows yet (a first import) skips it.

SQLite imports stage their rows instead and publish them in one short step
(:mod:`pmap.findings.staging`); the statements both share (the upsert's update, marking filtered
findings, resolving absent ones) are built here.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from pmap.findings.models import Finding, FindingStatus
from pmap.findings.rows import (
    COPY_HEADER,
    COPY_TRAILER,
    FINGERPRINT,
    OCCURRENCE_MAX_BYTES,
    ROW_COLUMNS,
    STATUS,
    EncodedRows,
    Row,
    RowBuilder,
    Stream,
)

OPEN, RESOLVED, SUPPRESSED, FILTERED = (s.value for s in FindingStatus)
# columns an upsert must not change: the identity and its first import (first_seen keeps the
# earliest sighting, see _earliest)
_KEEP_ON_UPDATE = frozenset({"id", "organization_id", "integration_id", "scope", "fingerprint", "format",
                             "first_import_id", "created_at"})


class _JsonText(sa.types.TypeDecorator[str]):
    """JSON serialized by the row builder (text for SQLite, JSONB wire bytes for binary COPY)."""

    impl = sa.Text
    cache_ok = True


@lru_cache(maxsize=4)
def fast_table(dialect: str) -> sa.Table:
    """The findings table with bulk-friendly types: JSON pre-serialized, plain timestamps (values
    are already UTC-aware), so binding costs no per-value Python processing."""
    cols = []
    for col in Finding.__table__.columns:
        if isinstance(col.type, sa.JSON):
            kind: Any = _JsonText()
        elif isinstance(col.type, sa.types.TypeDecorator):  # UTCDateTime
            kind = sa.DateTime(timezone=True)
        else:
            kind = col.type
        cols.append(sa.Column(col.name, kind, primary_key=col.primary_key))
    return sa.Table(Finding.__tablename__, sa.MetaData(), *cols)


def upsert_updates(table: sa.Table, stmt: Any) -> dict[str, Any]:
    """What an upsert ``stmt`` into ``table`` sets on a finding that exists: every column but the
    identity and its first import, and the earliest first sighting."""
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in _KEEP_ON_UPDATE}
    updates["first_seen"] = _earliest(table, stmt)
    # a finding resolved before and stated fixed again keeps the date it was first resolved
    updates["resolved_at"] = sa.case(
        (sa.and_(table.c.status == RESOLVED, stmt.excluded.status == RESOLVED), table.c.resolved_at),
        else_=stmt.excluded.resolved_at)
    return updates


def mark_filtered_statement(t: sa.Table, stream: Stream, fingerprints: Any) -> Any:
    """Findings seen again but now below the threshold (``fingerprints``: an expanding bind parameter
    or a subquery) become filtered: not open, not resolved either."""
    return (sa.update(t)
            .where(t.c.integration_id == stream.integration_id, t.c.scope == stream.scope,
                   t.c.fingerprint.in_(fingerprints))
            .values(status=FILTERED, last_import_id=stream.import_id, last_seen=stream.now, updated_at=stream.now,
                    resolved_at=None, occurrence_count=1, occurrences=sa.literal_column("'[]'")))


#: temporary tables of one import (PostgreSQL: dropped at commit; SQLite: TEMP, see pmap.findings.staging):
#: the resources the report covered ("" for the unnamed one) and the evidence of merged occurrences
COVERED, OCCURRENCES = "pmap_import_covered", "pmap_import_occurrences"
UNNAMED = ""  # the stream's unnamed resource in COVERED (a finding's asset is NULL)
_covered = sa.table(COVERED, sa.column("resource", sa.Text))
_occurrences = sa.table(OCCURRENCES, sa.column("fingerprint", sa.Text), sa.column("seq", sa.Integer),
                        sa.column("occurrence", sa.Text))


def keep_open_statement(t: sa.Table, stream: Stream, fingerprints: Any) -> Any:
    """Findings this import wrote as their report stated them (fixed, dismissed) that a later entry of the same
    identity in that report states open (``fingerprints``: an expanding bind parameter or a subquery): open, as
    a merged finding is open while any of its occurrences is. A rule's suppression stands."""
    return (sa.update(t)
            .where(t.c.integration_id == stream.integration_id, t.c.scope == stream.scope,
                   t.c.fingerprint.in_(fingerprints), t.c.last_import_id == stream.import_id,
                   t.c.status.in_((RESOLVED, SUPPRESSED)), t.c.suppressed_by_rule_id.is_(None))
            .values(status=OPEN, resolved_at=None))


def resolve_missing_statement(t: sa.Table, stream: Stream, *, covered_only: bool = True) -> Any:
    """Resolve every open, suppressed or filtered finding of the stream this import did not contain; with
    ``covered_only``, only those whose resource (``asset``) the report covered (the COVERED table)."""
    where = [t.c.integration_id == stream.integration_id, t.c.format == stream.format, t.c.scope == stream.scope,
             t.c.status.in_((OPEN, SUPPRESSED, FILTERED)),
             sa.or_(t.c.last_import_id != stream.import_id, t.c.last_import_id.is_(None))]
    if covered_only:
        where.append(sa.func.coalesce(t.c.asset, UNNAMED).in_(sa.select(_covered.c.resource)))
    return sa.update(t).where(*where).values(status=RESOLVED, resolved_at=stream.now, updated_at=stream.now)


def occurrence_rows(items: list[tuple[str, int, str | None]]) -> list[dict[str, Any]]:
    """Parameters of the OCCURRENCES inserts: ``(fingerprint, seq, evidence JSON or None)``; seq 2 is the
    second occurrence; a row without evidence carries the count of a finding past OCCURRENCES_MAX."""
    return [{"fingerprint": fp, "seq": seq, "occurrence": ev} for fp, seq, ev in items]


insert_covered = sa.insert(_covered)
insert_occurrences = sa.insert(_occurrences)

_APPLY_POSTGRESQL = f"""
UPDATE findings AS f
SET occurrence_count = o.n,
    occurrences = jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
        'ip', f.ip,
        'other_ids', CASE WHEN f.other_ids = '[]'::jsonb THEN NULL ELSE f.other_ids END,
        'extra', CASE WHEN f.extra = '{{}}'::jsonb THEN NULL
                      WHEN octet_length(f.extra::text) <= {OCCURRENCE_MAX_BYTES} THEN f.extra
                      ELSE jsonb_build_object('truncated', true) END))) || o.items
FROM (SELECT fingerprint, max(seq) AS n,
             coalesce(jsonb_agg(occurrence::jsonb ORDER BY seq) FILTER (WHERE occurrence IS NOT NULL),
                      '[]'::jsonb) AS items
      FROM {OCCURRENCES} GROUP BY fingerprint) AS o
WHERE f.integration_id = :integration_id AND f.scope = :scope AND f.fingerprint = o.fingerprint
  AND f.last_import_id = :import_id AND f.status <> 'filtered'
"""  # noqa: S608  # module constants only

_APPLY_SQLITE = f"""
UPDATE findings
SET occurrence_count = o.n,
    occurrences = (
        SELECT json_group_array(json(x.occurrence)) FROM (
            SELECT 1 AS seq, json_patch('{{}}', json_object(
                'ip', findings.ip,
                'other_ids', CASE WHEN findings.other_ids = '[]' THEN NULL ELSE json(findings.other_ids) END,
                'extra', CASE WHEN findings.extra = '{{}}' THEN NULL
                              WHEN length(CAST(findings.extra AS BLOB)) <= {OCCURRENCE_MAX_BYTES}
                                  THEN json(findings.extra)
                              ELSE json_object('truncated', json('true')) END)) AS occurrence
            UNION ALL
            SELECT m.seq, m.occurrence FROM temp.{OCCURRENCES} AS m
            WHERE m.fingerprint = findings.fingerprint AND m.occurrence IS NOT NULL
            ORDER BY 1) AS x)
FROM (SELECT fingerprint, max(seq) AS n FROM temp.{OCCURRENCES} GROUP BY fingerprint) AS o
WHERE findings.integration_id = :integration_id AND findings.scope = :scope AND findings.fingerprint = o.fingerprint
  AND findings.last_import_id = :import_id AND findings.status <> 'filtered'
"""  # noqa: S608  # module constants only


def apply_occurrences(conn: Connection, stream: Stream) -> None:
    """Merge the staged later occurrences (OCCURRENCES) into their findings, written by this import: the
    first occurrence's evidence (the finding's own ip, vendor ids and ``extra``, the latter only when it
    fits OCCURRENCE_MAX_BYTES, else ``{"truncated": true}``: the finding's ``extra`` is that evidence)
    followed by the later ones', and their count. One set-based UPDATE; a finding this import wrote with one
    occurrence already holds ``occurrence_count`` 1 and no ``occurrences`` (its row sets them), and so does a
    filtered one (:func:`mark_filtered_statement`: its row holds an earlier report's values)."""
    sqlite = conn.dialect.name == "sqlite"
    params = {"integration_id": stream.integration_id.hex if sqlite else stream.integration_id,
              "scope": stream.scope, "import_id": stream.import_id.hex if sqlite else stream.import_id}
    conn.execute(sa.text(_APPLY_SQLITE if sqlite else _APPLY_POSTGRESQL), params)


def _earliest(table: sa.Table, stmt: Any) -> Any:
    """The first sighting an upsert keeps: the stored one, unless the report saw it earlier (an
    older report imported after a newer one)."""
    return sa.case((stmt.excluded.first_seen < table.c.first_seen, stmt.excluded.first_seen),
                   else_=table.c.first_seen)


def _existing_query(t: sa.Table, stream: Stream) -> Any:
    """``(fingerprint, status)`` of the batch's fingerprints already stored in this stream."""
    # one unique-index probe per fingerprint, whatever the planner believes: within the import's
    # transaction the table's statistics still describe it as it was (often empty), and a plain
    # ``IN (...)`` or join then gets planned as a scan of the whole integration per batch
    # (quadratic). LIMIT 1 keeps the lateral subquery from being flattened into such a join.
    fps = (sa.func.unnest(sa.cast(sa.bindparam("fps"), postgresql.ARRAY(sa.Text)))
           .table_valued("fp").render_derived(name="u"))
    hit = (sa.select(t.c.status).where(t.c.integration_id == stream.integration_id, t.c.scope == stream.scope,
                                       t.c.fingerprint == fps.c.fp).limit(1).lateral("hit"))
    return sa.select(fps.c.fp, hit.c.status).select_from(fps.join(hit, sa.true()))


def _check_binary_types(columns: list[sa.Column[Any]]) -> None:
    """Binary COPY sends each value as its Python type dictates; make sure each column's values
    (as :class:`RowBuilder` makes them) have a wire format the column's type receives."""
    # bytes are passed through as they are: JSON columns get JSONB's binary format (version byte +
    # text), uuid columns their 16 bytes, integer columns 4 big-endian bytes (int4_recv)
    expected = (_JsonText, sa.Uuid, sa.DateTime, sa.Float, sa.Integer, sa.String)
    for col in columns:
        if not isinstance(col.type, expected):
            raise TypeError(f"findings.{col.name}: no binary COPY mapping for {col.type!r}")
        if isinstance(col.type, sa.Integer) and (col.name not in ("port", "line", "occurrence_count")
                                                 or isinstance(col.type, sa.BigInteger)):
            raise TypeError(f"findings.{col.name}: integers are sent as int4; check the row builder packs it")


class _CopyUpsert:
    """PostgreSQL: new rows are ``COPY``-ed straight into the table; rows that exist are copied into
    a temporary table and merged with one ``INSERT .. SELECT .. ON CONFLICT DO UPDATE``. Per-row
    statements (even pipelined) cost ~70 us of client and server time each; this costs a few.
    Copying new rows directly is safe because the import holds the stream's advisory lock
    (:func:`lock_stream`), so no other writer can add them in between."""

    TEMP = "pmap_import_batch"

    def __init__(self, conn: Connection, table: sa.Table) -> None:
        self._conn = conn
        columns = list(table.columns)
        _check_binary_types(columns)
        self._names = [c.name for c in columns]
        if tuple(self._names) != ROW_COLUMNS:
            raise TypeError("the row builder's column order no longer matches the findings table")
        cols = ", ".join(f'"{n}"' for n in self._names)
        # binary COPY: the server receives uuids, timestamps and numbers without parsing text (~25% faster)
        self._copy_new = f"COPY {table.name} ({cols}) FROM STDIN (FORMAT BINARY)"
        self._copy_temp = f"COPY {self.TEMP} ({cols}) FROM STDIN (FORMAT BINARY)"
        self._table_name = table.name
        self._temp_ready = False
        temp = sa.table(self.TEMP, *(sa.column(n) for n in self._names))
        stmt = postgresql.insert(table).from_select(self._names, sa.select(*temp.c))
        self._merge = stmt.on_conflict_do_update(index_elements=["integration_id", "scope", "fingerprint"],
                                                 set_=upsert_updates(table, stmt))

    def _copy(self, sql: str, rows: list[Row] | EncodedRows) -> None:
        raw = self._conn.connection.dbapi_connection
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
            if isinstance(rows, EncodedRows):  # encoded by the parsing process: sent as they are
                copy.write(b"".join((COPY_HEADER, *rows.data, COPY_TRAILER)))
                return
            # values are dumped by Python type, all by psycopg's C dumpers: bytes (already in their
            # column's wire format, see RowBuilder), str, float, datetime; set_types() would pick
            # slower pure-Python dumpers for the bytes and uuid columns
            write = copy.write_row
            for r in rows:
                write(r)

    def __call__(self, rows: list[Row] | EncodedRows, existing: dict[str, str]) -> None:
        if not existing:
            self._copy(self._copy_new, rows)
            return
        new = _subset(rows, lambda fp: fp not in existing)
        if new:
            self._copy(self._copy_new, new)
        if not self._temp_ready:
            self._conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self.TEMP} (LIKE {self._table_name} INCLUDING DEFAULTS) ON COMMIT DROP")
            self._temp_ready = True
        self._copy(self._copy_temp, _subset(rows, lambda fp: fp in existing))
        self._conn.execute(self._merge)
        self._conn.exec_driver_sql(f"TRUNCATE {self.TEMP}")


def _subset(rows: list[Row] | EncodedRows, keep: Any) -> list[Row] | EncodedRows:
    if isinstance(rows, EncodedRows):
        return rows.subset(keep)
    return [r for r in rows if keep(r[FINGERPRINT])]


def _keys(rows: list[Row] | EncodedRows) -> tuple[list[str], list[str]]:
    """The fingerprints and statuses of a batch's rows."""
    if isinstance(rows, EncodedRows):
        return rows.fingerprints, rows.statuses
    return [r[FINGERPRINT] for r in rows], [r[STATUS] for r in rows]


def lock_stream(conn: Connection, integration_id: uuid.UUID, scope: str, wait: float = 0.0) -> bool:
    """Take the transaction-scoped lock of one stream (integration + scope) on PostgreSQL, waiting up to ``wait``
    seconds for another import of it to end; False when it still holds the lock. Always True on SQLite (see
    :func:`pmap.findings.staging.claim_stream`)."""
    if conn.dialect.name != "postgresql":
        return True
    digest = hashlib.blake2b(f"{integration_id}\x1f{scope}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    if wait <= 0:
        return bool(conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key))).scalar())
    # a savepoint: a lock timeout must not end the import's transaction, only this attempt at the lock
    with conn.begin_nested() as attempt:
        conn.execute(sa.text(f"SET LOCAL lock_timeout = {int(wait * 1000)}"))
        try:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available: anything else is the database's
                raise
            attempt.rollback()
            return False
        conn.execute(sa.text("SET LOCAL lock_timeout = DEFAULT"))
    return True


class FindingWriter:
    """PostgreSQL: writes batches of one import's findings in the import's transaction and counts
    what each batch did; :meth:`publish` commits it."""

    def __init__(self, conn: Connection, stream: Stream) -> None:
        self._conn = conn
        self._stream = stream
        self._table = fast_table(conn.dialect.name)
        self._existing = _existing_query(self._table, stream)
        self._load = _CopyUpsert(conn, self._table)
        self.build = RowBuilder(stream, binary=True)
        # a stream with no rows yet (a first import) needs no per-batch lookup: every row is new, as
        # fingerprints are distinct within an import and the stream's lock keeps other imports out
        t = self._table
        self._fresh = conn.execute(
            sa.select(t.c.id).where(t.c.integration_id == stream.integration_id, t.c.scope == stream.scope).limit(1)
        ).first() is None
        # ``resolved``: stated fixed and not resolved before; ``created_resolved``: new and stated fixed
        self.created = self.updated = self.reopened = self.resolved = self.created_resolved = 0
        self._covered_ready = self._occurrences_ready = False
        self._open_again: set[str] = set()  # see keep_open
        self._stated_fixed: dict[str, str] = {}  # rows written resolved: how each was counted (see keep_open)

    def cover(self, resources: list[str]) -> None:
        """Record resources the report covered (distinct; ``""`` is the unnamed one)."""
        if not resources:
            return
        if not self._covered_ready:
            self._conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {COVERED} (resource text) ON COMMIT DROP")
            self._covered_ready = True
        self._conn.execute(insert_covered, [{"resource": r} for r in resources])

    def add_occurrences(self, items: list[tuple[str, int, str | None]]) -> None:
        """Stage later occurrences of findings: ``(fingerprint, seq, evidence JSON or None)`` (see
        :func:`occurrence_rows`); merged into their findings at publish."""
        if not items:
            return
        if not self._occurrences_ready:
            self._conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {OCCURRENCES} (fingerprint text, seq integer, occurrence text) ON COMMIT DROP")
            self._occurrences_ready = True
        self._conn.execute(insert_occurrences, occurrence_rows(items))

    def write(self, rows: list[Row] | EncodedRows) -> None:
        """Upsert one batch of rows with distinct fingerprints (rows, or rows already encoded for COPY)."""
        if not rows:
            return
        fps, statuses = _keys(rows)
        if self._fresh:
            self.created += len(rows)
            self.created_resolved += statuses.count(RESOLVED)
            if RESOLVED in statuses:
                self._stated_fixed.update((fp, "created") for fp, st in zip(fps, statuses, strict=True)
                                          if st == RESOLVED)
            self._load(rows, {})
            return
        existing = dict(self._conn.execute(self._existing, {"fps": fps}).all())
        self.updated += len(existing)
        self.created += len(rows) - len(existing)
        for fp, status in zip(fps, statuses, strict=True):
            before = existing.get(fp)
            if status == RESOLVED:
                if fp not in existing:
                    self.created_resolved += 1
                    self._stated_fixed[fp] = "created"
                elif before != RESOLVED:
                    self.resolved += 1
                    self._stated_fixed[fp] = "resolved"
                else:
                    self._stated_fixed[fp] = "stayed"
            elif before == RESOLVED:
                self.reopened += 1
        self._load(rows, existing)

    def keep_open(self, fingerprints: list[str]) -> None:
        """Findings whose report stated the first occurrence fixed or dismissed and a later one open: they stay
        open (applied at publish, when every row is written; see :func:`keep_open_statement`)."""
        self._open_again.update(fingerprints)

    def _apply_keep_open(self) -> None:
        fps = sorted(self._open_again)
        stmt = keep_open_statement(self._table, self._stream, sa.bindparam("fps", expanding=True))
        flipped: list[str] = []
        for i in range(0, len(fps), 1000):
            flipped += self._conn.execute(stmt.returning(self._table.c.fingerprint), {"fps": fps[i:i + 1000]}).scalars()
        for fp in flipped:  # the counts as the rows were written, corrected: these are open after all
            kind = self._stated_fixed.get(fp)
            if kind == "created":
                self.created_resolved -= 1
            elif kind == "resolved":
                self.resolved -= 1
            elif kind == "stayed":
                self.reopened += 1

    def mark_filtered(self, fingerprints: list[str]) -> None:
        """Findings seen again but now below the threshold: not open, not resolved either."""
        if fingerprints:
            self._conn.execute(mark_filtered_statement(self._table, self._stream, sa.bindparam("fps", expanding=True)),
                               {"fps": fingerprints})

    @contextmanager
    def publish(self) -> Iterator[None]:
        """Merges the staged occurrences; the import's last writes (resolution, its record) run inside; the
        transaction commits after."""
        if self._occurrences_ready:
            apply_occurrences(self._conn, self._stream)
        if self._open_again:
            self._apply_keep_open()
        yield
        self._conn.commit()

    def resolve_missing(self, *, covered_only: bool = True) -> int:
        """Mark resolved the findings of this stream the report did not contain (``covered_only``: only on
        the resources it covered; none when it covered none); returns how many."""
        if covered_only and not self._covered_ready:
            return 0
        statement = resolve_missing_statement(self._table, self._stream, covered_only=covered_only)
        return int(self._conn.execute(statement).rowcount or 0)
