"""What saving a rule would change: the organization's rule set with and without the rule, applied now to its
newest open findings by the import's own severity pipeline (:mod:`pmap.findings.severity`).

Rules apply at import time, so saving one changes no stored finding; the preview answers what the next import of
each finding would do differently. Both sides are evaluated now, with the same pipeline, so the answer is the
rule's own effect, not the drift of findings imported under older rules. Conditions see what an import's
conditions saw: the stored finding's fields, its mapped severity, its integration's vendor and its format.
Examined: the open findings and those a rule suppressed (a changed rule may open them again), newest first, at
most :data:`PREVIEW_MAX` of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pmap.auth.principal import Principal
from pmap.core.errors import NotFound
from pmap.findings.formats.registry import report_formats
from pmap.findings.models import Finding, FindingStatus, Rule
from pmap.findings.rules_engine import RuleSet, RuleSpec
from pmap.findings.severity import RULE_FIELDS, Decision, SeverityPipeline, compile_rule_set, load_rule_specs
from pmap.integrations.models import Integration

#: findings examined at most, newest first: a bound on the work of one request, whatever the settings
PREVIEW_MAX = 50_000
SAMPLES_MAX = 10
#: what each action kind of the engine changes on a finding: the keys of ``by_change``
EFFECTS: dict[str, str] = {"set_severity": "severity", "suppress": "suppressed", "tag": "tags"}
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Effect:
    """What the rules decide for one finding, as a user sees it."""

    severity: str
    suppressed: bool
    tags: list[str]


@dataclass(frozen=True, slots=True)
class Change:
    """One finding the candidate rule set treats differently."""

    finding_id: uuid.UUID
    title: str
    before: Effect
    after: Effect


@dataclass(slots=True)
class Preview:
    """The findings examined, those changed (in all and per kind of change) and a few of them."""

    examined: int
    changed: int
    by_change: dict[str, int]
    samples: list[Change]
    truncated: bool


@dataclass(frozen=True, slots=True)
class Candidate:
    """The rule as it would be saved (its value already normalized by compiling it)."""

    name: str
    condition: str
    action: str
    value: str | None
    position: int | None
    enabled: bool
    rule_id: uuid.UUID | None  # the rule it replaces, when editing one


def _candidate_specs(session: Session, principal: Principal, candidate: Candidate) -> list[RuleSpec]:
    """The enabled rule set as it would be with ``candidate`` saved, in the order an import applies it."""
    rows = session.execute(
        principal.scoped(Rule, Rule.id, Rule.name, Rule.condition, Rule.action, Rule.value, Rule.position,
                         Rule.enabled, Rule.created_at)
    ).all()
    if candidate.rule_id is not None:
        replaced = next((r for r in rows if r.id == candidate.rule_id), None)
        if replaced is None:
            raise NotFound("rule not found")  # what the other rule routes answer for another organization's id
        position = candidate.position if candidate.position is not None else replaced.position
        # an edited rule keeps its creation time and id, which break position ties
        mine: tuple[Any, ...] = (position, 0, replaced.created_at, replaced.id)
        ident = str(candidate.rule_id)
    else:
        last = max((r.position for r in rows), default=None)
        position = candidate.position if candidate.position is not None else (0 if last is None else last + 1)
        mine, ident = (position, 1), "candidate"  # created now: after every rule of its position
    keyed: list[tuple[tuple[Any, ...], RuleSpec]] = [
        ((r.position, 0, r.created_at, r.id), RuleSpec(str(r.id), r.name, r.condition, r.action, r.value, 0))
        for r in rows if r.enabled and r.id != candidate.rule_id]
    if candidate.enabled:
        keyed.append((mine, RuleSpec(ident, candidate.name, candidate.condition, candidate.action, candidate.value, 0)))
    keyed.sort(key=lambda pair: pair[0])
    # load_rule_specs' numbering: the order given is the order applied
    return [RuleSpec(s.id, s.name, s.condition, s.action, s.value, order) for order, (_, s) in enumerate(keyed)]


def _effect(d: Decision) -> Effect:
    return Effect(d.severity, d.suppressed_by is not None, d.tags)


def _changes(before: Effect, after: Effect) -> list[str]:
    out = []
    if before.severity != after.severity:
        out.append(EFFECTS["set_severity"])
    if before.suppressed != after.suppressed:
        out.append(EFFECTS["suppress"])
    if set(before.tags) != set(after.tags):
        out.append(EFFECTS["tag"])
    return out


def _findings(principal: Principal, formats: Sequence[str], read: Set[str]) -> sa.Select[Any]:
    # only the fields a condition reads are loaded (a description may be 100 KiB, id lists are JSON to decode);
    # the others read as null, and no condition of either rule set reads them
    columns = [getattr(Finding, name) if name in read or name == "title" else sa.null().label(name)
               for name in RULE_FIELDS]
    ruled = sa.or_(Finding.status == FindingStatus.OPEN.value,
                   sa.and_(Finding.status == FindingStatus.SUPPRESSED.value,
                           Finding.suppressed_by_rule_id.is_not(None)))
    return (principal.scoped(Finding, *columns, Finding.id, Finding.mapped_severity, Finding.severity_source,
                             Finding.integration_id, Finding.format, Integration.vendor)
            .join(Integration, Integration.id == Finding.integration_id)
            # a format no longer registered has no pipeline to run (format keys are stable: none today)
            .where(ruled, Finding.format.in_(formats))
            .order_by(Finding.created_at.desc(), Finding.id.desc())
            .limit(PREVIEW_MAX + 1))


def preview(session: Session, principal: Principal, candidate: Candidate) -> Preview:
    """What the organization's rule set with ``candidate`` saved would change on its newest open findings."""
    current = compile_rule_set(load_rule_specs(session.connection(), principal.organization_id))
    proposed = compile_rule_set(_candidate_specs(session, principal, candidate))
    formats = report_formats()
    pipelines: dict[tuple[Any, ...], tuple[SeverityPipeline, SeverityPipeline]] = {}

    def pipelines_of(integration_id: uuid.UUID, fmt: str, vendor: str) -> tuple[SeverityPipeline, SeverityPipeline]:
        # one pipeline per import stream, as an import has: conditions read its vendor, integration and format
        key = (integration_id, fmt, vendor)
        found = pipelines.get(key)
        if found is None:
            def make(rules: RuleSet) -> SeverityPipeline:
                # the threshold was applied when the finding was imported: "unknown" drops nothing here
                return SeverityPipeline(formats[fmt], "unknown", rules, vendor=vendor,
                                        integration_id=str(integration_id))
            found = pipelines[key] = (make(current), make(proposed))
        return found

    result = Preview(0, 0, dict.fromkeys(EFFECTS.values(), 0), [], False)
    read = {name for rules in (current, proposed) for rule in rules.rules for name in rule.fields}
    # Core rows, streamed: the ORM's result layer costs more than the rules on 50,000 rows
    rows = session.connection().execute(_findings(principal, list(formats), read).execution_options(
        yield_per=_BATCH))
    for row in rows:
        if result.examined == PREVIEW_MAX:
            result.truncated = True
            break
        result.examined += 1
        now, then = pipelines_of(row.integration_id, row.format, row.vendor)
        # a stored finding has the parsed finding's fields by name: the pipeline reads it as it read the report
        before = _effect(now.decide(row, row.mapped_severity, row.severity_source))  # type: ignore[arg-type]
        after = _effect(then.decide(row, row.mapped_severity, row.severity_source))  # type: ignore[arg-type]
        kinds = _changes(before, after)
        if not kinds:
            continue
        result.changed += 1
        for kind in kinds:
            result.by_change[kind] += 1
        if len(result.samples) < SAMPLES_MAX:
            result.samples.append(Change(row.id, row.title, before, after))
    rows.close()
    return result

