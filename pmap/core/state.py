"""What the running service holds: settings, database, keys, audit log and credential resolver."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from pmap.core.concurrency import OutboundSlots
from pmap.core.crypto import KeyStore
from pmap.core.metrics import Metrics
from pmap.core.seams import AuditSealer, AuditSink, CredentialSource
from pmap.core.settings import Settings


@dataclass(slots=True)
class AppState:
    """Built once at start-up (see :func:`pmap.app.start`), read by request dependencies."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyStore  # the key-encryption keys (pmap.credentials.keyring.load_keys)
    # Protocols the core declares (pmap.core.seams); pmap.app supplies the domains' implementations
    audit: AuditSink
    resolver: CredentialSource
    outbound: OutboundSlots  # admission of outbound operations (pmap.core.concurrency)
    metrics: Metrics = field(default_factory=Metrics)  # the app's own registry (pmap.core.metrics)
    # the audit chain's sealer (pmap.audit.chain), run after each commit that wrote audit events
    audit_chain: AuditSealer | None = None
