"""API tokens: creation (shown once), lookup by hash, revocation, and the bootstrap admin token."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pmap.auth.models import ApiToken, Organization
from pmap.auth.principal import Principal, Role
from pmap.core.db import utcnow
from pmap.core.errors import AuthenticationRequired, ValidationFailed

TOKEN_PREFIX = "pmap_"
DEFAULT_ORG = "default"
#: ``last_used_at`` is stamped at most this often per token, so reads stay write-free
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    """SHA-256 of a token: tokens are 256-bit random, so a fast hash is enough and lookups stay O(1)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: ``token`` is shown once and never stored."""

    row: ApiToken
    token: str


def get_or_create_org(session: Session, name: str) -> Organization:
    """The organization named ``name``, created if needed."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("organization name must be 1-200 characters")
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name)
        session.add(org)
        session.flush()
    return org


def issue_token(session: Session, org: Organization, role: Role, name: str, *, value: str | None = None) -> IssuedToken:
    """Create a token for ``org`` with ``role``; ``value`` only for the bootstrap token."""
    token = value or TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(organization_id=org.id, name=name, role=role.value, token_hash=hash_token(token), prefix=token[:12])
    session.add(row)
    session.flush()
    return IssuedToken(row=row, token=token)


def authenticate(session: Session, token: str) -> Principal:
    """The principal behind a bearer token; 401 for an unknown or revoked one. Records the token's
    ``last_used_at`` (to the minute; on PostgreSQL with the caller's commit)."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        raise AuthenticationRequired("invalid or revoked token")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        if session.get_bind().dialect.name == "sqlite":
            _stamp_last_used_sqlite(session, row.id, now)
        else:
            # in the request's own transaction: a second pooled connection per request could exhaust
            # the pool under load (every request holding one while waiting for another)
            row.last_used_at = now
    return Principal(token_id=row.id, name=row.name, organization_id=row.organization_id, role=Role(row.role))


def _stamp_last_used_sqlite(session: Session, token_id: uuid.UUID, now: datetime) -> None:
    """Best effort, in a short transaction of its own that never waits on the one SQLite writer (an
    import holds the write lock for its whole transaction): a stamp missed now is made by a later call."""
    with session.get_bind().connect() as conn:
        previous = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        try:
            conn.exec_driver_sql("PRAGMA busy_timeout = 0")
            conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
            conn.commit()
        except OperationalError:
            conn.rollback()
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous or 0)}")


def ensure_bootstrap_admin(session: Session, token: str | None) -> bool:
    """Make ``PMAP_BOOTSTRAP_ADMIN_TOKEN`` the first admin token of ``default`` when no token exists."""
    if not token:
        return False
    if len(token) < 24:
        raise ValidationFailed("PMAP_BOOTSTRAP_ADMIN_TOKEN must be at least 24 characters")
    if session.scalar(select(func.count()).select_from(ApiToken)):
        return False
    org = get_or_create_org(session, DEFAULT_ORG)
    issue_token(session, org, Role.ADMIN, "bootstrap-admin", value=token)
    return True


def revoke(session: Session, principal: Principal, token_id: uuid.UUID) -> ApiToken:
    """Revoke one of the organization's tokens."""
    row = principal.get_owned(session, ApiToken, token_id, what="token")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
