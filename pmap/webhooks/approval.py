"""Where an integration's webhook secret may be sent: the target an admin approved.

Only an admin may reveal a webhook secret, so only an admin may cause it to be sent anywhere new:
registering the hook hands the secret to whatever answers at the integration's target, and an
operator may move that target (supplying throwaway credentials, as a target change requires).

``webhook_state["approved_target"]`` holds :func:`target_fingerprint` (a SHA-256 of non-secret
settings, itself no secret) of the one place the secret may go without an admin. It is recorded when
the integration is created (its creator chose that target; nothing has been sent anywhere), when a
first secret is generated on an integration from before approvals were recorded, and whenever an admin
registers (the admin's call approves the target it sends to). Moving the target and rotating the secret
keep it: a rotated secret sent to a moved target would serve an operator just as well. The fingerprint
is stored, not a yes/no flag, so a target changed by a concurrent edit is never approved by accident.
"""

from __future__ import annotations

from pmap.auth.principal import Principal, Role
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.errors import PermissionDenied
from pmap.core.seams import Purpose
from pmap.core.state import AppState
from pmap.integrations.models import Integration
from pmap.integrations.service import APPROVED_TARGET as APPROVED
from pmap.integrations.service import target_fingerprint

__all__ = ["APPROVED", "approval", "is_approved", "may_send_secret", "open_to_operators", "require_may_send",
           "target_fingerprint"]


def is_approved(row: Integration) -> bool:
    """Whether the integration's current target is the one its webhook secret may be sent to."""
    return (row.webhook_state or {}).get(APPROVED) == target_fingerprint(row.connection)


def open_to_operators(row: Integration) -> bool:
    """Whether an operator's register or auto-setup may send a secret to the current target: it is the
    approved one, or no secret exists and none was approved yet (generating one approves its target)."""
    if row.encrypted_webhook_secret is None and not (row.webhook_state or {}).get(APPROVED):
        return True
    return is_approved(row)


def approval(row: Integration) -> dict[str, str]:
    """The ``webhook_state`` entry approving the integration's current target."""
    return {APPROVED: target_fingerprint(row.connection)}


def may_send_secret(row: Integration, principal: Principal | None) -> bool:
    """Whether the webhook secret may be sent to the integration's current target on behalf of ``principal``.

    An admin may (the role that may reveal the secret; the call then approves the target). Anyone else
    sends only to the approved target. A scheduled job (the scheduled rotation of issue 12 included)
    must pass ``None``, never a principal of its own: it re-registers only where an admin approved.
    """
    if principal is not None and principal.role is Role.ADMIN:
        return True
    return is_approved(row)


def require_may_send(state: AppState, principal: Principal, row: Integration, action: AuditAction) -> None:
    """Refuse (403) a call that would send the webhook secret to a target no admin approved; the
    refusal is audited in its own transaction as a failed ``action``."""
    if may_send_secret(row, principal):
        return
    state.audit.record(actor=principal.actor, action=action, integration_id=row.id,
                       purpose=Purpose.WEBHOOK_REGISTRATION.value, outcome=AuditOutcome.FAILURE,
                       detail={"reason": "target_not_approved", "needs": Role.ADMIN.value})
    raise PermissionDenied("the integration's target (base URL, TLS trust or vendor-side project) changed since "
                           "an admin last registered its webhook: an admin must register the webhook on the new "
                           "target before an operator may send the secret there")
