"""Bounds on an organization's rules, checked when a rule is saved, never when an import runs.

Every finding of every import is evaluated against the organization's rules, so their number and
compiled size are bounded: ``PMAP_RULES_MAX_PER_ORG`` rules, ``PMAP_RULES_MAX_RULE_SIZE`` per
rule and ``PMAP_RULES_MAX_ORG_SIZE`` summed over the organization (disabled rules count: enabling
one is an update that is not checked again). A rule's compiled size is its condition's syntax
nodes plus the RE2 program instructions of its regexes. A save over a bound is a 422 naming the
bound, its setting, its limit and the measured value. Rules saved before a bound was lowered keep
working; an update that does not grow a rule is allowed even when the organization is over.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

from sqlalchemy.orm import Session

from pmap.auth.principal import Principal
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.settings import Settings
from pmap.findings.models import Rule
from pmap.findings.rules_compile import compile_condition
from pmap.findings.rules_lang import LangError


@lru_cache(maxsize=4096)
def condition_size(condition: str) -> int:
    """The compiled size of a stored condition (0 when it no longer compiles: imports refuse it anyway)."""
    try:
        return compile_condition(condition).size
    except (LangError, RecursionError):
        return 0


def _refuse(what: str, setting: str, limit: int, measured: int, field: str) -> ValidationFailed:
    reason = f"{what} is {measured}, over the limit of {limit} ({setting})"
    return ValidationFailed(f"the rule is refused: {reason}", fields=[FieldProblem(field, reason)],
                            details={"limit": {"setting": setting, "max": limit, "measured": measured}})


def check_rule_limits(settings: Settings, session: Session, principal: Principal, size: int,
                      replacing: uuid.UUID | None = None) -> None:
    """Raise a 422 when saving a rule of compiled ``size`` (a new one, or in place of ``replacing``)
    would exceed a bound of the organization."""
    if size > settings.rules_max_rule_size:
        raise _refuse("the condition's compiled size (syntax nodes + regex program)", "PMAP_RULES_MAX_RULE_SIZE",
                      settings.rules_max_rule_size, size, "condition")
    rows = session.execute(principal.scoped(Rule, Rule.id, Rule.condition)).all()
    if replacing is None and len(rows) >= settings.rules_max_per_org:
        raise _refuse("the number of rules of the organization with this one", "PMAP_RULES_MAX_PER_ORG",
                      settings.rules_max_per_org, len(rows) + 1, "rules")
    others = sum(condition_size(r.condition) for r in rows if r.id != replacing)
    before = next((condition_size(r.condition) for r in rows if r.id == replacing), 0)
    total = others + size
    if total > settings.rules_max_org_size and size > before:
        raise _refuse("the organization's compiled rule size with this rule", "PMAP_RULES_MAX_ORG_SIZE",
                      settings.rules_max_org_size, total, "condition")
