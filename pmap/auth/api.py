"""Token management (admins) and the caller's own identity."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from pmap.auth.deps import Admin, Viewer
from pmap.auth.models import ApiToken, Organization
from pmap.auth.principal import Role
from pmap.auth.service import MAX_EXPIRY_DAYS, expiry_in, issue_token, revoke
from pmap.core.deps import DbSession
from pmap.core.pagination import count_matching, newest_first, split_page
from pmap.core.text import OneLine

router = APIRouter(tags=["tokens"])


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: OneLine = Field(min_length=1, max_length=200)
    role: Role
    expires_in_days: int | None = Field(
        default=None, ge=1, le=MAX_EXPIRY_DAYS, strict=True,
        description=f"Days until the token stops working (1-{MAX_EXPIRY_DAYS}); omitted: it never expires.")


class TokenOut(BaseModel):
    id: uuid.UUID
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored.")


class TokenPage(BaseModel):
    items: list[TokenOut]
    next_cursor: str | None
    total: int = Field(description="The organization's tokens (revoked and expired included), on every page.")


class WhoAmI(BaseModel):
    organization: str
    token_name: str
    role: str


@router.get("/whoami", response_model=WhoAmI)
def whoami(session: DbSession, principal: Viewer) -> WhoAmI:
    """The calling token's organization and role."""
    org = session.get(Organization, principal.organization_id)
    return WhoAmI(organization=org.name if org else "", token_name=principal.name, role=principal.role.value)


@router.get("/tokens", response_model=TokenPage)
def list_tokens(
    session: DbSession, principal: Admin,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TokenPage:
    """The organization's tokens (never their values)."""
    stmt = principal.scoped(ApiToken)
    rows, nxt = split_page(session.scalars(newest_first(stmt, ApiToken, cursor, limit)).all(), limit)
    return TokenPage(items=[TokenOut.model_validate(r, from_attributes=True) for r in rows], next_cursor=nxt,
                     total=count_matching(session, stmt))


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, session: DbSession, principal: Admin) -> TokenCreated:
    """Create a token in the caller's organization (audited); the value is in this response only."""
    org = session.get(Organization, principal.organization_id)
    issued = issue_token(session, org, body.role, body.name, actor=principal.actor,  # type: ignore[arg-type]
                         expires_at=expiry_in(body.expires_in_days))
    session.commit()
    return TokenCreated(**TokenOut.model_validate(issued.row, from_attributes=True).model_dump(), token=issued.token)


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses={
    409: {"description": "the organization's last active admin token: create another admin token first"}})
def revoke_token(token_id: uuid.UUID, session: DbSession, principal: Admin) -> TokenOut:
    """Revoke a token of the organization (audited once); never its last active admin token (409)."""
    row = revoke(session, token_id, actor=principal.actor, organization_id=principal.organization_id)
    session.commit()
    return TokenOut.model_validate(row, from_attributes=True)
