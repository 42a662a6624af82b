"""The one path that decrypts: credentials of one connector, for one named purpose, audited.

Everything that needs a plaintext credential (connection test, scan launch, sync, ticket creation,
webhook registration or verification, reveal) calls :meth:`CredentialResolver.resolve` or
:meth:`CredentialResolver.resolve_webhook_secrets`. Each call records an audit event (actor,
organization, integration, purpose, outcome; never a value) and, while the values are in use,
registers them with the log redactor. No other module calls :func:`pmap.core.crypto.open_envelope`
(``tests/security/test_decrypt_path.py`` proves it).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import Session

from pmap.audit.models import AuditKey
from pmap.core import redaction
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.crypto import KekRef, KeyStore, aad_prefix, associated_data, envelope_kek, open_envelope, rewrap, seal
from pmap.core.errors import ConfigurationError, CryptoError, NotFound
from pmap.core.metrics import Metrics
from pmap.core.seams import Actor, AuditSink, CredentialSource, OpenWebhookSecrets, Purpose, SealedRow
from pmap.credentials.models import KeyringCanary
from pmap.integrations.models import Integration

CREDENTIALS_COLUMN = ("integrations", "encrypted_credentials")
AUDIT_KEY_COLUMN = ("audit_keys", "envelope")
WEBHOOK_COLUMN = ("integrations", "encrypted_webhook_secret")
_AAD_PREFIX = {CREDENTIALS_COLUMN: aad_prefix(*CREDENTIALS_COLUMN), WEBHOOK_COLUMN: aad_prefix(*WEBHOOK_COLUMN),
               AUDIT_KEY_COLUMN: aad_prefix(*AUDIT_KEY_COLUMN)}
AUDIT_KEY_BYTES = 32
_DETAIL = {CREDENTIALS_COLUMN: {"column": CREDENTIALS_COLUMN[1]}, WEBHOOK_COLUMN: {"column": WEBHOOK_COLUMN[1]}}
_CANARY_PLAINTEXT = b"pmap-keyring-canary-v1"

log = logging.getLogger("pmap.credentials")


class ResolvedCredentials:
    """Plaintext credential values of one integration, valid only inside the ``resolve`` block."""

    __slots__ = ("integration_id", "purpose", "values", "_handle", "_identifiers")

    def __init__(self, integration_id: uuid.UUID, purpose: Purpose, values: Mapping[str, str],
                 identifiers: frozenset[str] = frozenset()) -> None:
        self.integration_id = integration_id
        self.purpose = purpose
        self.values = values
        self._handle = 0
        self._identifiers = identifiers

    # a class-based context manager, not a generator: resolve sits on hot paths
    def __enter__(self) -> ResolvedCredentials:
        # identifiers (a user name such as "admin") are not secrets: masking them would blank that
        # word in every log line of every organization for a while
        self._handle = redaction.register(v for k, v in self.values.items() if k not in self._identifiers)
        return self

    def __exit__(self, *_exc: object) -> None:
        redaction.unregister(self._handle)

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def __repr__(self) -> str:  # never print values
        return f"ResolvedCredentials(integration_id={self.integration_id}, fields={sorted(self.values)})"


@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    """The current webhook secret and, during a rotation grace period, the previous one."""

    current: str | None
    previous: str | None
    previous_expires_at: datetime | None

    def valid(self, now: datetime) -> list[str]:
        """Secrets a delivery may be signed with at ``now`` (current first)."""
        out = [self.current] if self.current else []
        if self.previous and self.previous_expires_at and now < self.previous_expires_at:
            out.append(self.previous)
        return out

    def __repr__(self) -> str:
        return "WebhookSecrets(<redacted>)"


def seal_credentials(keys: KeyStore, integration_id: uuid.UUID, values: Mapping[str, str]) -> dict[str, Any] | None:
    """Encrypt a credential map for one integration row (``None`` when there is nothing to hold)."""
    if not values:
        return None
    payload = json.dumps(dict(values), separators=(",", ":"), sort_keys=True).encode()
    return seal(keys, payload, _AAD_PREFIX[CREDENTIALS_COLUMN] + integration_id.bytes)


def seal_webhook_secrets(keys: KeyStore, integration_id: uuid.UUID, secrets: OpenWebhookSecrets) -> dict[str, Any]:
    """Encrypt the webhook secret slot of one integration row."""
    doc = {
        "current": secrets.current,
        "previous": secrets.previous,
        "previous_expires_at": secrets.previous_expires_at.isoformat() if secrets.previous_expires_at else None,
    }
    payload = json.dumps(doc, separators=(",", ":")).encode()
    return seal(keys, payload, _AAD_PREFIX[WEBHOOK_COLUMN] + integration_id.bytes)


def seal_audit_key(keys: KeyStore, key_id: uuid.UUID, key: bytes) -> dict[str, Any]:
    """Seal an audit chain key (``audit_keys.envelope``) under the primary KEK, bound to its row."""
    return seal(keys, key, _AAD_PREFIX[AUDIT_KEY_COLUMN] + key_id.bytes)


def rewrap_envelope(keys: KeyStore, table_column: tuple[str, str], row_id: uuid.UUID, envelope: Any) -> dict[str, Any]:
    """One stored envelope with its data key re-wrapped under the primary KEK (key rotation): no content is
    decrypted, so nothing is audited here (the rotation audits each batch); CryptoError when the data key does not
    unwrap, or the envelope is version 1 and must be re-sealed through the resolver."""
    return rewrap(keys, envelope, _AAD_PREFIX[table_column] + row_id.bytes)


def under_primary(keys: KeyStore, envelope: Any) -> bool:
    """Whether an envelope is a current one under the primary KEK (rotation leaves it alone)."""
    try:
        version, ref = envelope_kek(envelope)
    except CryptoError:
        return False
    return version == 2 and ref == keys.primary


def open_audit_key(keys: KeyStore, key_id: uuid.UUID, envelope: Any) -> bytes:
    """The audit chain key of one ``audit_keys`` row, for computing and checking event MACs only.

    Deliberately not audited as an event: sealing an event needs this key, so an event per open would be
    an event that needs the key to be sealed (a recursion), and the key protects the audit trail rather than
    a vendor: it never leaves the process (pmap.audit.chain keeps it in memory, never logs or prints it).
    Each open is logged (``pmap.credentials``, key id only). Raises CryptoError when the envelope does not open.
    """
    key = open_envelope(keys, envelope, _AAD_PREFIX[AUDIT_KEY_COLUMN] + key_id.bytes)
    if len(key) != AUDIT_KEY_BYTES:
        raise CryptoError("the audit key has the wrong length")
    log.info("opened audit key %s", key_id)
    return key


def _same_organization(row: SealedRow, actor: Actor) -> None:
    """404 (as for any id another organization holds) before anything is decrypted or audited.

    Callers load rows scoped to the caller's organization, so this only fires on a caller's bug: it
    is logged, and the answer is the same 404 the scoped lookup gives (never a 500, nothing learnt).
    """
    if actor.organization_id != row.organization_id:
        log.warning("a credential resolve for integration %s was refused: the actor %s is in another organization",
                    row.id, actor.label)
        raise NotFound("integration not found")


class CredentialResolver(CredentialSource):
    """Decrypts for a named purpose and audits every attempt."""

    def __init__(self, keys: KeyStore, audit: AuditSink,
                 identifiers: Callable[[str], frozenset[str]] | None = None, *, metrics: Metrics | None = None) -> None:
        self._keys = keys
        self._audit = audit
        self._metrics = metrics  # decrypts by purpose (pmap_credential_decrypts); None outside the service
        # vendor -> credential fields that identify rather than authenticate (user names, e-mails)
        self._identifiers = identifiers

    def _open(self, row: SealedRow, column: tuple[str, str], envelope: Any, purpose: Purpose, actor: Actor) -> bytes:
        try:
            plaintext = open_envelope(self._keys, envelope, _AAD_PREFIX[column] + row.id.bytes)
        except CryptoError as exc:
            if self._metrics is not None:
                self._metrics.decrypted(purpose.value, ok=False)
            self._audit.record(
                actor=actor, action=AuditAction.CREDENTIALS_DECRYPT, integration_id=row.id, purpose=purpose.value,
                outcome=AuditOutcome.FAILURE, detail={"column": column[1], "reason": exc.message},
            )
            raise
        self._audit.record(
            actor=actor, action=AuditAction.CREDENTIALS_DECRYPT, integration_id=row.id, purpose=purpose,
            outcome=AuditOutcome.SUCCESS, detail=_DETAIL[column],
        )
        if self._metrics is not None:
            self._metrics.decrypted(purpose.value, ok=True)
        return plaintext

    def resolve(self, row: SealedRow, *, purpose: Purpose, actor: Actor) -> ResolvedCredentials:
        """All credential fields of one integration, for ``purpose``, as a context manager; the values
        are registered with the log redactor until the block ends."""
        _same_organization(row, actor)
        values: dict[str, str] = {}
        if row.encrypted_credentials is not None:
            values = orjson.loads(self._open(row, CREDENTIALS_COLUMN, row.encrypted_credentials, purpose, actor))
        vendor = getattr(row, "vendor", None)
        identifiers = self._identifiers(vendor) if self._identifiers is not None and vendor else frozenset()
        return ResolvedCredentials(row.id, purpose, values, identifiers)

    @contextmanager
    def resolve_webhook_secrets(self, row: SealedRow, *, purpose: Purpose, actor: Actor) -> Iterator[WebhookSecrets]:
        """The webhook secret slot of one integration, for ``purpose``; redacted in logs meanwhile."""
        _same_organization(row, actor)
        if row.encrypted_webhook_secret is None:
            yield WebhookSecrets(None, None, None)
            return
        doc = json.loads(self._open(row, WEBHOOK_COLUMN, row.encrypted_webhook_secret, purpose, actor))
        expires = doc.get("previous_expires_at")
        secrets = WebhookSecrets(
            current=doc.get("current"),
            previous=doc.get("previous"),
            previous_expires_at=datetime.fromisoformat(expires) if expires else None,
        )
        with redaction.secrets_in_use([s for s in (secrets.current, secrets.previous) if s]):
            yield secrets


def verify_keyring_canary(session: Session, keys: KeyStore) -> bool:
    """Prove every key-encryption key that sealed stored data opens what it sealed; seal a canary under a new
    primary KEK (with an HSM, the canary is unwrapped inside the token: the start-up proof that it can unwrap).

    Returns True when a canary was created. Raises ConfigurationError when stored data was sealed under a key
    this process is not configured with, or when a key does not open its canary.
    """
    rows = session.scalars(select(KeyringCanary)).all()
    present: set[KekRef] = set()
    for row in rows:
        ref = KekRef.parse(row.key_id)
        keyring = keys.keyring
        if ref.provider not in keys.providers or (keyring is not None and ref.provider == keyring.name
                                                  and ref.id not in keyring.keys):
            raise ConfigurationError(
                f"stored data was sealed under the key {ref}, which this process is not configured with; refusing "
                "to start (configure the key that was used: the keyring file that holds it, or the PKCS#11 token)"
            )
        try:
            plaintext = open_envelope(keys, row.envelope, associated_data("keyring_canaries", "envelope", row.key_id))
        except CryptoError as exc:
            plaintext, reason = b"", exc.message
        else:
            reason = "it opened to something else"
        if plaintext != _CANARY_PLAINTEXT:
            raise ConfigurationError(
                f"the key {ref} does not open its canary ({reason}): the configured key material is not the one "
                "that sealed the stored data, or its device refused; refusing to start"
            )
        present.add(ref)
    if keys.configured not in present:
        key_id = str(keys.configured)
        try:
            envelope = seal(keys, _CANARY_PLAINTEXT, associated_data("keyring_canaries", "envelope", key_id),
                            keys.configured)
        except CryptoError as exc:  # an HSM that cannot be opened, or holds no such key
            raise ConfigurationError(f"the key-encryption key {key_id} cannot seal ({exc.message}); refusing to "
                                     "start") from None
        session.add(KeyringCanary(key_id=key_id, envelope=envelope))
        session.flush()
        return True
    return False


def holds_sealed_data(session: Session) -> bool:
    """True when the database holds anything sealed with a platform key (a canary, an audit key or an
    integration's secrets)."""
    if session.scalar(select(KeyringCanary.key_id).limit(1)) is not None:
        return True
    if session.scalar(select(AuditKey.id).limit(1)) is not None:
        return True
    # an empty slot is stored as JSON null rather than SQL NULL: both mean nothing sealed
    sealed = [column.is_not(None) & (cast(column, String) != "null")
              for column in (Integration.encrypted_credentials, Integration.encrypted_webhook_secret)]
    return session.scalar(select(Integration.id).where(or_(*sealed)).limit(1)) is not None


def keyring_usable(keys: KeyStore) -> bool:
    """A seal-and-open round trip under the primary KEK (for health checks: with an HSM, a wrap and an unwrap in
    the token)."""
    probe = os.urandom(16)
    aad = associated_data("health", "probe", "0")
    try:
        return open_envelope(keys, seal(keys, probe, aad), aad) == probe
    except CryptoError:
        return False
