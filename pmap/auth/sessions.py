"""Web console sessions: signed in with an API token, kept on the server, ended on the server.

The browser holds a random 256-bit session id in an HttpOnly, SameSite=Strict cookie (Secure, with the
``__Host-`` prefix, in production); the database holds only its SHA-256. A session acts as the token it
signed in with, so it ends as soon as that token is revoked or expires, and it also ends when idle for
``PMAP_CONSOLE_IDLE_MINUTES``, ``PMAP_CONSOLE_SESSION_HOURS`` after sign-in, or on sign-out. Every
state-changing request it makes must carry the session's CSRF token in ``X-CSRF-Token`` (or the
``csrf_token`` field of a console form): the cookie alone, which a browser attaches to a cross-site
request, changes nothing.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pmap.audit.service import SessionAudit
from pmap.auth.models import ApiToken, ConsoleSession
from pmap.auth.principal import Principal, Role
from pmap.auth.service import authenticate, hash_token, is_active
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.db import utcnow
from pmap.core.errors import AuthenticationRequired, PermissionDenied
from pmap.core.settings import Settings

#: ``last_seen_at`` is stamped at most this often, so that reads stay nearly write-free
SEEN_RESOLUTION = timedelta(seconds=30)
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def cookie_name(settings: Settings) -> str:
    """The session cookie's name: ``__Host-`` prefixed in production, where it is Secure, host-only, path /."""
    return "__Host-pmap_session" if settings.production else "pmap_session"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A session just started: ``cookie`` goes to the browser once and is never stored."""

    cookie: str
    csrf_token: str
    principal: Principal
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ConsoleIdentity:
    """The principal behind a session cookie, and that session's CSRF token."""

    principal: Principal
    csrf_token: str
    session_id: str


def sign_in(session: Session, token: str, settings: Settings) -> SignedIn:
    """Start a session for a valid API token (401 otherwise), audited as ``session.start``; sessions past their
    end are deleted on the way."""
    principal = authenticate(session, token.strip())
    now = utcnow()
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires_at = now + timedelta(hours=settings.console_session_hours)
    row = ConsoleSession(session_hash=hash_token(cookie), csrf_token=csrf, token_id=principal.token_id,
                         organization_id=principal.organization_id, created_at=now, last_seen_at=now,
                         expires_at=expires_at)
    session.add(row)
    session.flush()
    _audit(session, principal, AuditAction.SESSION_START, row)
    return SignedIn(cookie=cookie, csrf_token=csrf, principal=principal, expires_at=expires_at)


def identify(session: Session, cookie: str, settings: Settings) -> ConsoleIdentity:
    """The principal of a live session (401 for an unknown, ended, idle or expired one, or one whose token no
    longer works); stamps ``last_seen_at`` with the caller's commit."""
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.session_hash == hash_token(cookie)))
    now = utcnow()
    idle = timedelta(minutes=settings.console_idle_minutes)
    if row is None or row.expires_at <= now or row.last_seen_at + idle <= now:
        raise AuthenticationRequired("the console session ended: sign in again")
    token = session.get(ApiToken, row.token_id)
    if token is None or not is_active(token, now):
        raise AuthenticationRequired("the console session ended: sign in again")
    if now - row.last_seen_at >= SEEN_RESOLUTION:
        row.last_seen_at = now
    principal = Principal(token_id=token.id, name=token.name, organization_id=token.organization_id,
                          role=Role(token.role), kind="token")
    return ConsoleIdentity(principal=principal, csrf_token=row.csrf_token, session_id=str(row.id))


def check_csrf(identity: ConsoleIdentity, presented: str | None) -> None:
    """Refuse (403) a state-changing request whose CSRF token is missing or not this session's."""
    if not presented or not hmac.compare_digest(presented.encode(), identity.csrf_token.encode()):
        raise PermissionDenied("this request needs the console's CSRF token (X-CSRF-Token)")


def sign_out(session: Session, cookie: str) -> bool:
    """End the session of ``cookie`` on the server, audited as ``session.end``; False when there was none."""
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.session_hash == hash_token(cookie)))
    if row is None:
        return False
    token = session.get(ApiToken, row.token_id)
    if token is not None:
        principal = Principal(token_id=token.id, name=token.name, organization_id=token.organization_id,
                              role=Role(token.role))
        _audit(session, principal, AuditAction.SESSION_END, row)
    session.delete(row)
    return True


def _audit(session: Session, principal: Principal, action: AuditAction, row: ConsoleSession) -> None:
    SessionAudit(session).record(actor=principal.actor, action=action, integration_id=None, purpose=None,
                                 outcome=AuditOutcome.SUCCESS, detail={"session_id": str(row.id)})
