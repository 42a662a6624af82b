"""Measuring a rule set's cost per finding: what is measured, on what, and within a budget."""

from __future__ import annotations

import itertools

from pmap.findings.rules_cost import Sample, measure, synthetic_sample
from pmap.findings.rules_engine import RuleSpec

COSTLY = 'description.lowerAscii().matches("(?i)x.*y.*z")'  # a computed text: its own pass over ~1 KB


def _spec(i: int, condition: str) -> RuleSpec:
    return RuleSpec(f"r{i}", f"rule {i}", condition, "tag", "t", i)


SAMPLE = Sample("synthetic", synthetic_sample(100))


def test_the_synthetic_sample_is_fixed_and_sized() -> None:
    assert synthetic_sample(100) == synthetic_sample(100) and len(synthetic_sample(7)) == 7
    assert all(len(f["description"]) > 500 for f in SAMPLE.findings)


def test_the_set_counts_enabled_rules_and_each_rule_is_measured_alone() -> None:
    cost = measure([(_spec(0, "port == 23"), True), (_spec(1, COSTLY), False)], SAMPLE)
    cheap, costly = cost.rules
    assert (cheap.id, cheap.enabled, costly.enabled) == ("r0", True, False)
    assert costly.us_per_finding > cheap.us_per_finding >= 0  # type: ignore[operator]
    assert cost.us_per_finding < costly.us_per_finding  # type: ignore[operator] # the disabled rule is not run
    assert (cost.sample_source, cost.sample_findings, cost.partial) == ("synthetic", 100, False)


def test_a_spent_budget_leaves_rules_unmeasured_and_says_so() -> None:
    ticks = itertools.count(0.0, 10.0)  # every look at the clock is 10 s later
    cost = measure([(_spec(0, "port == 23"), True), (_spec(1, COSTLY), True)], SAMPLE, budget=1.0,
                   clock=lambda: next(ticks))
    assert cost.partial and [r.us_per_finding for r in cost.rules] == [None, None]
    assert cost.us_per_finding > 0  # the set itself is always measured


def test_a_stored_rule_that_no_longer_compiles_is_reported_not_measured() -> None:
    cost = measure([(_spec(0, "port == 23"), True), (_spec(1, "hots == 1"), True)], SAMPLE)
    good, broken = cost.rules
    assert good.us_per_finding is not None and broken.us_per_finding is None
    assert broken.error is not None and "did you mean 'host'" in broken.error


def test_a_rule_sharing_a_regex_pass_adds_less_than_it_costs_alone() -> None:
    rules = [(_spec(i, f'description.matches("(?i)word{i}|thing{i}")'), True) for i in range(30)]
    cost = measure(rules, SAMPLE, focus="r29")
    alone = cost.rule("r29").us_per_finding  # type: ignore[union-attr]
    assert cost.adds is not None and alone is not None and cost.adds < alone
    assert measure(rules, SAMPLE).adds is None
