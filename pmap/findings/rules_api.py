"""Severity rules under /api/v1/rules: viewers read, operators write; every save is compiled first.

A rule that does not compile is refused with 422 naming the part (``condition``, ``action`` or
``value``) and the problem, with its character position in the condition when known. Rules apply
to imports in ``position`` order (ties: oldest first); see :mod:`pmap.findings.severity`.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from sqlalchemy import func

from pmap.auth.deps import Operator, Viewer
from pmap.auth.principal import Principal
from pmap.core.db import utcnow
from pmap.core.deps import DbSession, StateDep
from pmap.core.errors import Conflict, FieldProblem, ValidationFailed
from pmap.findings.models import Rule
from pmap.findings.rules_engine import RuleCompileError, RuleSpec, compile_rule
from pmap.findings.schemas import RuleCreate, RuleList, RuleOut, RuleUpdate

router = APIRouter(prefix="/rules", tags=["rules"])

#: rules per organization: each finding of every import is evaluated against all of them
MAX_RULES = 200


def validate_rule(name: str, condition: str, action: str, value: str | None) -> str | None:
    """Compile the rule; returns its normalized value or raises a 422 naming the problem."""
    try:
        compiled = compile_rule(RuleSpec(id="candidate", name=name, condition=condition, action=action,
                                         value=value, position=0))
    except RuleCompileError as exc:
        where = f" (at position {exc.position})" if exc.position is not None else ""
        raise ValidationFailed(f"the rule does not compile: {exc.field}: {exc.message}{where}",
                               fields=[FieldProblem(exc.field, f"{exc.message}{where}")]) from None
    return compiled.value


def _audit(state: StateDep, principal: Principal, action: str, rule: Rule) -> None:
    state.audit.record(actor=principal.actor, action=action, integration_id=None, purpose=None,  # type: ignore[attr-defined]
                       outcome="success", detail={"rule_id": str(rule.id), "name": rule.name})


def _ordered(principal: Principal) -> object:
    return principal.scoped(Rule).order_by(Rule.position, Rule.created_at, Rule.id)


@router.get("", response_model=RuleList)
def list_rules(session: DbSession, principal: Viewer) -> RuleList:
    """Every rule of the organization, in evaluation order."""
    rows = session.scalars(_ordered(principal)).all()  # type: ignore[call-overload]
    return RuleList(items=[RuleOut.model_validate(r) for r in rows])


@router.post("", response_model=RuleOut, status_code=status.HTTP_201_CREATED)
def create_rule(body: RuleCreate, session: DbSession, state: StateDep, principal: Operator) -> RuleOut:
    """Add a rule (compiled first: a rule that does not compile is a 422 naming the error)."""
    value = validate_rule(body.name, body.condition, body.action, body.value)
    count, last = session.execute(
        principal.scoped(Rule, func.count(Rule.id), func.max(Rule.position))).one()
    if count >= MAX_RULES:
        raise Conflict(f"an organization may have at most {MAX_RULES} rules")
    position = body.position if body.position is not None else (0 if last is None else last + 1)
    now = utcnow()
    rule = Rule(organization_id=principal.organization_id, name=body.name, condition=body.condition,
                action=body.action, value=value, position=position, enabled=body.enabled, created_at=now,
                updated_at=now)
    session.add(rule)
    session.commit()
    _audit(state, principal, "rule.create", rule)
    return RuleOut.model_validate(rule)


@router.get("/{rule_id}", response_model=RuleOut)
def get_rule(rule_id: uuid.UUID, session: DbSession, principal: Viewer) -> RuleOut:
    """One rule."""
    return RuleOut.model_validate(principal.get_owned(session, Rule, rule_id, what="rule"))


@router.patch("/{rule_id}", response_model=RuleOut)
def update_rule(rule_id: uuid.UUID, body: RuleUpdate, session: DbSession, state: StateDep,
                principal: Operator) -> RuleOut:
    """Change a rule; the rule as it would be after the change is compiled first."""
    rule = principal.get_owned(session, Rule, rule_id, what="rule")
    given = body.model_dump(exclude_unset=True)
    for name in ("name", "condition", "action", "position", "enabled"):
        if given.get(name) is None and name in given:
            raise ValidationFailed("the request is invalid", fields=[FieldProblem(name, "must not be null")])
    action = given.get("action", rule.action)
    # changing the action drops a value that belonged to the old one unless a new value is given
    value = given["value"] if "value" in given else (rule.value if action == rule.action else None)
    condition = given.get("condition", rule.condition)
    name = given.get("name", rule.name)
    rule.value = validate_rule(name, condition, action, value)
    rule.name, rule.condition, rule.action = name, condition, action
    if "position" in given:
        rule.position = given["position"]
    if "enabled" in given:
        rule.enabled = given["enabled"]
    rule.updated_at = utcnow()
    session.commit()
    _audit(state, principal, "rule.update", rule)
    return RuleOut.model_validate(rule)


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(rule_id: uuid.UUID, session: DbSession, state: StateDep, principal: Operator) -> Response:
    """Delete a rule (findings keep the id of the rule that set their severity, as history)."""
    rule = principal.get_owned(session, Rule, rule_id, what="rule")
    session.delete(rule)
    session.commit()
    _audit(state, principal, "rule.delete", rule)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

