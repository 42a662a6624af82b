"""Recording and listing audit events."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from pmap.audit.models import AuditEvent
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.redaction import scrub
from pmap.core.seams import Actor, AuditSink

log = logging.getLogger("pmap.audit")


def _clean(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    # detail is written by PMAP code, never copied from a request; scrub anyway as a backstop
    return {k: scrub(v) if isinstance(v, str) else v for k, v in (detail or {}).items()}


class AuditLog(AuditSink):
    """Writes each event in its own short transaction, so a failed operation is still audited."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

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
        """Persist one event now."""
        with self._factory() as session:
            session.add(_event(actor, action, integration_id, purpose, outcome, detail))
            session.commit()
        log.info("audit %s by %s/%s outcome=%s purpose=%s integration=%s", action.value, actor.kind, actor.name,
                 outcome.value, getattr(purpose, "value", purpose), integration_id)


class SessionAudit(AuditSink):
    """Adds events to the caller's session: they commit (or roll back) with the caller's work."""

    def __init__(self, session: Session) -> None:
        self._session = session

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
        """Add one event to the session."""
        self._session.add(_event(actor, action, integration_id, purpose, outcome, detail))


def _event(
    actor: Actor, action: AuditAction, integration_id: uuid.UUID | None, purpose: str | None,
    outcome: AuditOutcome, detail: Mapping[str, Any] | None,
) -> AuditEvent:
    return AuditEvent(
        organization_id=actor.organization_id, actor=actor.label, action=action.value, integration_id=integration_id,
        # a str-valued Enum must be stored by value (some drivers dump enums by name)
        purpose=getattr(purpose, "value", purpose), outcome=outcome.value, detail=_clean(detail),
    )
