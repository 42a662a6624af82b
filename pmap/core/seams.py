"""The typed seams between the core and the domains behind them.

:class:`pmap.core.state.AppState` holds an audit sink and a credential source; the core declares
what they are here, as Protocols over values the core owns (who acts, why a secret is opened), and
the domains implement them: :class:`pmap.audit.service.AuditLog` and ``SessionAudit`` are
:class:`AuditSink`\\ s, :class:`pmap.credentials.service.CredentialResolver` is the
:class:`CredentialSource`. Both subclass their Protocol, so mypy checks each signature where the
class is written and every decrypt call site through ``AppState`` is type-checked, while the core
imports no domain.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pmap.core.audit_vocabulary import AuditAction, AuditOutcome

#: the width of ``audit_events.actor`` (and ``jobs.actor``)
ACTOR_LABEL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked: an API token, the CLI, an inbound webhook, or the system itself."""

    kind: str  # token | cli | webhook | system
    name: str
    organization_id: uuid.UUID
    token_id: uuid.UUID | None = None  # the API token, when a token acts: names are labels, not unique

    @property
    def label(self) -> str:
        """``kind:name``, then ``#<token id>`` for a token, within the audit column's 200 characters
        (a long name is cut, the id never is)."""
        tail = f"#{self.token_id}" if self.token_id is not None else ""
        return f"{self.kind}:{self.name}"[:ACTOR_LABEL_CHARS - len(tail)] + tail


class Purpose(str, enum.Enum):
    """Why credentials are decrypted; recorded with every decrypt."""

    CONNECTION_TEST = "connection_test"
    CREDENTIAL_UPDATE = "credential_update"
    SCAN_LAUNCH = "scan_launch"
    SYNC = "sync"
    PIPELINE_SYNC = "pipeline_sync"
    TICKET_CREATION = "ticket_creation"
    TICKET_RECONCILE = "ticket_reconcile"  # asking a tracker for the status of a ticket no webhook updated
    PERMISSIONS_CHECK = "permissions_check"
    WEBHOOK_REGISTRATION = "webhook_registration"
    WEBHOOK_VERIFICATION = "webhook_verification"
    WEBHOOK_ROTATION = "webhook_rotation"
    KEY_ROTATION = "key_rotation"
    KEY_VERIFICATION = "key_verification"  # pmapctl keys verify: proving every envelope opens, using none
    REVEAL = "reveal"


class AuditSealer(Protocol):
    """Seals committed audit events into the tamper-evident chain (:class:`pmap.audit.chain.AuditChain`)."""

    def seal_quietly(self) -> None:
        """Seal what is unsealed now; a failure is logged, never raised (the next seal retries)."""


class AuditSink(Protocol):
    """Where audit events go: the audit log, the caller's session, or a buffer written later."""

    def record(
        self,
        *,
        actor: Actor,
        action: AuditAction,
        integration_id: uuid.UUID | None,
        purpose: str | None,
        outcome: AuditOutcome,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one event."""
        ...


class SealedRow(Protocol):
    """What the credential source reads of an integration row: its identity and its sealed columns."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def organization_id(self) -> uuid.UUID: ...
    @property
    def encrypted_credentials(self) -> dict[str, Any] | None: ...
    @property
    def encrypted_webhook_secret(self) -> dict[str, Any] | None: ...


class OpenCredentials(Protocol):
    """Plaintext credential values of one integration, valid only inside the ``resolve`` block."""

    @property
    def values(self) -> Mapping[str, str]: ...

    def get(self, name: str) -> str | None:
        """One value, or None when the field is unset."""
        ...


class OpenWebhookSecrets(Protocol):
    """The current webhook secret and, during a rotation grace period, the previous one."""

    @property
    def current(self) -> str | None: ...
    @property
    def previous(self) -> str | None: ...
    @property
    def previous_expires_at(self) -> datetime | None: ...

    def valid(self, now: datetime) -> list[str]:
        """Secrets a delivery may be signed with at ``now`` (current first)."""
        ...


class CredentialSource(Protocol):
    """The one path that decrypts: each call names its purpose and actor and is audited."""

    def resolve(
        self, row: SealedRow, *, purpose: Purpose, actor: Actor
    ) -> AbstractContextManager[OpenCredentials]:
        """All credential fields of one integration, for ``purpose``, while the block runs."""
        ...

    def resolve_webhook_secrets(
        self, row: SealedRow, *, purpose: Purpose, actor: Actor
    ) -> AbstractContextManager[OpenWebhookSecrets]:
        """The webhook secret slot of one integration, for ``purpose``, while the block runs."""
        ...
