"""The tamper-evident audit chain: sealing, verifying, pruning and streaming audit events.

Events are inserted unsealed (``seq`` and ``mac`` NULL) by every writer, so no hot write path takes a lock
for the chain. The **sealer** (:meth:`AuditChain.seal`) runs right after each commit that wrote audit events,
in a short transaction of its own, serialized (PostgreSQL: ``pg_advisory_xact_lock`` on :data:`LOCK_KEY`;
SQLite: ``BEGIN IMMEDIATE``, its one writer). It gives each unsealed event, per organization and in
``(created_at, id)`` order, the next ``seq`` and ``mac = HMAC-SHA256(audit key, canonical(prev_mac, seq,
fields))`` (:func:`canonical`), and moves the organization's head (``audit_chain_heads``).

:func:`verify_chain` never seals (sealing there would bless rows written behind PMAP's back): it recomputes
each MAC from the organization's anchor, checks the sequence is contiguous and ends at the head, and names
the first event that was edited, deleted, reordered or inserted, and any event left unsealed for longer than
:data:`UNSEALED_GRACE`. :func:`prune` deletes the oldest events only by moving the anchor forward, and
records that as an ``audit.prune`` event, itself chained.

The audit key (32 random bytes) is generated on first use and stored sealed under the key-encryption key
(keyring or HSM; ``audit_keys``); it is opened through :func:`pmap.credentials.service.open_audit_key` (not
audited as an event: see there) and kept in this process's memory only.

What the chain does not prove: someone with write access to the database can cut the newest events and set
the head back to an earlier (seq, mac) pair that is genuine. The stream (``PMAP_AUDIT_STREAM``) sends each
event out as it is sealed, so a SIEM holds the head too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import logging.handlers
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Row, Table, bindparam, delete, event, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from pmap.audit.models import AuditChainHead, AuditEvent, AuditKey
from pmap.auth.models import Organization
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.crypto import KeyStore
from pmap.core.db import new_id, utcnow, write_transaction
from pmap.core.errors import ConfigurationError, CryptoError, PmapError
from pmap.core.seams import Actor
from pmap.credentials.service import AUDIT_KEY_BYTES, open_audit_key, seal_audit_key

log = logging.getLogger("pmap.audit.chain")

EVENTS = cast(Table, AuditEvent.__table__)
HEADS = cast(Table, AuditChainHead.__table__)
KEYS = cast(Table, AuditKey.__table__)

GENESIS = "0" * 64  #: the ``prev_mac`` of an organization's first event
LOCK_KEY = 0x706D61706175_6474  #: the advisory lock serializing sealers and prunes on PostgreSQL ("pmapaudt")
BATCH = 2_000  #: events sealed per transaction
VERIFY_CHUNK = 5_000  #: events read per query while verifying
UNSEALED_GRACE = timedelta(seconds=10)  #: an event unsealed for longer was inserted outside PMAP or not sealed
API_VERIFY_LAST = 1_000  #: events from the head the API verifies on each listing
_MARK = "pmap_audit_unsealed"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(prev_mac: str, seq: int, row: Any) -> bytes:
    """The bytes an event's MAC covers: the previous MAC, its seq and every column an event carries
    (``detail`` as canonical JSON, ``created_at`` in UTC ISO 8601)."""
    return orjson.dumps([
        prev_mac, seq, str(row.id), str(row.organization_id), row.actor, row.action,
        str(row.integration_id) if row.integration_id is not None else None, row.purpose, row.outcome,
        row.detail if row.detail is not None else {}, _iso(row.created_at),
    ], option=orjson.OPT_SORT_KEYS)


def event_mac(key: bytes, prev_mac: str, seq: int, row: Any) -> str:
    """The chained MAC of one event (hex)."""
    return hmac.new(key, canonical(prev_mac, seq, row), hashlib.sha256).hexdigest()


class AuditKeys:
    """Audit keys opened in this process (by ``audit_keys`` id); never logged, printed or sent anywhere."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self._open: dict[uuid.UUID, bytes] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection | Session, key_id: uuid.UUID) -> bytes | None:
        """The key of ``key_id``, or None when no such row exists or its envelope does not open."""
        key = self._open.get(key_id)
        if key is not None:
            return key
        envelope = conn.execute(select(KEYS.c.envelope).where(KEYS.c.id == key_id)).scalar()
        if envelope is None:
            return None
        try:
            key = open_audit_key(self.keys, key_id, envelope)
        except CryptoError:
            log.warning("audit key %s does not open with the configured keys", key_id)
            return None
        with self._lock:
            self._open[key_id] = key
        return key

    def signing(self, conn: Connection) -> tuple[uuid.UUID, bytes]:
        """The key new MACs use (the oldest audit key), generated and stored sealed on first use; call it
        under the chain's write lock (:func:`pmap.core.db.write_transaction`): two processes never make one each."""
        key_id = conn.execute(select(KEYS.c.id).order_by(KEYS.c.created_at, KEYS.c.id).limit(1)).scalar()
        if key_id is None:
            key_id, key = new_id(), os.urandom(AUDIT_KEY_BYTES)
            conn.execute(insert(KEYS).values(id=key_id, envelope=seal_audit_key(self.keys, key_id, key),
                                             created_at=utcnow()))
            with self._lock:
                self._open[key_id] = key
            log.info("generated audit key %s", key_id)
            return key_id, key
        opened = self.get(conn, key_id)
        if opened is None:
            raise ConfigurationError(f"audit key {key_id} does not open with the configured keys")
        return key_id, opened


def streamed(row: Any, seq: int, mac: str) -> dict[str, Any]:
    """What the stream sends of one event: the API's fields, the organization, seq and mac. Never a secret
    (``detail`` holds none: it is scrubbed when written)."""
    return {"id": str(row.id), "organization_id": str(row.organization_id), "seq": seq, "mac": mac,
            "actor": row.actor, "action": row.action,
            "integration_id": str(row.integration_id) if row.integration_id is not None else None,
            "purpose": row.purpose, "outcome": row.outcome, "detail": row.detail if row.detail is not None else {},
            "created_at": _iso(row.created_at)}


class _Syslog(logging.handlers.SysLogHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        raise RuntimeError("syslog emit failed")


class AuditStream:
    """Sends sealed events out, once each, as JSON lines: ``file:/abs/path.jsonl`` (appended), ``syslog``
    (the local /dev/log) or ``syslog://host:port`` (UDP). A failure is logged and counted, never raised."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.failures = 0
        self.on_failure: Callable[[str], None] | None = None  # counted in pmap_audit_chain_failures
        self._syslog: logging.Handler | None = None
        self._lock = threading.Lock()
        self._path, self._address = parse_stream(target)

    def send(self, events: list[dict[str, Any]]) -> None:
        """Send ``events``; a failing destination never fails the caller."""
        if not events:
            return
        try:
            lines = [orjson.dumps(e).decode() for e in events]
            with self._lock:
                if self._path is not None:
                    fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    try:
                        os.write(fd, ("\n".join(lines) + "\n").encode())
                    finally:
                        os.close(fd)
                elif self._address is not None:
                    if self._syslog is None:
                        self._syslog = _Syslog(address=self._address)
                    for line in lines:
                        self._syslog.handle(logging.makeLogRecord(
                            {"name": "pmap.audit", "msg": "%s", "args": (line,), "levelno": logging.INFO,
                             "levelname": "INFO"}))
        except Exception as exc:
            self.failures += 1
            if self.on_failure is not None:
                self.on_failure("stream")
            log.warning("audit stream %s failed (%s); %d event(s) not streamed, %d failure(s) so far",
                        self.target.split(":", 1)[0], type(exc).__name__, len(events), self.failures)


def parse_stream(target: str) -> tuple[Path | None, str | tuple[str, int] | None]:
    """``PMAP_AUDIT_STREAM`` as (file path, None) or (None, syslog address); ValueError when malformed."""
    if target.startswith("file:"):
        path = Path(target[len("file:"):])
        if not path.is_absolute():
            raise ValueError("file: needs an absolute path (file:/var/log/pmap/audit.jsonl)")
        return path, None
    if target == "syslog":
        return None, "/dev/log"
    if target.startswith("syslog://"):
        parts = urlsplit(target)
        if not parts.hostname or not parts.port:
            raise ValueError("syslog://host:port needs a host and a port")
        return None, (parts.hostname, parts.port)
    raise ValueError("must be file:/absolute/path.jsonl, syslog, or syslog://host:port")


class AuditChain:
    """The sealer of one process: :meth:`install` runs it after every commit that wrote audit events."""

    def __init__(self, engine: Engine, keys: KeyStore, stream: AuditStream | None = None,
                 on_failure: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.keys = AuditKeys(keys)
        self.stream = stream
        self.failures = 0  # seals that failed (their events wait for the next seal)
        self._on_failure = on_failure  # "seal" or "stream": pmap_audit_chain_failures
        if stream is not None:
            stream.on_failure = on_failure
        self._local = threading.local()

    def install(self, sessions: sessionmaker[Session]) -> None:
        """Seal after each commit of a session of ``sessions`` that inserted an audit event."""
        event.listen(sessions, "after_flush", _mark_audit)
        event.listen(sessions, "after_commit", self._after_commit)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(_MARK, False):
            self.seal_quietly()

    def seal_quietly(self) -> None:
        """:meth:`seal`, logging (never raising) a failure: the events stay unsealed until the next seal."""
        if getattr(self._local, "sealing", False):
            return
        self._local.sealing = True
        try:
            self.seal()
        except Exception as exc:
            self.failures += 1
            if self._on_failure is not None:
                self._on_failure("seal")
            log.warning("sealing audit events failed (%s); they are sealed by the next seal", type(exc).__name__)
        finally:
            self._local.sealing = False

    def seal(self) -> int:
        """Seal every unsealed event (any organization); returns how many. Streams them after each commit."""
        total = 0
        while True:
            sealed = self._seal_batch()
            total += len(sealed)
            if self.stream is not None:
                self.stream.send(sealed)
            if len(sealed) < BATCH:
                return total

    def _seal_batch(self) -> list[dict[str, Any]]:
        with write_transaction(self.engine, advisory_lock=LOCK_KEY) as conn:  # sealers one at a time
            rows = conn.execute(select(EVENTS).where(EVENTS.c.seq.is_(None))
                                .order_by(EVENTS.c.created_at, EVENTS.c.id).limit(BATCH)).all()
            if not rows:
                return []
            key_id, key = self.keys.signing(conn)
            orgs = {r.organization_id for r in rows}
            known = {h.organization_id: (h.seq, h.mac)
                     for h in conn.execute(select(HEADS).where(HEADS.c.organization_id.in_(orgs)))}
            heads = dict(known)
            updates, out = [], []
            for r in rows:
                seq, prev = heads.get(r.organization_id, (0, GENESIS))
                seq += 1
                mac = event_mac(key, prev, seq, r)
                heads[r.organization_id] = (seq, mac)
                updates.append({"b_id": r.id, "b_seq": seq, "b_mac": mac, "b_key": key_id})
                out.append(streamed(r, seq, mac))
            conn.execute(update(EVENTS).where(EVENTS.c.id == bindparam("b_id"))
                         .values(seq=bindparam("b_seq"), mac=bindparam("b_mac"), key_id=bindparam("b_key")), updates)
            for org, (seq, mac) in heads.items():
                if org in known:
                    conn.execute(update(HEADS).where(HEADS.c.organization_id == org).values(seq=seq, mac=mac))
                else:
                    conn.execute(insert(HEADS).values(organization_id=org, seq=seq, mac=mac, anchor_seq=1,
                                                      anchor_prev_mac=GENESIS))
        return out


def _mark_audit(session: Session, _context: Any) -> None:
    if any(isinstance(o, AuditEvent) for o in session.new):
        session.info[_MARK] = True


# --- verification ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong with a chain: what, and the event (id and seq) where it shows."""

    kind: str  # edited | gap | inserted | unsealed | head | anchor | key
    message: str
    event_id: uuid.UUID | None = None
    seq: int | None = None


@dataclass(slots=True)
class OrgChain:
    """One organization's chain, as verified."""

    organization_id: uuid.UUID
    name: str
    head_seq: int | None
    anchor_seq: int | None
    first_seq: int | None = None  # the first seq verified
    verified: int = 0  # events whose MAC was recomputed
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(slots=True)
class ChainReport:
    """Every organization verified, and when."""

    organizations: list[OrgChain] = field(default_factory=list)
    verified_at: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.organizations)


Db = Connection | Session


def verify_chain(db: Db, keys: KeyStore | AuditKeys, *, organization_id: uuid.UUID | None = None,
                 from_seq: int | None = None, to_seq: int | None = None, last: int | None = None,
                 now: datetime | None = None) -> ChainReport:
    """Verify the chain of every organization (or of one; or the seqs ``from_seq``..``to_seq``; or the
    ``last`` events up to the head) from its anchor. Reads only: never seals, never prints a key or a detail."""
    keys = keys if isinstance(keys, AuditKeys) else AuditKeys(keys)
    now = now or utcnow()
    stmt = select(Organization.id, Organization.name).order_by(Organization.name)
    if organization_id is not None:
        stmt = stmt.where(Organization.id == organization_id)
    report = ChainReport(verified_at=now)
    for org_id, name in db.execute(stmt).all():
        report.organizations.append(_verify_org(db, keys, org_id, name, from_seq, to_seq, last, now))
    return report


def _verify_org(db: Db, keys: AuditKeys, org: uuid.UUID, name: str, from_seq: int | None, to_seq: int | None,
                last: int | None, now: datetime) -> OrgChain:
    head = db.execute(select(HEADS).where(HEADS.c.organization_id == org)).first()
    out = OrgChain(org, name, head.seq if head else None, head.anchor_seq if head else None)
    in_org = EVENTS.c.organization_id == org
    if head is None:
        stray = db.execute(select(EVENTS.c.id, EVENTS.c.seq).where(in_org, EVENTS.c.seq.is_not(None)).limit(1)).first()
        if stray is not None:
            out.problem = Problem("head", f"event {stray.id} (seq {stray.seq}) is sealed but the organization has "
                                          "no chain head: the head was deleted", stray.id, stray.seq)
        else:
            out.problem = _unsealed(db, in_org, now)
        return out
    outside = db.execute(select(EVENTS.c.id, EVENTS.c.seq).where(
        in_org, (EVENTS.c.seq < head.anchor_seq) | (EVENTS.c.seq > head.seq)).order_by(EVENTS.c.seq).limit(1)).first()
    if outside is not None:
        out.problem = Problem("inserted", f"event {outside.id} (seq {outside.seq}) lies outside the chain "
                                          f"({head.anchor_seq}..{head.seq}): inserted outside PMAP",
                              outside.id, outside.seq)
        return out
    start = head.anchor_seq
    if last is not None:
        start = max(start, head.seq - last + 1)
    if from_seq is not None:
        start = max(start, from_seq)
    end = head.seq if to_seq is None else min(head.seq, to_seq)
    out.first_seq = start
    if start == head.anchor_seq:
        prev = head.anchor_prev_mac
    else:
        before = db.execute(select(EVENTS.c.mac).where(in_org, EVENTS.c.seq == start - 1)).scalar()
        if before is None:
            out.problem = Problem("gap", f"the event with seq {start - 1} is missing (deleted)", None, start - 1)
            return out
        prev = before
    out.problem = _walk(db, keys, in_org, start, end, prev, head, out)
    if out.problem is None and head.anchor_seq > 1 and start == head.anchor_seq and not _pruned_to(db, in_org, head):
        out.problem = Problem("anchor", f"the chain's anchor is at seq {head.anchor_seq} but no chained audit.prune "
                                        "event moved it there", None, head.anchor_seq)
    if out.problem is None:
        out.problem = _unsealed(db, in_org, now)
    return out


def _walk(db: Db, keys: AuditKeys, in_org: Any, start: int, end: int, prev: str, head: Row[Any],
          out: OrgChain) -> Problem | None:
    expected, last_id = start, None
    while expected <= end:
        rows = db.execute(select(EVENTS).where(in_org, EVENTS.c.seq >= expected,
                                               EVENTS.c.seq <= min(end, expected + VERIFY_CHUNK - 1))
                          .order_by(EVENTS.c.seq)).all()
        for r in rows:
            if r.seq != expected:
                after = f" after event {last_id}" if last_id else ""
                return Problem("gap", f"events with seq {expected}..{r.seq - 1} are missing (deleted){after}; "
                                      f"the next is event {r.id} (seq {r.seq})", r.id, expected)
            key = keys.get(db, r.key_id) if r.key_id is not None else None
            if key is None:
                return Problem("key", f"event {r.id} (seq {r.seq}) names no audit key that opens: inserted or "
                                      "edited outside PMAP", r.id, r.seq)
            if not hmac.compare_digest(event_mac(key, prev, r.seq, r), r.mac or ""):
                return Problem("edited", f"event {r.id} (seq {r.seq}) does not verify: edited, reordered or "
                                         "inserted outside PMAP", r.id, r.seq)
            prev, last_id, expected = r.mac, r.id, expected + 1
            out.verified += 1
        if not rows:  # a short chunk is followed by a query from ``expected``: this, or a gap above
            return Problem("gap", f"events with seq {expected}..{end} are missing (deleted) at the end of the "
                                  "chain", None, expected)
    if end == head.seq and start <= end and prev != head.mac:
        return Problem("head", f"the chain head (seq {head.seq}) does not match its last event: the head or the "
                               "event was changed", last_id, head.seq)
    return None


def _pruned_to(db: Db, in_org: Any, head: Row[Any]) -> bool:
    """Whether a chained audit.prune event moved the anchor to where it is."""
    details = db.execute(select(EVENTS.c.detail).where(in_org, EVENTS.c.action == AuditAction.AUDIT_PRUNE.value,
                                                       EVENTS.c.seq >= head.anchor_seq)).scalars()
    return any(isinstance(d, dict) and d.get("before_seq") == head.anchor_seq for d in details)


def _unsealed(db: Db, in_org: Any, now: datetime) -> Problem | None:
    row = db.execute(select(EVENTS.c.id).where(in_org, EVENTS.c.seq.is_(None),
                                               EVENTS.c.created_at < now - UNSEALED_GRACE)
                     .order_by(EVENTS.c.created_at, EVENTS.c.id).limit(1)).first()
    if row is None:
        return None
    return Problem("unsealed", f"unsealed event {row.id}: inserted outside PMAP or not sealed", row.id, None)


# --- retention ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Pruned:
    deleted: int
    anchor_seq: int


def prune(chain: AuditChain, organization_id: uuid.UUID, before_seq: int, actor: Actor) -> Pruned:
    """Delete the organization's events with seq < ``before_seq`` by moving its anchor there, and record an
    ``audit.prune`` event (chained like any other). Refused (PmapError) when the chain up to there does not
    verify: pruning must not hide an edit."""
    with write_transaction(chain.engine, advisory_lock=LOCK_KEY) as conn:
        head = conn.execute(select(HEADS).where(HEADS.c.organization_id == organization_id)).first()
        if head is None:
            raise PmapError("this organization has no sealed audit events to prune")
        if not head.anchor_seq < before_seq <= head.seq + 1:
            raise PmapError(f"--before-seq must be {head.anchor_seq + 1}..{head.seq + 1} (the chain holds "
                            f"{head.anchor_seq}..{head.seq})")
        checked = verify_chain(conn, chain.keys, organization_id=organization_id, to_seq=before_seq - 1)
        problem = checked.organizations[0].problem if checked.organizations else None
        if problem is not None and problem.kind != "unsealed":
            raise PmapError(f"refusing to prune: the chain does not verify: {problem.message}")
        prev = conn.execute(select(EVENTS.c.mac).where(EVENTS.c.organization_id == organization_id,
                                                       EVENTS.c.seq == before_seq - 1)).scalar()
        if prev is None:
            raise PmapError(f"the event with seq {before_seq - 1} is missing")
        deleted = conn.execute(delete(EVENTS).where(EVENTS.c.organization_id == organization_id,
                                                    EVENTS.c.seq < before_seq)).rowcount
        conn.execute(update(HEADS).where(HEADS.c.organization_id == organization_id)
                     .values(anchor_seq=before_seq, anchor_prev_mac=prev))
        conn.execute(insert(EVENTS).values(
            id=new_id(), organization_id=organization_id, actor=actor.label, action=AuditAction.AUDIT_PRUNE.value,
            integration_id=None, purpose=None, outcome=AuditOutcome.SUCCESS.value,
            detail={"before_seq": before_seq, "deleted": deleted, "previous_anchor_seq": head.anchor_seq},
            created_at=utcnow()))
    chain.seal()
    return Pruned(deleted=deleted, anchor_seq=before_seq)


def unsealed_count(db: Db) -> int:
    """Events waiting for the sealer (any organization)."""
    return int(db.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.seq.is_(None))).scalar() or 0)

