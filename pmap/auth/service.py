"""API tokens: creation (shown once), lookup by hash, expiry, revocation (never of an organization's last
active admin), the bootstrap admin token. Every creation and revocation is audited, whatever its origin."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pmap.audit.service import SessionAudit
from pmap.auth.models import ApiToken, Organization
from pmap.auth.principal import Principal, Role
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.db import utcnow
from pmap.core.errors import AuthenticationRequired, Conflict, NotFound, ValidationFailed
from pmap.core.seams import Actor
from pmap.core.text import check_one_line

TOKEN_PREFIX = "pmap_"  # noqa: S105 - the public prefix that marks a PMAP token, not a secret
DEFAULT_ORG = "default"
#: ``last_used_at`` is stamped at most this often per token, so reads stay write-free
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: a token's lifetime is bounded when one is asked for: at most ten years
MAX_EXPIRY_DAYS = 3650


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
    try:
        check_one_line(name)  # shown in lists, logs and audit events: no control or direction-changing characters
    except ValueError as exc:
        raise ValidationFailed(f"organization name {exc}") from None
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name)
        session.add(org)
        session.flush()
    return org


def system_actor(org: Organization, name: str) -> Actor:
    """The actor of work PMAP does on its own (``name`` says which: ``bootstrap``, ``test``, ...)."""
    return Actor(kind="system", name=name, organization_id=org.id)


def issue_token(session: Session, org: Organization, role: Role, name: str, *, actor: Actor | None = None,
                value: str | None = None, expires_at: datetime | None = None) -> IssuedToken:
    """Create a token for ``org`` with ``role``, audited as ``token.create`` by ``actor`` (the API token,
    the CLI, the system) in the caller's transaction; ``value`` only for the bootstrap token."""
    token = value or TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(organization_id=org.id, name=name, role=role.value, token_hash=hash_token(token), prefix=token[:12],
                   expires_at=expires_at)
    session.add(row)
    session.flush()
    _audit(session, actor or system_actor(org, "pmap"), AuditAction.TOKEN_CREATE, row)
    return IssuedToken(row=row, token=token)


def expiry_in(days: int | None) -> datetime | None:
    """The expiry ``days`` from now (None: never), bounded to 1..MAX_EXPIRY_DAYS."""
    if days is None:
        return None
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise ValidationFailed(f"a token expires in 1 to {MAX_EXPIRY_DAYS} days")
    return utcnow() + timedelta(days=days)


def is_active(row: ApiToken, now: datetime | None = None) -> bool:
    """Neither revoked nor expired."""
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > (now or utcnow()))


def _audit(session: Session, actor: Actor, action: AuditAction, row: ApiToken) -> None:
    """Record a token's creation or revocation with the caller's work: its id, role, name and expiry, never
    its value or hash."""
    SessionAudit(session).record(
        actor=actor, action=action, integration_id=None, purpose=None, outcome=AuditOutcome.SUCCESS,
        detail={"token_id": str(row.id), "role": row.role, "name": row.name,
                "expires_at": row.expires_at.isoformat().replace("+00:00", "Z") if row.expires_at else None})


def authenticate(session: Session, token: str) -> Principal:
    """The principal behind a bearer token; 401 for an unknown, expired or revoked one. Records the token's
    ``last_used_at`` (to the minute; on PostgreSQL with the caller's commit)."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    now = utcnow()
    if row is None or not is_active(row, now):
        # one answer for unknown, revoked and expired: a caller learns nothing about which
        raise AuthenticationRequired("invalid, expired or revoked token")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        if session.get_bind().dialect.name == "sqlite":
            _stamp_last_used_sqlite(session, row.id, now)
        else:
            # in the request's own transaction: a second pooled connection per request could exhaust
            # the pool under load (every request holding one while waiting for another)
            row.last_used_at = now
    return Principal(token_id=row.id, name=row.name, organization_id=row.organization_id, role=Role(row.role))


def _stamp_last_used_sqlite(session: Session, token_id: uuid.UUID, now: datetime) -> None:
    """Best effort, in a short transaction of its own that never waits on the one SQLite writer (another
    request, or an import's publish step, may hold the write lock): a stamp missed now is made by a later call."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.connect() as conn:
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
    issue_token(session, org, Role.ADMIN, "bootstrap-admin", actor=system_actor(org, "bootstrap"), value=token)
    return True


def revoke(session: Session, token_id: uuid.UUID, *, actor: Actor, organization_id: uuid.UUID) -> ApiToken:
    """Revoke one of the organization's tokens, audited as ``token.revoke`` (once: revoking again changes
    nothing). 404 for another organization's token; 409 when it is the organization's last active admin
    token. Leaves the commit to the caller, used by the API and the CLI alike."""
    row = session.get(ApiToken, token_id)
    if row is None or row.organization_id != organization_id:
        raise NotFound("token not found")
    admins = _lock_admins(session, row)
    if row.revoked_at is not None:
        return row
    now = utcnow()
    if row.role == Role.ADMIN.value and is_active(row, now) and not any(
            is_active(a, now) for a in admins if a.id != row.id):
        raise Conflict("the organization would be left without an active admin token; create another admin "
                       "token first (pmapctl tokens create --role admin, or POST /api/v1/tokens)")
    row.revoked_at = now
    _audit(session, actor, AuditAction.TOKEN_REVOKE, row)
    return row


def _lock_admins(session: Session, row: ApiToken) -> list[ApiToken]:
    """The organization's admin tokens (and ``row``), locked and read afresh for the rest of the transaction,
    so two admins revoking each other at once cannot both succeed."""
    mine = (ApiToken.organization_id == row.organization_id) & or_(ApiToken.role == Role.ADMIN.value,
                                                                   ApiToken.id == row.id)
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks: take its one write lock before anything is read in this transaction, so
        # the reads below cannot be of a snapshot another writer has moved past
        session.execute(update(ApiToken).where(mine).values(role=ApiToken.role),
                        execution_options={"synchronize_session": False})
    # PostgreSQL: a concurrent revoke waits here, then reads what the first one committed; locks are taken
    # in id order, so two revokes cannot deadlock
    stmt = select(ApiToken).where(mine).order_by(ApiToken.id).with_for_update()
    return list(session.scalars(stmt.execution_options(populate_existing=True)))
