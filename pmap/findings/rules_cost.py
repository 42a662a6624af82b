"""What an organization's rules cost an import, measured before an import pays it.

The rule set is compiled as an import compiles it and applied to a bounded sample: the
organization's most recent findings (at most ``PMAP_RULES_COST_SAMPLE``, as the rules saw them:
the mapped severity, no tags), or a fixed synthetic sample of scanner-like findings when it has
none. Reported in microseconds of CPU per finding (this thread's CPU time, so other requests and
imports do not inflate it; the best of a few rounds, each on a freshly compiled set so remembered
values do not flatter it): the enabled set as an import runs it, and each rule alone (what it
adds; regexes over one field share one pass, so a set may cost less than the sum of its rules).
The fixed cost of applying an empty set is measured in the same run and subtracted.

Results are cached in memory per organization, rule-set version and sample source; one
measurement runs at a time in the process and stops after a time budget (rules left unmeasured
are reported as such), so measuring never holds a database transaction or runs for long.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pmap.findings.models import Finding, Rule
from pmap.findings.rules_engine import RuleCompileError, RuleSpec, compile_rule, compile_rules
from pmap.integrations.models import Integration

BUDGET_SECONDS = 2.0  # wall time of one measurement; later rules are reported unmeasured
_ROUNDS = 3
_CACHE_MAX = 256
_SAMPLE_FIELDS = ("title", "description", "vendor_severity", "cve_ids", "cwe_ids", "other_ids", "rule_id",
                  "cvss_score", "cvss_vector", "host", "ip", "port", "protocol", "url", "parameter", "repository",
                  "file_path", "line", "package_name", "package_version", "fixed_version")


@dataclass(frozen=True, slots=True)
class Sample:
    """The findings a rule set is measured on, and where they come from (findings or synthetic)."""

    source: str
    findings: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class RuleCost:
    """One rule: its compiled size and its cost alone (None: not measured, see ``error``)."""

    id: str
    name: str
    enabled: bool
    size: int
    us_per_finding: float | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RuleSetCost:
    """The enabled rule set's cost per finding, each rule's, and the sample they were measured on."""

    us_per_finding: float
    sample_source: str
    sample_findings: int
    rules: tuple[RuleCost, ...] = field(default_factory=tuple)
    partial: bool = False
    adds: float | None = None  # what the ``focus`` rule adds to the enabled set (see :func:`measure`)

    def rule(self, rule_id: str) -> RuleCost | None:
        """The cost entry of one rule."""
        return next((r for r in self.rules if r.id == rule_id), None)


@lru_cache(maxsize=4)
def synthetic_sample(n: int) -> tuple[dict[str, Any], ...]:
    """``n`` fixed scanner-like findings: repeated titles and hosts, ~1 KB descriptions, CVE lists."""
    rng = random.Random(12)  # noqa: S311 - a fixed, reproducible sample of made-up findings; nothing secret
    words = ["remote", "host", "service", "version", "affected", "vulnerability", "attacker", "request",
             "package", "update", "server", "outdated", "injection", "certificate", "configuration"]
    titles = [f"{rng.choice(['Outdated package', 'SQL Injection', 'Apache Struts RCE', 'TLS weak cipher'])} #{i}"
              for i in range(max(1, n // 4))]
    out = []
    for i in range(n):
        sast = i % 5 == 4
        out.append({
            "title": rng.choice(titles), "description": " ".join(rng.choices(words, k=rng.randint(100, 160))),
            "severity": rng.choice(["info", "low", "medium", "high", "critical", "unknown"]),
            "vendor_severity": rng.choice(["0", "1", "2", "3", "4"]),
            "cve_ids": [f"CVE-{rng.randint(2015, 2024)}-{rng.randint(1000, 49999)}" for _ in range(rng.randint(0, 3))],
            "cwe_ids": rng.sample([20, 79, 89, 502, 787], k=rng.randint(0, 2)), "other_ids": [],
            "rule_id": str(10000 + rng.randrange(2000)), "cvss_score": rng.choice([None, 5.3, 7.5, 9.8]),
            "cvss_vector": None, "host": None if sast else f"host{rng.randrange(500)}.corp.example",
            "ip": None if sast else f"10.0.{rng.randrange(2)}.{rng.randrange(250)}",
            "port": None if sast else rng.choice([0, 22, 80, 443, 3389]), "protocol": None if sast else "tcp",
            "url": None, "parameter": None, "repository": "org/app" if sast else None,
            "file_path": f"src/m{rng.randrange(50)}.py" if sast else None,
            "line": rng.randrange(1, 900) if sast else None,
            "package_name": None, "package_version": None, "fixed_version": None,
            "vendor": "semgrep" if sast else "tenable_vm", "integration_id": "synthetic",
            "format": "sarif" if sast else "nessus", "tags": [],
        })
    return tuple(out)


def load_sample(session: Session, organization_id: uuid.UUID, limit: int) -> Sample:
    """The organization's ``limit`` most recent findings as rules see them, or the synthetic sample."""
    columns = [getattr(Finding, name) for name in _SAMPLE_FIELDS]
    rows = session.execute(
        select(*columns, Finding.mapped_severity, Finding.integration_id, Finding.format, Integration.vendor)
        .join(Integration, Integration.id == Finding.integration_id)
        .where(Finding.organization_id == organization_id)
        .order_by(Finding.created_at.desc(), Finding.id.desc())
        .limit(limit)
    ).all()
    if not rows:
        return Sample("synthetic", synthetic_sample(limit))
    findings = []
    for row in rows:
        finding = dict(zip(_SAMPLE_FIELDS, row[:len(_SAMPLE_FIELDS)], strict=True))
        severity, integration_id, fmt, vendor = row[len(_SAMPLE_FIELDS):]
        finding.update(severity=severity, integration_id=str(integration_id), format=fmt, vendor=vendor, tags=[])
        findings.append(finding)
    return Sample("findings", tuple(findings))


def _per_finding(specs: Sequence[RuleSpec], findings: Sequence[dict[str, Any]], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        rules = compile_rules(specs)  # fresh: values remembered by one round do not flatter the next
        apply = rules.apply
        start = time.thread_time()
        for finding in findings:
            apply(finding)
        best = min(best, time.thread_time() - start)
    return best / max(1, len(findings)) * 1e6


def measure(rules: Sequence[tuple[RuleSpec, bool]], sample: Sample, budget: float = BUDGET_SECONDS,
            clock: Callable[[], float] = time.monotonic, focus: str | None = None) -> RuleSetCost:
    """Measure ``(spec, enabled)`` rules (in evaluation order) over ``sample``; see the module docstring.

    With ``focus`` (a rule id), also what that rule adds to the enabled set (enabled or not): a
    rule's cost alone overstates what it adds when it shares a regex pass with other rules.
    """
    deadline = clock() + budget
    findings = sample.findings
    usable: list[tuple[RuleSpec, bool, int]] = []
    broken: dict[str, str] = {}
    for spec, enabled in rules:
        try:
            usable.append((spec, enabled, compile_rule(spec).size))
        except RuleCompileError as exc:  # imports refuse it too, naming it; here it is reported, not measured
            broken[spec.id] = str(exc)
    floor = _per_finding([], findings, _ROUNDS)
    total = max(0.0, _per_finding([s for s, on, _ in usable if on], findings, _ROUNDS) - floor)
    alone: dict[str, float | None] = {}
    for spec, _, _ in usable:
        left = deadline - clock()
        # past half the budget one round per rule, past all of it none: the answer says which are missing
        alone[spec.id] = (max(0.0, _per_finding([spec], findings, _ROUNDS if left > budget / 2 else 1) - floor)
                          if left > 0 else None)
    adds = None
    if any(s.id == focus for s, _, _ in usable):
        with_it = _per_finding([s for s, on, _ in usable if on or s.id == focus], findings, _ROUNDS)
        adds = max(0.0, with_it - _per_finding([s for s, on, _ in usable if on and s.id != focus], findings, _ROUNDS))
    costs = [RuleCost(s.id, s.name, on, size, alone[s.id]) for s, on, size in usable]
    costs += [RuleCost(s.id, s.name, on, 0, None, broken[s.id]) for s, on in rules if s.id in broken]
    return RuleSetCost(total, sample.source, len(findings), tuple(costs),
                       partial=any(v is None for v in alone.values()), adds=adds)


_cache: OrderedDict[tuple[Any, ...], RuleSetCost] = OrderedDict()
_measuring = threading.Lock()  # one measurement at a time: it is CPU work on a shared machine


def _version(rules: Sequence[tuple[RuleSpec, bool]]) -> str:
    text = repr([(s.id, s.condition, s.action, s.value, on) for s, on in rules])
    return hashlib.sha256(text.encode()).hexdigest()


def organization_rules(session: Session, organization_id: uuid.UUID) -> list[tuple[RuleSpec, bool]]:
    """Every rule of the organization as ``(spec, enabled)``, in evaluation order."""
    rows = session.execute(
        select(Rule.id, Rule.name, Rule.condition, Rule.action, Rule.value, Rule.enabled)
        .where(Rule.organization_id == organization_id)
        .order_by(Rule.position, Rule.created_at, Rule.id)
    ).all()
    return [(RuleSpec(str(r.id), r.name, r.condition, r.action, r.value, order), r.enabled)
            for order, r in enumerate(rows)]


def rule_set_cost(session: Session, organization_id: uuid.UUID, sample_size: int,
                  focus: str | None = None, candidate: RuleSpec | None = None) -> RuleSetCost:
    """The organization's rule-set cost, measured now or remembered for this version of its rules
    (with ``focus``, a rule id, also what that rule adds to it; ``candidate``: an unsaved rule, enabled,
    after the others)."""
    rules = organization_rules(session, organization_id) + ([(candidate, True)] if candidate else [])
    sample = load_sample(session, organization_id, sample_size)
    session.rollback()  # measuring is CPU work: hold no transaction meanwhile
    key = (organization_id, _version(rules), sample.source, len(sample.findings), focus)
    with _measuring:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
        result = measure(rules, sample, focus=focus)
        _cache[key] = result
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
        return result
