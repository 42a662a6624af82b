"""Severity rules under /api/v1/rules: viewers read, operators write; every save is compiled first.

A rule that does not compile is refused with 422 naming the part (``condition``, ``action`` or
``value``) and the problem, with its character position in the condition when known; so is a rule
over a bound (:mod:`pmap.findings.rules_limits`). Saving answers what the rule costs an import, and
``GET /rules/cost`` what the whole set costs (:mod:`pmap.findings.rules_cost`). Rules apply to
imports in ``position`` order (ties: oldest first); see :mod:`pmap.findings.severity`.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from sqlalchemy import func

from pmap.auth.deps import Operator, Viewer
from pmap.auth.principal import Principal
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.db import utcnow
from pmap.core.deps import DbSession, SettingsDep, StateDep
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.settings import Settings
from pmap.findings.models import Rule
from pmap.findings.rules_cost import RuleSetCost, rule_set_cost
from pmap.findings.rules_engine import CompiledRule, RuleCompileError, RuleSpec, compile_rule
from pmap.findings.rules_limits import check_rule_limits
from pmap.findings.rules_preview import Candidate, Change, Effect, preview
from pmap.findings.schemas import (
    RuleChecked,
    RuleCost,
    RuleCostItem,
    RuleCostSample,
    RuleCreate,
    RuleEffectOut,
    RuleLimits,
    RuleList,
    RuleOut,
    RulePreviewIn,
    RulePreviewOut,
    RulePreviewSample,
    RuleSaved,
    RuleSetCostOut,
    RuleUpdate,
)

router = APIRouter(prefix="/rules", tags=["rules"])


def validate_rule(name: str, condition: str, action: str, value: str | None) -> CompiledRule:
    """Compile the rule; returns it (its value normalized) or raises a 422 naming the problem."""
    try:
        compiled = compile_rule(RuleSpec(id="candidate", name=name, condition=condition, action=action,
                                         value=value, position=0))
    except RuleCompileError as exc:
        where = f" (at position {exc.position})" if exc.position is not None else ""
        raise ValidationFailed(f"the rule does not compile: {exc.field}: {exc.message}{where}",
                               fields=[FieldProblem(exc.field, f"{exc.message}{where}")]) from None
    return compiled


def _sample(cost: RuleSetCost) -> RuleCostSample:
    return RuleCostSample(source=cost.sample_source, findings=cost.sample_findings)


def _cost_report(cost: RuleSetCost, settings: Settings) -> RuleSetCostOut:
    measured = [r.us_per_finding for r in cost.rules if r.enabled and r.us_per_finding is not None]
    summed = sum(measured)
    items = [RuleCostItem(id=uuid.UUID(r.id), name=r.name, enabled=r.enabled, size=r.size,
                          us_per_finding=None if r.us_per_finding is None else round(r.us_per_finding, 3),
                          error=r.error,
                          share=(r.us_per_finding / summed if summed else 1 / len(measured))
                          if r.enabled and r.us_per_finding is not None else None)
             for r in cost.rules]
    return RuleSetCostOut(
        us_per_finding=round(cost.us_per_finding, 3), seconds_per_100k_findings=round(cost.us_per_finding / 10, 4),
        sample=_sample(cost), rules=len(cost.rules), enabled=sum(1 for r in cost.rules if r.enabled),
        size=sum(r.size for r in cost.rules), partial=cost.partial, items=items,
        limits=RuleLimits(max_rules=settings.rules_max_per_org, max_rule_size=settings.rules_max_rule_size,
                          max_org_size=settings.rules_max_org_size),
    )


def _rule_cost(cost: RuleSetCost, rule_id: str) -> RuleCost:
    mine = cost.rule(rule_id)
    return RuleCost(rule_us_per_finding=mine.us_per_finding if mine else None, rule_adds_us_per_finding=cost.adds,
                    rule_set_us_per_finding=cost.us_per_finding, size=mine.size if mine else 0, sample=_sample(cost))


def _audit(state: StateDep, principal: Principal, action: AuditAction, rule: Rule) -> None:
    state.audit.record(actor=principal.actor, action=action, integration_id=None, purpose=None,
                       outcome=AuditOutcome.SUCCESS, detail={"rule_id": str(rule.id), "name": rule.name})


def _ordered(principal: Principal) -> object:
    return principal.scoped(Rule).order_by(Rule.position, Rule.created_at, Rule.id)


@router.get("", response_model=RuleList)
def list_rules(session: DbSession, principal: Viewer) -> RuleList:
    """Every rule of the organization, in evaluation order."""
    rows = session.scalars(_ordered(principal)).all()  # type: ignore[call-overload]
    return RuleList(items=[RuleOut.model_validate(r) for r in rows])


@router.get("/cost", response_model=RuleSetCostOut)
def get_rules_cost(session: DbSession, settings: SettingsDep, principal: Viewer) -> RuleSetCostOut:
    """What the organization's rules cost each imported finding, and each rule's size and share."""
    cost = rule_set_cost(session, principal.organization_id, settings.rules_cost_sample)
    return _cost_report(cost, settings)


@router.post("/validate", response_model=RuleChecked)
def check_rule(body: RuleCreate, session: DbSession, settings: SettingsDep, principal: Operator) -> RuleChecked:
    """Compile and bound a rule as creating it would, save nothing, and answer what it would cost."""
    compiled = validate_rule(body.name, body.condition, body.action, body.value)
    check_rule_limits(settings, session, principal, compiled.size)
    # a fixed id: asking twice about the same rule is answered from the cache
    candidate = RuleSpec(id="unsaved", name=body.name, condition=body.condition, action=body.action,
                         value=compiled.value, position=0)
    cost = rule_set_cost(session, principal.organization_id, settings.rules_cost_sample, focus=candidate.id,
                         candidate=candidate)
    return RuleChecked(value=compiled.value, cost=_rule_cost(cost, candidate.id))


def _effect_out(effect: Effect) -> RuleEffectOut:
    return RuleEffectOut(severity=effect.severity, suppressed=effect.suppressed, tags=effect.tags)


def _sample_out(change: Change) -> RulePreviewSample:
    return RulePreviewSample(finding_id=change.finding_id, title=change.title, from_=_effect_out(change.before),
                             to=_effect_out(change.after))


@router.post("/preview", response_model=RulePreviewOut)
def preview_rule(body: RulePreviewIn, session: DbSession, settings: SettingsDep,
                 principal: Operator) -> RulePreviewOut:
    """What saving the rule (a new one, or ``rule_id`` edited) would change on the organization's open findings;
    saves nothing. A rule that does not compile, or that saving would refuse for a bound, is the 422 of
    ``/rules/validate`` (the preview runs it over many findings: it is bounded first, as saving it would be)."""
    compiled = validate_rule(body.name, body.condition, body.action, body.value)
    check_rule_limits(settings, session, principal, compiled.size, replacing=body.rule_id)
    result = preview(session, principal, Candidate(
        name=body.name, condition=body.condition, action=body.action, value=compiled.value, position=body.position,
        enabled=body.enabled, rule_id=body.rule_id))
    return RulePreviewOut(examined=result.examined, changed=result.changed, by_change=result.by_change,
                          samples=[_sample_out(c) for c in result.samples], truncated=result.truncated)


@router.post("", response_model=RuleSaved, status_code=status.HTTP_201_CREATED)
def create_rule(body: RuleCreate, session: DbSession, state: StateDep, settings: SettingsDep,
                principal: Operator) -> RuleSaved:
    """Add a rule (compiled and bounded first: a 422 names the error or the limit); answers its cost."""
    compiled = validate_rule(body.name, body.condition, body.action, body.value)
    check_rule_limits(settings, session, principal, compiled.size)
    value = compiled.value
    last = session.execute(principal.scoped(Rule, func.max(Rule.position))).scalar()
    position = body.position if body.position is not None else (0 if last is None else last + 1)
    now = utcnow()
    rule = Rule(organization_id=principal.organization_id, name=body.name, condition=body.condition,
                action=body.action, value=value, position=position, enabled=body.enabled, created_at=now,
                updated_at=now)
    session.add(rule)
    session.commit()
    _audit(state, principal, AuditAction.RULE_CREATE, rule)
    return _saved(session, settings, principal, rule)


def _saved(session: DbSession, settings: SettingsDep, principal: Principal, rule: Rule) -> RuleSaved:
    out = RuleOut.model_validate(rule)
    cost = rule_set_cost(session, principal.organization_id, settings.rules_cost_sample, focus=str(out.id))
    return RuleSaved(**out.model_dump(), cost=_rule_cost(cost, str(out.id)))


@router.get("/{rule_id}", response_model=RuleOut)
def get_rule(rule_id: uuid.UUID, session: DbSession, principal: Viewer) -> RuleOut:
    """One rule."""
    return RuleOut.model_validate(principal.get_owned(session, Rule, rule_id, what="rule"))


@router.patch("/{rule_id}", response_model=RuleSaved)
def update_rule(rule_id: uuid.UUID, body: RuleUpdate, session: DbSession, state: StateDep, settings: SettingsDep,
                principal: Operator) -> RuleSaved:
    """Change a rule; the rule as it would be after the change is compiled and bounded first."""
    rule = principal.get_owned(session, Rule, rule_id, what="rule")
    given = body.model_dump(exclude_unset=True)
    for name in ("name", "condition", "action", "position", "enabled"):
        if given.get(name) is None and name in given:
            raise ValidationFailed("the request is invalid", fields=[FieldProblem(name, "must not be null")])
    action = given.get("action", rule.action)
    # changing the action drops a value that belonged to the old one unless a new value is given
    value = given.get("value", rule.value if action == rule.action else None)
    condition = given.get("condition", rule.condition)
    name = given.get("name", rule.name)
    compiled = validate_rule(name, condition, action, value)
    if condition != rule.condition:
        check_rule_limits(settings, session, principal, compiled.size, replacing=rule.id)
    rule.value = compiled.value
    rule.name, rule.condition, rule.action = name, condition, action
    if "position" in given:
        rule.position = given["position"]
    if "enabled" in given:
        rule.enabled = given["enabled"]
    rule.updated_at = utcnow()
    session.commit()
    _audit(state, principal, AuditAction.RULE_UPDATE, rule)
    return _saved(session, settings, principal, rule)


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(rule_id: uuid.UUID, session: DbSession, state: StateDep, principal: Operator) -> Response:
    """Delete a rule (findings keep the id of the rule that set their severity, as history)."""
    rule = principal.get_owned(session, Rule, rule_id, what="rule")
    session.delete(rule)
    session.commit()
    _audit(state, principal, AuditAction.RULE_DELETE, rule)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

