"""The audit log, readable by admins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from pmap.audit.chain import API_VERIFY_LAST, AuditChain, AuditKeys, verify_chain
from pmap.audit.models import AuditEvent
from pmap.auth.deps import Admin
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.deps import DbSession, StateDep
from pmap.core.pagination import contains_text, newest_first, split_page

router = APIRouter(prefix="/audit-events", tags=["audit"])


class AuditEventOut(BaseModel):
    id: uuid.UUID
    actor: str
    action: str  # an AuditAction value; read as text so an action a newer build wrote still lists
    integration_id: uuid.UUID | None
    purpose: str | None
    outcome: AuditOutcome
    detail: dict[str, Any]
    created_at: datetime
    seq: int | None = Field(description="The event's place in its organization's tamper-evident chain; null until "
                                        "it is sealed (right after its commit).")


class ChainProblem(BaseModel):
    kind: str = Field(description="edited, gap (events deleted), inserted, unsealed, head, anchor or key.")
    message: str
    event_id: uuid.UUID | None
    seq: int | None


class ChainStatus(BaseModel):
    head_seq: int | None = Field(description="The seq of the organization's last sealed event (null: none yet).")
    verified: bool = Field(description=f"Whether the last {API_VERIFY_LAST:,} events up to the head verify (each "
                                       "MAC recomputed, no seq missing, the head matching), and no event is left "
                                       "unsealed. `pmapctl audit verify` checks the whole chain from its anchor.")
    verified_at: datetime
    first_problem: ChainProblem | None = Field(description="The first edited, deleted, reordered or inserted event "
                                                           "found, when not verified.")


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None
    chain: ChainStatus = Field(description="The caller's organization's audit chain, verified now over the last "
                                           f"{API_VERIFY_LAST:,} events from its head.")


@router.get("", response_model=AuditPage)
def list_audit_events(
    session: DbSession,
    state: StateDep,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    integration_id: uuid.UUID | None = None,
    action: AuditAction | None = None,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
    outcome: AuditOutcome | None = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=200,
                                       description="Events whose actor contains this, case-insensitively.")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Events at or after this instant.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Events before this instant.")] = None,
) -> AuditPage:
    """Audit events of the organization, newest first, each with its chain seq, and the chain's status;
    ``action`` and ``outcome`` take only their
    vocabulary's values (422 naming the allowed ones otherwise); ``since`` and ``until`` need a time zone."""
    stmt = principal.scoped(AuditEvent)
    if integration_id:
        stmt = stmt.where(AuditEvent.integration_id == integration_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action.value)
    if purpose:
        stmt = stmt.where(AuditEvent.purpose == purpose)
    if outcome:
        stmt = stmt.where(AuditEvent.outcome == outcome.value)
    if actor:
        stmt = stmt.where(contains_text(AuditEvent.actor, actor))
    if since:
        stmt = stmt.where(AuditEvent.created_at >= since)
    if until:
        stmt = stmt.where(AuditEvent.created_at < until)
    rows, next_cursor = split_page(session.scalars(newest_first(stmt, AuditEvent, cursor, limit)).all(), limit)
    chain = state.audit_chain
    keys = chain.keys if isinstance(chain, AuditChain) else AuditKeys(state.keys)
    report = verify_chain(session, keys, organization_id=principal.organization_id, last=API_VERIFY_LAST)
    org = report.organizations[0]
    problem = None if org.problem is None else ChainProblem(kind=org.problem.kind, message=org.problem.message,
                                                            event_id=org.problem.event_id, seq=org.problem.seq)
    return AuditPage(items=[AuditEventOut.model_validate(r, from_attributes=True) for r in rows],
                     next_cursor=next_cursor,
                     chain=ChainStatus(head_seq=org.head_seq, verified=org.ok, verified_at=report.verified_at,
                                       first_problem=problem))
