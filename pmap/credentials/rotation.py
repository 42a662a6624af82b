"""Re-sealing every stored secret under the keyring's primary key, so an old key can be retired.

Each row is opened through the one decrypt path (purpose ``key_rotation``, audited per row with
the system actor of its organization) and sealed again under the primary key; rows already under
the primary are left alone. After a rotation no envelope names an old key, and the old key can be
removed from the keyring file.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pmap.core.crypto import Keyring
from pmap.credentials.service import (
    Actor,
    CredentialResolver,
    Purpose,
    seal_credentials,
    seal_webhook_secrets,
    verify_keyring_canary,
)
from pmap.credentials.models import KeyringCanary
from pmap.integrations.models import Integration


@dataclass(slots=True)
class RotationReport:
    """How many envelopes were re-sealed, and how many already used the primary key."""

    resealed: int = 0
    current: int = 0


def reseal_all(session: Session, keyring: Keyring, resolver: CredentialResolver, *, batch: int = 500) -> RotationReport:
    """Re-seal every integration's credentials and webhook secret under the primary key; commits per batch."""
    verify_keyring_canary(session, keyring)  # the primary gets its canary; every stored key must open
    session.commit()
    report = RotationReport()
    last = None
    while True:
        stmt = select(Integration).order_by(Integration.id).limit(batch)
        if last is not None:
            stmt = stmt.where(Integration.id > last)
        rows = list(session.scalars(stmt))
        if not rows:
            # nothing is sealed under another key any more: its canary goes, so the key can be retired
            session.execute(delete(KeyringCanary).where(KeyringCanary.key_id != keyring.primary))
            session.commit()
            return report
        for row in rows:
            actor = Actor(kind="system", name="key-rotation", organization_id=row.organization_id)
            envelope = row.encrypted_credentials
            if envelope is not None:
                if envelope.get("kid") == keyring.primary:
                    report.current += 1
                else:
                    with resolver.resolve(row, purpose=Purpose.KEY_ROTATION, actor=actor) as creds:
                        row.encrypted_credentials = seal_credentials(keyring, row.id, creds.values)
                    report.resealed += 1
            hook = row.encrypted_webhook_secret
            if hook is not None:
                if hook.get("kid") == keyring.primary:
                    report.current += 1
                else:
                    with resolver.resolve_webhook_secrets(row, purpose=Purpose.KEY_ROTATION, actor=actor) as secrets:
                        row.encrypted_webhook_secret = seal_webhook_secrets(keyring, row.id, secrets)
                    report.resealed += 1
        session.commit()
        last = rows[-1].id
