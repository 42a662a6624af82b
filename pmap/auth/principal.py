"""The authenticated caller, its role, and the one place where queries get the organization filter."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from pmap.core.errors import NotFound, PermissionDenied
from pmap.core.seams import Actor

M = TypeVar("M")


class Role(str, enum.Enum):
    """viewer reads metadata; operator also creates, edits and tests; admin also reveals, rotates,
    reads the audit log and manages tokens."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}[self]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token of one organization with one role."""

    token_id: uuid.UUID | None
    name: str
    organization_id: uuid.UUID
    role: Role
    kind: str = "token"

    def require(self, role: Role) -> None:
        """Refuse (403) unless this principal's role is at least ``role``."""
        if self.role.rank < role.rank:
            raise PermissionDenied(f"this action needs the {role.value} role")

    @property
    def actor(self) -> Actor:
        return Actor(kind=self.kind, name=self.name, organization_id=self.organization_id, token_id=self.token_id)

    def scoped(self, model: type[M], *columns: Any) -> Select[Any]:
        """``SELECT`` over ``model`` limited to this principal's organization."""
        stmt = select(*columns) if columns else select(model)
        return stmt.where(model.organization_id == self.organization_id)  # type: ignore[attr-defined]

    def get_owned(self, session: Session, model: type[M], ident: uuid.UUID, *, what: str = "record") -> M:
        """The row ``ident`` of ``model`` if it belongs to this organization; 404 otherwise (never 403,
        so another organization's ids cannot be probed)."""
        row = session.get(model, ident)
        if row is None or row.organization_id != self.organization_id:  # type: ignore[attr-defined]
            raise NotFound(f"{what} not found")
        return row
