"""Installing PMAP's receiver on the vendor: register, and auto-setup (generate, register, ping, wait)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from pmap.audit.service import SessionAudit
from pmap.auth.principal import Principal, Role
from pmap.connectors.base import (
    ConnectorType,
    OperationContext,
    PingsWebhooks,
    RegistersWebhooks,
    WebhookRegistered,
    WebhookRegistration,
)
from pmap.connectors.calls import failure_message, vendor_context, vendor_failure
from pmap.connectors.catalog import connector_types
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.errors import Conflict, OperationNotSupported, PmapError, UpstreamError
from pmap.core.redaction import scrub
from pmap.core.seams import Purpose
from pmap.core.state import AppState
from pmap.integrations.models import Integration
from pmap.webhooks import approval, clock, service
from pmap.webhooks.models import Outcome, Verification, WebhookDelivery
from pmap.webhooks.schemas import AutoSetupResult, PingResult, RegisterResult

#: How long auto-setup waits for the vendor's test delivery to arrive.
PING_WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.1

T = TypeVar("T")


def _registrable(row: Integration) -> tuple[ConnectorType, RegistersWebhooks]:
    service.webhook_scheme(row)
    ct = connector_types().get(row.vendor)
    registrar = ct.implementation if ct is not None else None
    if ct is None or not isinstance(registrar, RegistersWebhooks):
        raise OperationNotSupported(f"the {row.vendor} connector cannot install webhooks through the vendor's API: "
                                    "configure the receiving URL and the secret on the vendor by hand")
    return ct, registrar


def _with_vendor(state: AppState, principal: Principal, row: Integration, ct: ConnectorType,
                 work: Callable[[OperationContext, str], T]) -> T:
    """Run ``work(ctx, webhook_secret)`` with credentials and the webhook secret resolved for
    ``webhook_registration`` (both audited by the resolver). The one way a webhook secret leaves for a
    vendor: refused (403) before any decrypt unless the caller may send it to the current target."""
    approval.require_may_send(state, principal, row, AuditAction.WEBHOOK_REGISTER)
    resolver = state.resolver
    purpose = Purpose.WEBHOOK_REGISTRATION
    with resolver.resolve(row, purpose=purpose, actor=principal.actor) as creds, \
            resolver.resolve_webhook_secrets(row, purpose=purpose, actor=principal.actor) as secrets:
        if not secrets.current:
            raise Conflict("the stored webhook secret is empty: regenerate it")
        ctx = vendor_context(state.settings, ct, row.connection, creds.values, purpose=purpose.value,
                             extra_secrets=[secrets.current])
        return work(ctx, secrets.current)


def _install(registrar: RegistersWebhooks, url: str,
             previous: str | None) -> Callable[[OperationContext, str], WebhookRegistered]:
    def work(ctx: OperationContext, secret: str) -> WebhookRegistered:
        try:
            return registrar.register_webhook(
                ctx, WebhookRegistration(url=url, secret=SecretStr(secret), previous_hook_id=previous))
        except UpstreamError as exc:
            raise vendor_failure(exc, "webhook registration", ctx.secrets) from None
    return work


def _previous_hook(row: Integration) -> str | None:
    """The vendor's id of the hook PMAP registered last, if any."""
    hook_id = (row.webhook_state or {}).get("hook_id")
    return str(hook_id) if hook_id else None


def _record(session: Session, principal: Principal, row: Integration, reg: WebhookRegistered) -> RegisterResult:
    now = clock.now()
    # an admin's registration approves the target it sent the secret to (row.connection as sent)
    approves = principal.role is Role.ADMIN and not approval.is_approved(row)
    approved = approval.approval(row) if approves else {}
    service.set_state(row, registered=True, registered_at=now, hook_id=reg.hook_id, registered_url=reg.url,
                      signed=reg.signed, ping_supported=reg.ping_supported, vendor_has_current_secret=True,
                      **approved)
    SessionAudit(session).record(actor=principal.actor, action=AuditAction.WEBHOOK_REGISTER, integration_id=row.id,
                                 purpose=Purpose.WEBHOOK_REGISTRATION.value, outcome=AuditOutcome.SUCCESS,
                                 detail={"hook_id": reg.hook_id, "signed": reg.signed, "approves_target": approves})
    session.commit()
    return RegisterResult(hook_id=reg.hook_id, url=reg.url, signed=reg.signed, ping_supported=reg.ping_supported,
                          registered_at=now)


def register(session: Session, state: AppState, principal: Principal, row: Integration) -> RegisterResult:
    """Install the receiver on the vendor with the current secret; records hook id and time."""
    ct, registrar = _registrable(row)
    if not service.is_configured(row):
        raise Conflict("no webhook secret is configured: generate one first (or use auto-setup)")
    url = service.receiving_url(state.settings, row.id)
    reg = _with_vendor(state, principal, row, ct, _install(registrar, url, _previous_hook(row)))
    return _record(session, principal, row, reg)


def auto_setup(session: Session, state: AppState, principal: Principal, row: Integration) -> AutoSetupResult:
    """Generate a secret if missing, register, trigger the vendor's test delivery where it has one,
    and report whether PMAP received and verified it (waiting up to :data:`PING_WAIT_SECONDS`)."""
    ct, registrar = _registrable(row)
    generated = False
    if not service.is_configured(row):
        row = service.generate(session, state, principal, row)
        generated = True
    url = service.receiving_url(state.settings, row.id)
    pinger = registrar if isinstance(registrar, PingsWebhooks) else None
    ping_available = pinger is not None
    outcome: dict[str, Any] = {}

    def work(ctx: OperationContext, secret: str) -> WebhookRegistered:
        reg = _install(registrar, url, _previous_hook(row))(ctx, secret)
        if pinger is None or not reg.ping_supported:
            return reg
        outcome["started"] = clock.now()
        try:
            pinger.ping_webhook(ctx, reg.hook_id)
            outcome["sent"] = True
        except UpstreamError as exc:  # registered all the same: report the ping's failure, don't raise
            outcome.update(step=exc.step, message=failure_message(exc, ctx.secrets))
        except PmapError as exc:
            outcome.update(step="response", message=scrub(exc.message, ctx.secrets))
        return reg

    reg = _with_vendor(state, principal, row, ct, work)
    registration = _record(session, principal, row, reg)
    ping = PingResult(supported=ping_available and reg.ping_supported)
    if outcome.get("sent"):
        ping = _await_ping(state, row, outcome["started"])
    elif "step" in outcome:
        ping = PingResult(supported=True, failed_step=outcome["step"], message=outcome["message"])
    warnings = []
    if not ping.supported:
        warnings.append("the vendor has no test delivery: PMAP will show the first real delivery in the delivery list")
    elif not ping.verified:
        warnings.append("the test delivery was not received and verified: check the receiving URL is reachable from "
                        "the vendor and PMAP_PUBLIC_BASE_URL is right")
    ok = ping.verified or not ping.supported
    return AutoSetupResult(ok=ok, generated=generated, registration=registration, ping=ping, warnings=warnings)


def _await_ping(state: AppState, row: Integration, started: Any) -> PingResult:
    """Poll the delivery table for the first delivery since ``started``."""
    deadline = time.monotonic() + PING_WAIT_SECONDS
    stmt = (select(WebhookDelivery.delivery_id, WebhookDelivery.outcome, WebhookDelivery.verification,
                   WebhookDelivery.reason)
            .where(WebhookDelivery.integration_id == row.id, WebhookDelivery.created_at >= started)
            .order_by(WebhookDelivery.created_at.asc()).limit(1))
    while True:
        with state.sessions() as session:
            found = session.execute(stmt).first()
        if found is not None:
            verified = found.verification == Verification.SIGNED.value and found.outcome != Outcome.REJECTED.value
            return PingResult(supported=True, sent=True, received=True, verified=verified,
                              delivery_id=found.delivery_id, outcome=found.outcome,
                              message=None if verified else f"the delivery was not verified: {found.reason}")
        if time.monotonic() >= deadline:
            return PingResult(supported=True, sent=True, message=f"no delivery arrived within {PING_WAIT_SECONDS:g} s")
        time.sleep(_POLL_SECONDS)
