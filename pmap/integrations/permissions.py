"""Least-privilege checks: ask the vendor what the stored credentials may do."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pmap.audit.service import SessionAudit
from pmap.auth.principal import Principal
from pmap.connectors.base import ChecksPermissions, PermissionReport
from pmap.connectors.calls import vendor_context, vendor_failure
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.errors import OperationNotSupported, UpstreamError
from pmap.core.redaction import scrub
from pmap.core.seams import Purpose
from pmap.core.state import AppState
from pmap.integrations.models import Integration
from pmap.integrations.service import vendor_type

EXCESS_WARNING = "least privilege: the account holds more rights than PMAP needs ({}); use a narrower account or token"


def check_permissions(session: Session, state: AppState, principal: Principal, row: Integration) -> PermissionReport:
    """Run the implementation's ``check_permissions`` with credentials resolved for purpose
    ``permissions_check``; excess rights become a least-privilege warning. Audited."""
    ct = vendor_type(row.vendor)
    impl = ct.implementation
    if not isinstance(impl, ChecksPermissions):
        raise OperationNotSupported(f"the {ct.display_name} connector offers no permission check")
    resolver = state.resolver
    with resolver.resolve(row, purpose=Purpose.PERMISSIONS_CHECK, actor=principal.actor) as creds:
        ctx = vendor_context(state.settings, ct, row.connection, creds.values, purpose=Purpose.PERMISSIONS_CHECK.value)
        try:
            report: PermissionReport = impl.check_permissions(ctx)
        except UpstreamError as exc:
            _audit(session, principal, row, AuditOutcome.FAILURE, {"step": exc.step})
            raise vendor_failure(exc, "the permission check", ctx.secrets) from None
        secrets = ctx.secrets
    warnings = [scrub(w, secrets) for w in report.warnings]
    if report.excess and not any(w.startswith("least privilege") for w in warnings):
        warnings.append(EXCESS_WARNING.format(", ".join(report.excess)))
    report = report.model_copy(update={"warnings": warnings, "excess": [scrub(e, secrets) for e in report.excess]})
    _audit(session, principal, row, AuditOutcome.SUCCESS, {"ok": report.ok, "missing": sum(
        1 for p in report.permissions if p.state.value == "missing"), "excess": len(report.excess)})
    return report


def _audit(session: Session, principal: Principal, row: Integration, outcome: AuditOutcome,
           detail: dict[str, object]) -> None:
    SessionAudit(session).record(actor=principal.actor, action=AuditAction.INTEGRATION_PERMISSIONS_CHECK,
                                 integration_id=row.id, purpose=Purpose.PERMISSIONS_CHECK.value, outcome=outcome,
                                 detail=detail)
    session.commit()
