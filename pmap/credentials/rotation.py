"""Key rotation, online and resumable (:func:`rotate`), and proof that every stored secret opens (:func:`verify_all`).

Rotation moves every stored envelope under the primary key-encryption key while servers and workers keep
serving:

- a version 2 envelope under another KEK has its data key re-wrapped (unwrapped by its KEK, wrapped under the
  primary); its content is neither decrypted nor changed, so no credential is in the clear, and the rotation
  records one ``keys.rewrap`` audit event per batch and organization, committed with the batch;
- a version 1 envelope (sealed directly under a keyring key), or every envelope when new data keys are asked
  for, is re-sealed through the one decrypt path (purpose ``key_rotation``, audited per row);
- audit chain keys (``audit_keys``) move first, the same way, so the chain still verifies once an old key goes.

Integrations are walked by id, ``batch`` at a time; each batch's writes and the run's progress
(``key_rotations.cursor``) commit in one transaction, so a run killed at any point (SIGKILL) loses at most its
open batch, and the next run with the same target continues after the last committed one. Each write is
conditional on the envelope's nonce being the one the batch read: an envelope a server sealed again meanwhile is
never overwritten. A final sweep moves what servers still configured with an older KEK wrote behind the walk;
what remains is reported. At every moment every envelope opens with either its old or its new KEK, so processes
that hold both (the README's order) keep serving throughout. Once nothing remains under another key, that key's
canary goes and the key can be retired.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from pmap.audit.models import AuditKey
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.crypto import LEGACY_ENVELOPE, KekRef, KeyStore, envelope_kek
from pmap.core.db import DATABASE_ERRORS, utcnow
from pmap.core.errors import CryptoError
from pmap.core.seams import Actor, AuditSink, CredentialSource, Purpose
from pmap.credentials.models import KeyringCanary, KeyRotation
from pmap.credentials.service import (
    AUDIT_KEY_COLUMN,
    CREDENTIALS_COLUMN,
    WEBHOOK_COLUMN,
    open_audit_key,
    rewrap_envelope,
    seal_audit_key,
    seal_credentials,
    seal_webhook_secrets,
    under_primary,
    verify_keyring_canary,
)
from pmap.integrations.models import Integration

COLUMNS = (CREDENTIALS_COLUMN, WEBHOOK_COLUMN)
Progress = Callable[[int, int], None]  # (integrations walked, integrations in all)


@dataclass(slots=True)
class RotationReport:
    """What a rotation did. ``failed`` names envelopes that did not open (``integration id: column``; they keep
    their old key, which must then stay); ``remaining`` counts envelopes still under another key at the end."""

    target: str = ""
    rewrapped: int = 0  # data keys re-wrapped under the target (content untouched)
    resealed: int = 0  # envelopes re-sealed through the decrypt path (version 1, or new data keys asked for)
    current: int = 0  # already under the target
    changed_meanwhile: int = 0  # sealed again by a server while the batch ran: left as the server wrote it
    failed: list[str] = field(default_factory=list)
    audit_keys: int = 0  # audit chain keys moved (counted apart: they are not integrations' envelopes)
    resumed_after: int = 0  # integrations an earlier, interrupted run had already walked
    resumed_rewrapped: int = 0  # what that run's committed batches had re-wrapped
    resumed_resealed: int = 0  # and re-sealed
    walked: int = 0
    total: int = 0
    remaining: int = 0


def announced_kek(factory: sessionmaker[Session]) -> Callable[[], KekRef | None]:
    """What :meth:`KeyStore.follow` reads: the target of the last key rotation started, so every running process
    seals under it once it has read it (None: no rotation yet; CryptoError: the database did not answer)."""

    def read() -> KekRef | None:
        try:
            with factory() as session:
                target = session.scalar(select(KeyRotation.target).order_by(KeyRotation.id.desc()).limit(1))
            return KekRef.parse(target) if target else None
        except DATABASE_ERRORS as exc:
            raise CryptoError(f"the database did not answer ({type(exc).__name__})") from None
        except ValueError:
            raise CryptoError("the last key rotation names a malformed key") from None

    return read


def rotate(factory: sessionmaker[Session], keys: KeyStore, resolver: CredentialSource,
           batch_audit: Callable[[Session], AuditSink], *, batch: int = 200, new_data_keys: bool = False,
           progress: Progress | None = None, settle_seconds: float = 0.0,
           waiting: Callable[[float], None] | None = None) -> RotationReport:
    """Move every envelope under ``keys.configured``, ``batch`` integrations per committed transaction, continuing
    an interrupted run with the same target; ``batch_audit(session)`` records into the batch's own transaction.

    Starting the run names its target to every running process (:func:`announced_kek`); before its final sweep the
    rotation waits until ``settle_seconds`` (their ``PMAP_KEK_REFRESH_SECONDS``) have passed since, so that what
    they sealed under the old key meanwhile is moved too (``waiting`` hears how long it waits)."""
    keys.follow(None)  # this process seals under the target it was configured with, whatever was named before
    report = RotationReport(target=str(keys.configured))
    with factory() as session:
        verify_keyring_canary(session, keys)  # every stored KEK must open; the target gets its canary
        session.commit()
        _move_audit_keys(session, keys, report)
        session.commit()
        run = _start_run(session, keys.configured, new_data_keys)
    named_at = time.monotonic()  # every process that holds the target seals under it within settle_seconds
    report.resumed_after, report.total = run.done, run.total
    report.resumed_rewrapped, report.resumed_resealed = run.rewrapped, run.resealed
    report.walked = report.resumed_after
    for rows_walked, _last in _walk(factory, keys, resolver, batch_audit, report, run.cursor, batch, new_data_keys,
                                    run.id):
        report.walked += rows_walked
        if progress is not None:
            progress(report.walked, max(report.total, report.walked))
    # what servers still sealing under an older KEK wrote behind the walk (no new data keys: those are done)
    wait = named_at + settle_seconds - time.monotonic()
    if wait > 0:
        if waiting is not None:
            waiting(wait)
        time.sleep(wait)
    current = report.current
    for _ in _walk(factory, keys, resolver, batch_audit, report, None, batch, False, None):
        pass
    report.current = current  # the sweep sees again what the walk counted
    with factory() as session:
        report.remaining = sum(n for ref, n in envelopes_by_key(session).items() if ref != _current(keys))
        done = report.remaining == 0 and not report.failed
        if done:  # nothing is sealed under another key any more: its canary goes, so the key can be retired
            for row in session.scalars(select(KeyringCanary)):
                if KekRef.parse(row.key_id) != keys.configured:
                    session.delete(row)
        session.execute(update(KeyRotation).where(KeyRotation.id == run.id).values(
            finished_at=utcnow(), updated_at=utcnow(), outcome="finished" if done else "incomplete"))
        session.commit()
    return report


def _current(keys: KeyStore) -> str:
    return f"{keys.configured} (version 2)"


@dataclass(frozen=True, slots=True)
class _Run:
    """The run a rotation goes on with: where its committed batches got to, and what they moved."""

    id: int
    cursor: uuid.UUID | None
    done: int
    total: int
    rewrapped: int
    resealed: int


def _start_run(session: Session, target: KekRef, new_data_keys: bool) -> _Run:
    """The run to continue (an unfinished one with this target and mode) or a new one; unfinished runs with another
    target are marked superseded."""
    resumed: KeyRotation | None = None
    for run in session.scalars(select(KeyRotation).where(KeyRotation.finished_at.is_(None)).order_by(KeyRotation.id)):
        if run.target == str(target) and run.new_data_keys == new_data_keys and resumed is None:
            resumed = run
        else:
            run.finished_at, run.outcome = utcnow(), "superseded"
    total = session.scalar(select(func.count()).select_from(Integration)) or 0
    if resumed is None:
        resumed = KeyRotation(target=str(target), new_data_keys=new_data_keys, cursor=None, done=0, total=total,
                              rewrapped=0, resealed=0)
        session.add(resumed)
    session.commit()
    return _Run(resumed.id, resumed.cursor, resumed.done, max(resumed.total, total), resumed.rewrapped,
                resumed.resealed)


def _walk(factory: sessionmaker[Session], keys: KeyStore, resolver: CredentialSource,
          batch_audit: Callable[[Session], AuditSink], report: RotationReport, cursor: uuid.UUID | None, batch: int,
          new_data_keys: bool, run_id: int | None) -> Iterator[tuple[int, uuid.UUID]]:
    """Integrations after ``cursor`` by id, one committed transaction per batch (with the run's progress when
    ``run_id``); yields each batch's size and last id.

    A batch first works out every new envelope (a re-seal's audited decrypt commits on its own connection), then
    writes them all: on SQLite, holding the one write lock while the resolver audits would wait on itself."""
    while True:
        with factory() as session:
            rows = _integrations_after(session, cursor, batch)
            if not rows:
                return
            moves = [move for row in rows for column in COLUMNS
                     if (move := _plan(keys, resolver, report, row, column, new_data_keys)) is not None]
            rewrapped: Counter[uuid.UUID] = Counter()
            moved_before = (report.rewrapped, report.resealed)
            for move in moves:
                if _write(session, move, report) and move.rewrapped:
                    rewrapped[move.organization_id] += 1
            audit = batch_audit(session)
            for organization_id, n in sorted(rewrapped.items()):
                audit.record(actor=Actor(kind="system", name="key-rotation", organization_id=organization_id),
                             action=AuditAction.KEYS_REWRAP, integration_id=None, purpose=Purpose.KEY_ROTATION.value,
                             outcome=AuditOutcome.SUCCESS, detail={"envelopes": n, "kek": str(keys.configured)})
            cursor = rows[-1].id
            if run_id is not None:
                session.execute(update(KeyRotation).where(KeyRotation.id == run_id).values(
                    cursor=cursor, done=KeyRotation.done + len(rows), updated_at=utcnow(),
                    rewrapped=KeyRotation.rewrapped + report.rewrapped - moved_before[0],
                    resealed=KeyRotation.resealed + report.resealed - moved_before[1]))
            session.commit()
        yield len(rows), cursor


@dataclass(frozen=True, slots=True)
class _Move:
    """One envelope's replacement, written only if the stored one still has the nonce read."""

    integration_id: uuid.UUID
    organization_id: uuid.UUID
    column: str
    nonce: str
    envelope: Any
    rewrapped: bool  # data key re-wrapped (else re-sealed through the decrypt path)


def _plan(keys: KeyStore, resolver: CredentialSource, report: RotationReport, row: Integration,
          table_column: tuple[str, str], new_data_keys: bool) -> _Move | None:
    """The new envelope of one column of ``row`` under the primary, or None when there is nothing to move."""
    column = table_column[1]
    envelope = getattr(row, column)
    if envelope is None:
        return None
    if not new_data_keys and under_primary(keys, envelope):
        report.current += 1
        return None
    actor = Actor(kind="system", name="key-rotation", organization_id=row.organization_id)
    try:
        version, _ = envelope_kek(envelope)
        if new_data_keys or version == LEGACY_ENVELOPE:
            moved, rewrapped = _reseal(resolver, keys, row, table_column, actor), False
        else:
            moved, rewrapped = rewrap_envelope(keys, table_column, row.id, envelope), True
        nonce = str(envelope["n"])
    except (CryptoError, KeyError, TypeError):  # a failed re-seal is audited by the resolver; the row keeps its key
        if (name := f"{row.id}: {column}") not in report.failed:  # the final sweep meets it again
            report.failed.append(name)
        return None
    return _Move(row.id, row.organization_id, column, nonce, moved, rewrapped)


def _write(session: Session, move: _Move, report: RotationReport) -> bool:
    """Write one move unless a server sealed that envelope again since it was read; True when written."""
    stored = getattr(Integration, move.column)
    written = session.execute(
        update(Integration)
        .where(Integration.id == move.integration_id, stored["n"].as_string() == move.nonce)
        .values({move.column: move.envelope, "updated_at": Integration.updated_at})  # not an edit of the row
        .execution_options(synchronize_session=False)
    )
    if getattr(written, "rowcount", 0) != 1:
        report.changed_meanwhile += 1
        return False
    if move.rewrapped:
        report.rewrapped += 1
    else:
        report.resealed += 1
    return True


def _reseal(resolver: CredentialSource, keys: KeyStore, row: Integration, table_column: tuple[str, str],
            actor: Actor) -> Any:
    """The envelope opened through the decrypt path (audited) and sealed again under a new data key."""
    if table_column == CREDENTIALS_COLUMN:
        with resolver.resolve(row, purpose=Purpose.KEY_ROTATION, actor=actor) as creds:
            return seal_credentials(keys, row.id, creds.values)
    with resolver.resolve_webhook_secrets(row, purpose=Purpose.KEY_ROTATION, actor=actor) as secrets:
        return seal_webhook_secrets(keys, row.id, secrets)


def _move_audit_keys(session: Session, keys: KeyStore, report: RotationReport) -> None:
    """Move every audit chain key under the primary (the key itself stays: every MAC still verifies); an envelope
    that does not open is named in ``report.failed`` and keeps its old key."""
    for row in session.scalars(select(AuditKey).order_by(AuditKey.id)):
        if under_primary(keys, row.envelope):
            continue
        try:
            if envelope_kek(row.envelope)[0] == LEGACY_ENVELOPE:
                row.envelope = seal_audit_key(keys, row.id, open_audit_key(keys, row.id, row.envelope))
            else:
                row.envelope = rewrap_envelope(keys, AUDIT_KEY_COLUMN, row.id, row.envelope)
        except CryptoError:
            report.failed.append(f"audit key {row.id}: envelope")
            continue
        report.audit_keys += 1


def envelopes_by_key(session: Session) -> Counter[str]:
    """How many stored envelopes (integrations' and audit keys') each key guards: ``pkcs11:kek-2 (version 2)``."""
    counts: Counter[str] = Counter()

    def count(envelope: Any) -> None:
        if envelope is None:
            return
        try:
            version, ref = envelope_kek(envelope)
        except CryptoError:
            counts["malformed"] += 1
            return
        counts[f"{ref} (version {version})"] += 1

    for creds, hook in session.execute(select(Integration.encrypted_credentials, Integration.encrypted_webhook_secret)):
        count(creds)
        count(hook)
    for (envelope,) in session.execute(select(AuditKey.envelope)):
        count(envelope)
    return counts


def _integrations_after(session: Session, cursor: uuid.UUID | None, batch: int) -> list[Integration]:
    """The next ``batch`` integrations by id after ``cursor`` (from the first when None)."""
    stmt = select(Integration).order_by(Integration.id).limit(batch)
    if cursor is not None:
        stmt = stmt.where(Integration.id > cursor)
    return list(session.scalars(stmt))


def _in_batches(session: Session, batch: int) -> Iterator[list[Integration]]:
    """Every integration, by id, ``batch`` rows at a time (the caller commits each batch)."""
    last = None
    while rows := _integrations_after(session, last, batch):
        yield rows
        last = rows[-1].id


@dataclass(slots=True)
class VerificationReport:
    """How many envelopes opened, and which did not (``integration id: column``, ``audit key id: envelope``)."""

    opened: int = 0
    failed: list[str] = field(default_factory=list)
    audit_keys: int = 0  # audit chain keys that opened
    by_key: Counter[str] = field(default_factory=Counter)  # envelopes per key (envelopes_by_key)


def verify_all(session: Session, keys: KeyStore, resolver: CredentialSource, *,
               batch: int = 500) -> VerificationReport:
    """Open every integration's credentials and webhook secret through the one decrypt path (purpose
    ``key_verification``, each decrypt audited as usual) and every audit chain key; change nothing, keep no value."""
    report = VerificationReport(by_key=envelopes_by_key(session))
    keys.forget_data_keys()  # prove each data key unwraps now, not that it did within the cache's lifetime
    for key in session.scalars(select(AuditKey).order_by(AuditKey.id)):
        try:
            open_audit_key(keys, key.id, key.envelope)
            report.audit_keys += 1
        except CryptoError:
            report.failed.append(f"audit key {key.id}: envelope")
    for rows in _in_batches(session, batch):
        for row in rows:
            actor = Actor(kind="system", name="key-verification", organization_id=row.organization_id)
            for column, opens in (("encrypted_credentials", resolver.resolve),
                                  ("encrypted_webhook_secret", resolver.resolve_webhook_secrets)):
                if getattr(row, column) is None:
                    continue
                try:
                    with opens(row, purpose=Purpose.KEY_VERIFICATION, actor=actor):
                        pass  # opened: the values are dropped at once
                except CryptoError:  # audited as a failed decrypt by the resolver
                    report.failed.append(f"{row.id}: {column}")
                    continue
                report.opened += 1
        session.commit()  # no change: ends the read transaction of this batch
    return report
