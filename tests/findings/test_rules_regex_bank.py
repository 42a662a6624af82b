"""Regexes of a rule set over one field are searched in one RE2 pass per value, with the same answers."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from pmap.findings import rules_regex
from pmap.findings.rules_engine import RuleSet, RuleSpec, compile_rule, compile_rules

TEXT_WORDS = ["remote", "host", "outdated", "SQL", "struts", "update", "Word7", "thing12", "x\u00e9y", "end of life"]
CONDITIONS = [
    'description.matches("(?i)word7|thing12")', 'description.matches("^remote")', 'description.matches("x.y")',
    'title.matches("(?i)outdated|end of life")', 'title.matches("SQL$")', 'description.matches("(?i)outdated")',
    'host != null && host.matches("^host1[0-9]{2}\\\\.")', 'host.matches("dev")',
    'cve_ids.exists(c, c.matches("^CVE-2021-"))', 'cve_ids.exists(c, c.matches("-4[0-9]+$"))',
    'title.lowerAscii().matches("struts")', '!description.matches("update")',
    'severity == "high" || title.matches("remote")', 'description.matches("(?i)word7|thing12")',
    'description.lowerAscii().contains("word7")', 'description.lowerAscii().matches("x.y")',
    'title.upperAscii().startsWith("OUT")', 'title.lowerAscii() == "outdated sql"',
    'cve_ids.exists(c, c.lowerAscii().startsWith("cve-2021"))', 'cve_ids.all(c, c.lowerAscii().endsWith("1"))',
]


def _specs(conditions: list[str]) -> list[RuleSpec]:
    return [RuleSpec(f"r{i}", f"r{i}", c, "tag", f"t{i}", i) for i, c in enumerate(conditions)]


def _finding(rng: random.Random) -> dict[str, Any]:
    words = rng.choices(TEXT_WORDS, k=rng.choice([3, 200]))  # short titles and long, never remembered texts
    return {
        "title": rng.choice([None, 7, " ".join(words[:3]), "Outdated SQL", "remote host"]),
        "description": rng.choice([None, " ".join(words), " ".join(reversed(words))]),
        "host": rng.choice([None, "host123.x", "a.dev.example", 5]),
        "cve_ids": rng.choice([[], ["CVE-2021-44228", "CVE-2020-1"], None, ["CVE-2019-4"]]),
        "severity": rng.choice(["high", "low"]),
    }


def test_shared_banks_answer_as_separately_compiled_rules() -> None:
    together = compile_rules(_specs(CONDITIONS))
    apart = [compile_rule(spec) for spec in _specs(CONDITIONS)]  # each rule its own regexes
    rng = random.Random(3)
    for _ in range(1500):
        finding = _finding(rng)
        expected_matched, expected_undefined = [], []
        for r in apart:
            try:
                if r.test(finding):
                    expected_matched.append(r.id)
            except Exception:
                expected_undefined.append(r.id)
        out = together.apply(finding)
        assert (out.matched, out.undefined) == (expected_matched, expected_undefined), finding


class _CountingSet:
    """Wraps re2.Set to count searches."""

    searches = 0

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def Match(self, text: Any) -> Any:
        type(self).searches += 1
        return self._real.Match(text)


def test_many_regex_rules_over_one_field_search_each_value_once(monkeypatch: pytest.MonkeyPatch) -> None:
    real = rules_regex.re2.Set.SearchSet
    monkeypatch.setattr(rules_regex.re2.Set, "SearchSet", lambda options=None: _CountingSet(real(options)))
    _CountingSet.searches = 0
    rules = compile_rules(_specs([f'description.matches("(?i)word{i}|thing{i}")' for i in range(200)]))
    description = " ".join(["filler"] * 200) + " thing7 WORD150"  # longer than what is remembered
    for n in range(3):
        out = rules.apply({"description": description + str(n)})
        assert out.matched == ["r1", "r7", "r15", "r150"]  # "WORD150" also holds word1 and word15
    assert _CountingSet.searches == 3  # one pass per finding, not one per rule


def test_the_same_pattern_in_two_rules_is_searched_once() -> None:
    bank = rules_regex.RegexBank()
    assert bank.add("a+") == bank.add("a+") == 0 and bank.add("b") == 1 and len(bank) == 2
    assert bank.hits("xaab") == frozenset({0, 1}) and bank.hits("zzz") == frozenset()


def test_a_bank_too_large_for_one_set_falls_back_to_one_set_per_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    bank = rules_regex.RegexBank()
    for p in ("a", "b+", "^c"):
        bank.add(p)
    monkeypatch.setattr(rules_regex, "_BANK_MAX_MEM", 1)  # RE2 refuses to build the combined set
    assert bank.hits("cab") == frozenset({0, 1, 2}) and bank.hits("xb") == frozenset({1})


def test_rule_size_counts_syntax_nodes_and_regex_program() -> None:
    plain = compile_rule(_specs(['title == "x"'])[0])
    regex = compile_rule(_specs(['title.matches("[a-z]{100}")'])[0])
    assert plain.size == 3  # ==, title, "x"
    assert regex.size > 100 + 3  # the pattern's program has an instruction per repetition


def test_rules_that_are_one_regex_are_answered_by_the_bank_without_evaluating_each() -> None:
    def never(_finding: Any) -> bool:
        raise AssertionError("evaluated one by one")

    specs = _specs([f'description.matches("w{i}x")' for i in range(50)] + ['description.contains("w7x")'])
    rules = [dataclasses.replace(r, test=never) if r.regex else r for r in compile_rules(specs).rules]
    out = RuleSet(rules).apply({"description": "a w7x b w42x"})
    assert out.matched == ["r7", "r42", "r50"] and out.undefined == []
    out = RuleSet(rules).apply({"description": None})
    assert out.matched == [] and len(out.undefined) == 51  # CEL: a method on null is undefined


class _CountingText(str):
    """Text that counts how often it is converted."""

    conversions = 0

    def isascii(self) -> bool:
        type(self).conversions += 1
        return super().isascii()


def test_rules_converting_one_field_convert_it_once_per_finding() -> None:
    rules = compile_rules(_specs([f'description.lowerAscii().contains("word{i}")' for i in range(50)]))
    _CountingText.conversions = 0
    for n in range(3):
        out = rules.apply({"description": _CountingText(f"WORD7 and Word{n + 40}")})
        assert out.matched == ["r4", "r7", f"r{n + 40}"]  # "word4" is in "word4x"
    assert _CountingText.conversions == 3
