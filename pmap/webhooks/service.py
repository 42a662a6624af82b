"""Webhook secret lifecycle (generate, reveal, regenerate), status, and delivery listings.

The secret lives only in ``integrations.encrypted_webhook_secret`` (sealed by
:func:`seal_webhook_secrets`, opened only through the credential resolver). Non-secret facts live in
``integrations.webhook_state`` (JSON): ``configured``, ``created_at``, ``rotated_at``,
``previous_expires_at``, ``registered``, ``registered_at``, ``hook_id``, ``registered_url``, ``signed``,
``ping_supported``, ``vendor_has_current_secret``, ``approved_target`` (where the secret may be sent
without an admin: see :mod:`pmap.webhooks.approval`). Delivery facts (last delivery, last rejection) are
read from ``webhook_deliveries`` rather than written to the integration row on every delivery, so
the receiver never contends on one hot row.
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pmap.audit.service import SessionAudit
from pmap.auth.principal import Principal
from pmap.connectors.base import ConnectorType, PingsWebhooks, RegistersWebhooks
from pmap.connectors.catalog import connector_types
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.errors import Conflict, OperationNotSupported
from pmap.core.pagination import newest_first, split_page
from pmap.core.seams import Purpose
from pmap.core.settings import Settings
from pmap.core.state import AppState
from pmap.credentials.service import WebhookSecrets, seal_webhook_secrets
from pmap.integrations.models import Integration
from pmap.webhooks import approval, clock
from pmap.webhooks.models import Outcome, Verification, WebhookDelivery
from pmap.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookStatus,
)
from pmap.webhooks.schemes import SCHEMES, SECRET_SENT_WITH_EACH_DELIVERY, WebhookScheme


def scheme_key(vendor: str) -> str | None:
    """The webhook scheme of a vendor type, or None when it sends no verifiable webhooks."""
    ct = connector_types().get(vendor)
    key = ct.webhook_scheme if ct is not None else None
    return key if key in SCHEMES else None


def webhook_scheme(row: Integration) -> WebhookScheme:
    """The scheme of an integration's vendor; 422 ``operation_not_supported`` for a vendor without webhooks."""
    key = scheme_key(row.vendor)
    if key is None:
        raise OperationNotSupported(f"the {row.vendor} vendor type sends no webhooks PMAP can verify")
    return SCHEMES[key]


def receiving_url(settings: Settings, integration_id: uuid.UUID) -> str:
    """Where the vendor must send deliveries."""
    return f"{settings.public_base_url.rstrip('/')}/hooks/{integration_id}"


def can_register(ct: ConnectorType | None) -> bool:
    """Whether the vendor's implementation can install a webhook through its API."""
    return ct is not None and isinstance(ct.implementation, RegistersWebhooks)


def can_ping(ct: ConnectorType | None) -> bool:
    """Whether the vendor's implementation can trigger a test delivery."""
    return ct is not None and isinstance(ct.implementation, PingsWebhooks)


# --- the integration's webhook state -------------------------------------------------------------

def state_of(row: Integration) -> dict[str, Any]:
    """A copy of the row's webhook state (assign a new dict back: JSON columns track reassignment)."""
    return dict(row.webhook_state or {})


def set_state(row: Integration, **changes: Any) -> None:
    """Merge ``changes`` into the row's webhook state."""
    doc = state_of(row)
    doc.update({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in changes.items()})
    row.webhook_state = doc


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _locked(session: Session, row: Integration) -> Integration:
    """The row again, locked for the rest of the transaction (PostgreSQL; SQLite serializes writers)."""
    stmt = (select(Integration).where(Integration.id == row.id).with_for_update()
            .execution_options(populate_existing=True))
    return session.scalars(stmt).one()


def is_configured(row: Integration) -> bool:
    """A secret slot exists (even an empty one counts: verification is then required and fails)."""
    return row.encrypted_webhook_secret is not None


# --- lifecycle -----------------------------------------------------------------------------------

def generate(session: Session, state: AppState, principal: Principal, row: Integration) -> Integration:
    """Store a new random secret in the vendor's format; 409 when one exists. Audited."""
    scheme = webhook_scheme(row)
    row = _locked(session, row)
    if is_configured(row):
        raise Conflict("a webhook secret exists: use regenerate to rotate it")
    secret = scheme.generate_secret()
    row.encrypted_webhook_secret = seal_webhook_secrets(state.keys, row.id, WebhookSecrets(secret, None, None))
    now = clock.now()
    set_state(row, configured=True, created_at=now, rotated_at=None, previous_expires_at=None,
              vendor_has_current_secret=False, **_first_approval(row))
    SessionAudit(session).record(actor=principal.actor, action=AuditAction.WEBHOOK_SECRET_GENERATE,
                                 integration_id=row.id, purpose=None, outcome=AuditOutcome.SUCCESS,
                                 detail={"scheme": scheme.key})
    session.commit()
    return row


def _first_approval(row: Integration) -> dict[str, str]:
    """The approval a first secret brings: none when one is recorded (since creation: a new secret must
    not move it); otherwise (a row from before approvals were recorded) its current target, since a
    brand-new secret has been sent nowhere."""
    return {} if state_of(row).get(approval.APPROVED) else approval.approval(row)


def reveal(session: Session, state: AppState, principal: Principal, row: Integration) -> str:
    """The current secret, decrypted for purpose ``reveal`` (the resolver audits it)."""
    webhook_scheme(row)
    if not is_configured(row):
        raise Conflict("no webhook secret is configured: generate one first")
    resolver = state.resolver
    with resolver.resolve_webhook_secrets(row, purpose=Purpose.REVEAL, actor=principal.actor) as secrets:
        current = secrets.current
    if not current:
        raise Conflict("the stored webhook secret is empty: regenerate it")
    return current


def regenerate(session: Session, state: AppState, principal: Principal, row: Integration,
               grace_seconds: int | None) -> Integration:
    """Rotate: a new current secret; the old one stays valid for ``grace_seconds`` (default from
    settings; 0 ends it now). Only one previous secret is kept: an older one still in grace is dropped."""
    scheme = webhook_scheme(row)
    row = _locked(session, row)
    grace = state.settings.webhook_grace_seconds if grace_seconds is None else grace_seconds
    now = clock.now()
    resolver = state.resolver
    old: str | None = None
    if is_configured(row):
        with resolver.resolve_webhook_secrets(row, purpose=Purpose.WEBHOOK_ROTATION, actor=principal.actor) as s:
            old = s.current
    expires = now + timedelta(seconds=grace) if old and grace > 0 else None
    secret = scheme.generate_secret()
    row.encrypted_webhook_secret = seal_webhook_secrets(
        state.keys, row.id, WebhookSecrets(secret, old if expires else None, expires))
    state_doc = state_of(row)
    # a rotation sends nothing and approves nothing: the new secret may go only where the old one might
    first = {} if old is not None else _first_approval(row)
    set_state(row, configured=True, created_at=state_doc.get("created_at") or now, rotated_at=now,
              previous_expires_at=expires, vendor_has_current_secret=False, **first)
    SessionAudit(session).record(
        actor=principal.actor, action=AuditAction.WEBHOOK_SECRET_REGENERATE, integration_id=row.id, purpose=None,
        outcome=AuditOutcome.SUCCESS, detail={"scheme": scheme.key, "grace_seconds": grace if expires else 0},
    )
    session.commit()
    return row


# --- status ----------------------------------------------------------------------------------------

def status(session: Session, settings: Settings, row: Integration) -> WebhookStatus:
    """The webhook status of one integration (decrypts nothing)."""
    scheme = webhook_scheme(row)
    ct = connector_types().get(row.vendor)
    doc = state_of(row)
    configured = is_configured(row)
    base = select(WebhookDelivery).where(WebhookDelivery.integration_id == row.id)
    order = (WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    last = session.scalars(base.order_by(*order).limit(1)).first()
    verified = session.scalars(
        base.where(WebhookDelivery.verification == Verification.SIGNED.value).order_by(*order).limit(1)).first()
    rejected = base.where(WebhookDelivery.outcome == Outcome.REJECTED.value)
    last_rejected = session.scalars(rejected.order_by(*order).limit(1)).first()
    # a summary row of failures beyond the failed budget stands for `attempts` of them (pmap.webhooks.unrecorded)
    counted = rejected.subquery()
    rejected_count = session.scalar(select(func.coalesce(func.sum(counted.c.attempts), 0))) or 0
    expires = _when(doc.get("previous_expires_at"))
    now = clock.now()
    if expires is not None and expires <= now:
        expires = None
    return WebhookStatus(
        integration_id=row.id, vendor=row.vendor, scheme=scheme.key, configured=configured,
        receiving_url=receiving_url(settings, row.id), registered=bool(doc.get("registered")),
        registered_at=_when(doc.get("registered_at")), hook_id=doc.get("hook_id"),
        registration_supported=can_register(ct), ping_supported=can_ping(ct) and bool(doc.get("ping_supported", True)),
        allow_unsigned=row.allow_unsigned_webhooks, target_approved=approval.open_to_operators(row),
        secret_created_at=_when(doc.get("created_at")),
        secret_rotated_at=_when(doc.get("rotated_at")), previous_secret_valid_until=expires,
        last_delivery_at=last.created_at if last else None, last_delivery_outcome=last.outcome if last else None,
        last_verified_delivery_at=verified.created_at if verified else None,
        last_rejection_at=last_rejected.created_at if last_rejected else None,
        last_rejection_reason=last_rejected.reason if last_rejected else None,
        rejected_count=int(rejected_count), warnings=_warnings(settings, row, doc, configured, expires, scheme.key),
    )


def _crosses_a_network_in_clear(url: str) -> bool:
    """Whether deliveries to ``url`` travel unencrypted over a network (plain http to a host other than loopback)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _warnings(settings: Settings, row: Integration, doc: dict[str, Any], configured: bool,
              expires: datetime | None, scheme_key: str) -> list[str]:
    out = []
    if scheme_key in SECRET_SENT_WITH_EACH_DELIVERY and _crosses_a_network_in_clear(receiving_url(settings, row.id)):
        out.append("the receiving URL is plain http and this vendor sends the webhook secret itself with every "
                   "delivery: anyone on the network path can read it; set PMAP_PUBLIC_BASE_URL to an https URL")
    if not configured:
        if row.allow_unsigned_webhooks:
            out.append("unsigned webhook deliveries are accepted for this integration: anyone who knows the URL "
                       "can send events; generate a secret")
        elif settings.production:
            out.append("no webhook secret: every delivery is rejected until one is generated")
        else:
            out.append("no webhook secret: deliveries are accepted unsigned (development only); generate one")
    elif row.allow_unsigned_webhooks:
        out.append("allow_unsigned_webhooks is on but has no effect while a secret is configured")
    if expires is not None:
        out.append(f"the previous secret is still accepted until {expires.isoformat()}")
    if not approval.open_to_operators(row):
        out.append("the target changed since an admin approved it for the webhook secret: an admin must register "
                   "the webhook on the current target (an operator's register or auto-setup is refused until then)")
    if configured and doc.get("registered") and not doc.get("vendor_has_current_secret", True):
        out.append("the secret was rotated after registration: update it on the vendor (register again)")
    return out


# --- listings --------------------------------------------------------------------------------------

def list_deliveries(session: Session, row: Integration, *, limit: int, cursor: str | None,
                    outcome: str | None = None) -> DeliveryPage:
    """Recent deliveries of one integration, newest first (keyset pagination)."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.integration_id == row.id)
    if outcome:
        stmt = stmt.where(WebhookDelivery.outcome == outcome)
    rows, nxt = split_page(session.scalars(newest_first(stmt, WebhookDelivery, cursor, limit)).all(), limit)
    return DeliveryPage(items=[_delivery_out(d) for d in rows], next_cursor=nxt)


def _delivery_out(d: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(id=d.id, delivery_id=d.delivery_id, event=d.event, outcome=d.outcome, reason=d.reason,
                       verification=d.verification, secret=d.secret_slot, size=d.size, attempts=d.attempts,
                       received_at=d.created_at, processed_at=d.processed_at)


#END
