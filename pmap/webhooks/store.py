"""Database access of the receiver's hot path: a cached integration lookup and batched, durable writes.

Writes are group-committed: :class:`~pmap.webhooks.writer.BatchWriter` hands every delivery that is
waiting at that moment to :meth:`Store.store_batch`, which stores them all, with their decrypt audit
events, in ONE transaction; each request is answered only after that commit.

PostgreSQL: a dedicated pool of autocommit connections (no pre-ping round trip; a dead connection is
discarded and the statement retried once), and one statement per batch whose CTEs insert the
deliveries (``unnest`` of arrays, ``ON CONFLICT DO NOTHING`` on the delivery id) and the audit events.
One statement is one transaction, committed (``synchronous_commit``) before it returns.

The integration row (vendor, flags and the sealed secret envelope; never a plaintext) is cached in
memory, optimistically: a delivery verified against a cached row is stored only if the row in the
database is still exactly that one (enabled, vendor, allow_unsigned, envelope), checked inside the
writing transaction. Otherwise nothing but its audit event is written, the entry is dropped and the
delivery is verified again from a fresh read, so a rotation takes effect for the next delivery in
every worker. Other databases (SQLite) run the same checks with SQLAlchemy Core in one transaction.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import Table, create_engine, event, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from pmap.audit.models import AuditEvent
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.db import new_id, write_transaction
from pmap.core.redaction import scrub
from pmap.core.seams import Actor
from pmap.integrations.models import Integration
from pmap.webhooks import clock
from pmap.webhooks.models import WebhookDelivery

DELIVERIES = cast(Table, WebhookDelivery.__table__)
AUDIT = cast(Table, AuditEvent.__table__)
_I = cast(Table, Integration.__table__)
_LOOKUP = select(_I.c.id, _I.c.organization_id, _I.c.vendor, _I.c.enabled, _I.c.allow_unsigned_webhooks,
                 _I.c.encrypted_webhook_secret)
COLUMNS = ("id", "organization_id", "integration_id", "dedupe_key", "delivery_id", "event", "outcome", "reason",
           "verification", "secret_slot", "content_type", "body", "size", "attempts", "created_at", "processed_at")
_TYPES = ("uuid", "uuid", "uuid", "text", "text", "text", "text", "text", "text", "text", "text", "bytea", "int",
          "int", "timestamptz", "timestamptz")
_AUDIT_COLUMNS = ("id", "organization_id", "actor", "action", "integration_id", "purpose", "outcome", "detail",
                  "created_at")
_AUDIT_TYPES = ("uuid", "uuid", "text", "text", "uuid", "text", "text", "jsonb", "timestamptz")
_GUARD = (("g_vendor", "text"), ("g_allow", "bool"), ("g_envelope", "jsonb"))
_PG_LOOKUP = ("SELECT id, organization_id, vendor, enabled, allow_unsigned_webhooks, encrypted_webhook_secret "
              "FROM integrations WHERE id = %(id)s")
_COLS = ", ".join(COLUMNS)


_OK = ("ok AS (SELECT v.* FROM v JOIN integrations i ON i.id = v.integration_id AND i.enabled "  # noqa: S608  (constant SQL)
       "AND i.vendor = v.g_vendor AND i.allow_unsigned_webhooks = v.g_allow "
       # JSON null and SQL NULL both mean "no secret" (as the resolver reads them)
       "AND COALESCE(i.encrypted_webhook_secret, 'null'::jsonb) = COALESCE(v.g_envelope, 'null'::jsonb)), "
       f"d AS (INSERT INTO webhook_deliveries ({_COLS}) SELECT {_COLS} FROM ok "
       "ON CONFLICT (integration_id, dedupe_key) DO NOTHING RETURNING id)")
_RESULT = (" SELECT v.id, EXISTS (SELECT 1 FROM ok WHERE ok.id = v.id), EXISTS (SELECT 1 FROM d WHERE d.id = v.id)"
           " FROM v")
_V_COLS = ", ".join([*COLUMNS, *(g for g, _ in _GUARD)])


def _row(types: Sequence[str]) -> str:
    # binary parameters (%b): psycopg's C dumpers, no text escaping of bodies
    return "(" + ", ".join(f"%b::{t}" for t in types) + ")"


def _unnest(types: Sequence[str]) -> str:
    # one array parameter per column: the same statement text (and prepared plan) for any batch size
    return "unnest(" + ", ".join(f"%b::{t}[]" for t in types) + ")"


@lru_cache(maxsize=4)
def _pg_sql(single: bool, audits: bool) -> str:
    """One delivery: a VALUES row of scalar parameters (cheapest to send); several: arrays and
    ``unnest`` (psycopg re-parses statements with more than 50 parameters, arrays keep it at 28).
    The ``ok`` CTE stores a delivery only if its integration still reads as it was verified against."""
    types = [*_TYPES, *(t for _, t in _GUARD)]
    rows = f"VALUES {_row(types)}" if single else f"SELECT * FROM {_unnest(types)}"  # noqa: S608  (constant SQL)
    sql = f"WITH v ({_V_COLS}) AS ({rows}), {_OK}"
    if audits:
        columns = ", ".join(_AUDIT_COLUMNS)
        values = f"VALUES {_row(_AUDIT_TYPES)}" if single else f"SELECT * FROM {_unnest(_AUDIT_TYPES)}"  # noqa: S608  (constant SQL)
        sql += f", a AS (INSERT INTO audit_events ({columns}) {values})"
    return sql + _RESULT


_CACHE_MAX = 10_000

T = TypeVar("T")


class IntegrationRow:
    """The receiver's view of an integration (what the resolver and the checks read)."""

    __slots__ = ("allow_unsigned_webhooks", "enabled", "encrypted_webhook_secret", "id", "organization_id", "vendor")

    encrypted_credentials: dict[str, Any] | None = None  # never read here; the resolver's row protocol names it

    def __init__(self, values: Any) -> None:
        (self.id, self.organization_id, self.vendor, self.enabled, self.allow_unsigned_webhooks,
         self.encrypted_webhook_secret) = values

    def same_as(self, other: Any) -> bool:
        """Whether ``other`` (a row read now) carries the same checked facts."""
        return (bool(other.enabled) == bool(self.enabled) and other.vendor == self.vendor
                and bool(other.allow_unsigned_webhooks) == bool(self.allow_unsigned_webhooks)
                and other.encrypted_webhook_secret == self.encrypted_webhook_secret)


class AuditBuffer:
    """An audit sink that keeps events so they are written in the delivery's own transaction."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record(self, *, actor: Actor, action: AuditAction, integration_id: uuid.UUID | None,
               purpose: str | enum.Enum | None, outcome: AuditOutcome, detail: Mapping[str, Any] | None = None) -> None:
        """Keep one event (the same columns :class:`pmap.audit.service.SessionAudit` writes)."""
        detail = dict(detail or {})
        if outcome is not AuditOutcome.SUCCESS:
            # a success names the column only; a failure carries an error text: scrub it as SessionAudit
            # does (scrub is skipped on the hot path because its cost grows with recent resolves)
            detail = {k: scrub(v) if isinstance(v, str) else v for k, v in detail.items()}
        self.rows.append({
            "id": new_id(), "organization_id": actor.organization_id, "actor": actor.label, "action": action.value,
            "integration_id": integration_id, "purpose": purpose.value if isinstance(purpose, enum.Enum) else purpose,
            "outcome": outcome.value, "detail": detail, "created_at": clock.now(),
        })


@dataclass(slots=True)
class Pending:
    """One delivery to store: its row values, its audit events, and the integration row it was
    verified against (``guard``): it is stored only if the integration still reads the same."""

    values: dict[str, Any]
    audit: list[dict[str, Any]]
    guard: IntegrationRow


#: Per pending delivery: "stored" (new row), "seen" (its delivery id exists), "stale" (verify again).
STORED, SEEN, STALE = "stored", "seen", "stale"


class Store:
    """Integration lookup (cached) and batched delivery writes."""

    def __init__(self, engine: Engine, seal: Callable[[], None] | None = None) -> None:
        self.engine = engine
        # the audit chain's sealer, run after each write that stored audit events (outside its transaction; the
        # batch writer runs it once the requests are answered, so a seal never delays a vendor's 2xx)
        self.seal = seal
        self.fast: Engine | None = None
        self._cache: dict[uuid.UUID, IntegrationRow] = {}
        if engine.dialect.name == "postgresql":
            self.fast = create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_pre_ping=False,
                                      pool_size=4, max_overflow=16, pool_recycle=300)
            # the app disposes its engine at shutdown: release this pool with it
            event.listen(engine, "engine_disposed", lambda _engine: self.fast.dispose() if self.fast else None)

    def _pg(self, work: Callable[[Any], T]) -> T:
        """Run ``work(cursor)`` on a pooled autocommit connection, retrying once on a dead connection."""
        import psycopg

        if self.fast is None:
            raise RuntimeError("the PostgreSQL fast path is not set up for this store")
        for attempt in (1, 2):
            raw = self.fast.raw_connection()
            try:
                cur = raw.cursor()
                try:
                    return work(cur)
                finally:
                    cur.close()
            except psycopg.OperationalError:
                raw.invalidate()
                if attempt == 2:
                    raise
            finally:
                raw.close()
        raise AssertionError("unreachable")

    def cached(self, integration_id: uuid.UUID) -> IntegrationRow | None:
        """The cached row of an integration (validated when its delivery is written)."""
        return self._cache.get(integration_id)

    def lookup(self, integration_id: uuid.UUID) -> IntegrationRow | None:
        """The integration as stored now, or None (refreshes the cache)."""
        if self.fast is not None:
            def work(cur: Any) -> Any:
                cur.execute(_PG_LOOKUP, {"id": integration_id})
                return cur.fetchone()
            found = self._pg(work)
        else:
            with self.engine.connect() as conn:
                found = conn.execute(_LOOKUP.where(_I.c.id == integration_id)).first()
        if found is None:
            self._cache.pop(integration_id, None)
            return None
        row = IntegrationRow(tuple(found))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[integration_id] = row
        return row

    def store_batch(self, batch: Sequence[Pending]) -> list[str]:
        """Store a batch in one transaction; per delivery STORED, SEEN or STALE. Audit events are
        written for every delivery, whatever its result (the decrypts happened)."""
        results = self._pg(lambda cur: _pg_batch(cur, batch)) if self.fast is not None else self._core_batch(batch)
        for pending, result in zip(batch, results, strict=True):
            if result == STALE:
                self._cache.pop(pending.guard.id, None)
        return results

    def _core_batch(self, batch: Sequence[Pending]) -> list[str]:
        results = []
        with write_transaction(self.engine) as conn:
            ids = {p.values["integration_id"] for p in batch}
            current = {r.id: r for r in conn.execute(_LOOKUP.where(_I.c.id.in_(ids)))}
            for p in batch:
                now = current.get(p.values["integration_id"])
                if now is None or not p.guard.same_as(now):
                    results.append(STALE)
                    continue
                stored = conn.execute(_insert_returning(conn), p.values).scalar()
                results.append(STORED if stored is not None else SEEN)
            write_audit(conn, [row for p in batch for row in p.audit])
        return results


def _pg_batch(cur: Any, batch: Sequence[Pending]) -> list[str]:
    rows = [(*(p.values[c] for c in COLUMNS), p.guard.vendor, bool(p.guard.allow_unsigned_webhooks),
             _json(p.guard.encrypted_webhook_secret)) for p in batch]
    audit = [tuple(_json(r[c]) if c == "detail" else r[c] for c in _AUDIT_COLUMNS) for p in batch for r in p.audit]
    single = len(rows) == 1 and len(audit) <= 1
    if single:
        params = [*rows[0], *(audit[0] if audit else ())]
    else:  # columns as arrays
        params = [list(column) for column in zip(*rows, strict=True)]
        params += [list(column) for column in zip(*audit, strict=True)] if audit else []
    cur.execute(_pg_sql(single, bool(audit)), params)
    outcome = {ident: (STORED if stored else SEEN) if fresh else STALE for ident, fresh, stored in cur.fetchall()}
    return [outcome[p.values["id"]] for p in batch]


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _insert_returning(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        ins: Any = postgresql.insert(DELIVERIES)
    else:
        ins = sqlite.insert(DELIVERIES)
    return ins.on_conflict_do_nothing(index_elements=["integration_id", "dedupe_key"]).returning(DELIVERIES.c.id)


def write_audit(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert buffered audit events on ``conn`` (inside the caller's transaction)."""
    if rows:
        conn.execute(insert(AUDIT), rows)
