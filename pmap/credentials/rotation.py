"""Re-sealing every stored secret under the keyring's primary key, so an old key can be retired; proving every
stored secret still opens (:func:`verify_all`).

The audit chain keys (``audit_keys``) are re-sealed first (opened with
:func:`~pmap.credentials.service.open_audit_key`, not audited as events: see there), so the chain still
verifies once the old key is gone. Each integration row is opened through the one decrypt path (purpose
``key_rotation``, audited per row with
the system actor of its organization) and sealed again under the primary key; rows already under
the primary are left alone. After a rotation no envelope names an old key, and the old key can be
removed from the keyring file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pmap.audit.models import AuditKey
from pmap.core.crypto import Keyring
from pmap.core.errors import CryptoError
from pmap.core.seams import Actor, CredentialSource, Purpose
from pmap.credentials.models import KeyringCanary
from pmap.credentials.service import (
    open_audit_key,
    seal_audit_key,
    seal_credentials,
    seal_webhook_secrets,
    verify_keyring_canary,
)
from pmap.integrations.models import Integration


@dataclass(slots=True)
class RotationReport:
    """How many envelopes were re-sealed, how many already used the primary key, and which could not
    be opened (``integration id: column``; they keep their old key, which must then stay)."""

    resealed: int = 0
    current: int = 0
    failed: list[str] = field(default_factory=list)
    audit_keys: int = 0  # audit chain keys re-sealed (counted apart: they are not integrations' envelopes)


def reseal_all(session: Session, keyring: Keyring, resolver: CredentialSource, *, batch: int = 500) -> RotationReport:
    """Re-seal every integration's credentials and webhook secret under the primary key; commits per batch."""
    verify_keyring_canary(session, keyring)  # the primary gets its canary; every stored key must open
    session.commit()
    report = RotationReport()
    reseal_audit_keys(session, keyring, report)
    session.commit()
    for rows in _in_batches(session, batch):
        for row in rows:
            actor = Actor(kind="system", name="key-rotation", organization_id=row.organization_id)
            if row.encrypted_credentials is not None:
                _reseal(report, row, "encrypted_credentials", keyring, lambda r=row, a=actor: _credentials(
                    resolver, keyring, r, a))
            if row.encrypted_webhook_secret is not None:
                _reseal(report, row, "encrypted_webhook_secret", keyring, lambda r=row, a=actor: _webhook(
                    resolver, keyring, r, a))
        session.commit()
    if not report.failed:
        # nothing is sealed under another key any more: its canary goes, so the key can be retired
        session.execute(delete(KeyringCanary).where(KeyringCanary.key_id != keyring.primary))
        session.commit()
    return report


def _in_batches(session: Session, batch: int) -> Iterator[list[Integration]]:
    """Every integration, by id, ``batch`` rows at a time (the caller commits each batch)."""
    last = None
    while True:
        stmt = select(Integration).order_by(Integration.id).limit(batch)
        if last is not None:
            stmt = stmt.where(Integration.id > last)
        rows = list(session.scalars(stmt))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def reseal_audit_keys(session: Session, keyring: Keyring, report: RotationReport) -> None:
    """Re-seal every audit chain key under the primary (the key itself stays: every MAC still verifies); an
    envelope that does not open is named in ``report.failed`` and keeps its old platform key."""
    for row in session.scalars(select(AuditKey).order_by(AuditKey.id)):
        if row.envelope.get("kid") == keyring.primary:
            continue
        try:
            row.envelope = seal_audit_key(keyring, row.id, open_audit_key(keyring, row.id, row.envelope))
        except CryptoError:
            report.failed.append(f"audit key {row.id}: envelope")
            continue
        report.audit_keys += 1


def _reseal(report: RotationReport, row: Integration, column: str, keyring: Keyring, seal: Any) -> None:
    """Re-seal one envelope of ``row`` unless it already uses the primary; a failure is recorded, not raised."""
    if getattr(row, column).get("kid") == keyring.primary:
        report.current += 1
        return
    try:
        setattr(row, column, seal())
    except CryptoError:  # audited as a failed decrypt by the resolver; the row keeps its old envelope
        report.failed.append(f"{row.id}: {column}")
        return
    report.resealed += 1


def _credentials(resolver: CredentialSource, keyring: Keyring, row: Integration, actor: Actor) -> Any:
    with resolver.resolve(row, purpose=Purpose.KEY_ROTATION, actor=actor) as creds:
        return seal_credentials(keyring, row.id, creds.values)


def _webhook(resolver: CredentialSource, keyring: Keyring, row: Integration, actor: Actor) -> Any:
    with resolver.resolve_webhook_secrets(row, purpose=Purpose.KEY_ROTATION, actor=actor) as secrets:
        return seal_webhook_secrets(keyring, row.id, secrets)


@dataclass(slots=True)
class VerificationReport:
    """How many envelopes opened, and which did not (``integration id: column``, ``audit key id: envelope``)."""

    opened: int = 0
    failed: list[str] = field(default_factory=list)
    audit_keys: int = 0  # audit chain keys that opened


def verify_all(session: Session, keyring: Keyring, resolver: CredentialSource, *,
               batch: int = 500) -> VerificationReport:
    """Open every integration's credentials and webhook secret through the one decrypt path (purpose
    ``key_verification``, each decrypt audited as usual) and every audit chain key; change nothing, keep no value."""
    report = VerificationReport()
    for key in session.scalars(select(AuditKey).order_by(AuditKey.id)):
        try:
            open_audit_key(keyring, key.id, key.envelope)
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
