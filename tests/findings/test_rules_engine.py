"""The severity rule engine: ordering, actions, compile errors, null semantics, safety, RE2 guard."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pmap.findings.rules_engine import (
    CompiledRule,
    RuleCompileError,
    RuleSet,
    RuleSpec,
    compile_rule,
)
from pmap.findings.rules_lang import MAX_CONDITION_CHARS


def rule(rid: str, condition: str, action: str = "tag", value: str | None = "t", position: int = 0) -> CompiledRule:
    return compile_rule(RuleSpec(id=rid, name=rid, condition=condition, action=action, value=value, position=position))


def compile_error(condition: str, action: str = "tag", value: str | None = "t") -> RuleCompileError:
    with pytest.raises(RuleCompileError) as info:
        rule("bad", condition, action, value)
    return info.value


FINDING: dict[str, Any] = {
    "title": "Apache Log4j Remote Code Execution", "description": "JNDI lookup", "severity": "high",
    "vendor_severity": "3", "cve_ids": ["CVE-2021-44228", "CVE-2021-45046"], "cwe_ids": [502, 20],
    "other_ids": [], "rule_id": "156032", "cvss_score": 10.0, "cvss_vector": None, "host": "web1.corp.example",
    "ip": "10.0.0.5", "port": 443, "protocol": "tcp", "url": None, "parameter": None, "repository": None,
    "file_path": None, "line": None, "package_name": "log4j-core", "package_version": "2.14.1",
    "fixed_version": "2.17.1", "vendor": "tenable", "integration_id": "int-1", "format": "nessus", "tags": ["pci"],
}


# --- ordering and actions ----------------------------------------------------------------------

def test_later_set_severity_wins_and_position_not_list_order_decides() -> None:
    first = rule("r-first", 'vendor == "tenable"', "set_severity", "critical", position=1)
    second = rule("r-second", '"CVE-2021-44228" in cve_ids', "set_severity", "low", position=2)
    for rules in ([first, second], [second, first]):
        out = RuleSet(rules).apply(FINDING)
        assert out.severity == "low"
        assert out.severity_rule_id == "r-second"
        assert out.matched == ["r-first", "r-second"]


def test_no_matching_rule_keeps_the_severity_and_names_no_rule() -> None:
    out = RuleSet([rule("r1", 'vendor == "snyk"', "set_severity", "info")]).apply(FINDING)
    assert (out.severity, out.severity_rule_id, out.matched, out.suppressed) == ("high", None, [], False)


def test_unknown_input_severity_becomes_unknown() -> None:
    out = RuleSet([]).apply({**FINDING, "severity": "urgent"})
    assert out.severity == "unknown"


def test_suppression_names_the_first_suppressing_rule() -> None:
    rules = [
        rule("s1", 'host.endsWith(".corp.example")', "suppress", None, position=1),
        rule("s2", "port == 443", "suppress", "", position=2),
        rule("n", 'vendor == "snyk"', "suppress", None, position=0),
    ]
    out = RuleSet(rules).apply(FINDING)
    assert out.suppressed is True
    assert out.suppressed_by == "s1"
    assert out.matched == ["s1", "s2"]


def test_tags_accumulate_deduplicated_in_rule_order() -> None:
    rules = [
        rule("a", 'severity == "high"', "tag", "log4shell", position=1),
        rule("b", "port == 443", "tag", "internet-facing", position=2),
        rule("c", "cvss_score >= 9.0", "tag", "log4shell", position=3),
        rule("d", 'vendor == "qualys"', "tag", "never", position=4),
    ]
    out = RuleSet(rules).apply(FINDING)
    assert out.tags == ["log4shell", "internet-facing"]
    assert out.matched == ["a", "b", "c"]


def test_all_actions_combine() -> None:
    rules = [
        rule("sev", "severity_rank >= sev(\"high\")", "set_severity", "CRITICAL", position=1),
        rule("tag", "79 in cwe_ids || 502 in cwe_ids", "tag", "deserialization", position=2),
        rule("sup", 'ip.startsWith("10.")', "suppress", None, position=3),
    ]
    out = RuleSet(rules).apply(FINDING)
    assert out.severity == "critical"  # value normalized to lower case
    assert (out.suppressed, out.suppressed_by, out.tags) == (True, "sup", ["deserialization"])


def test_conditions_see_the_finding_as_imported_not_earlier_actions() -> None:
    rules = [
        rule("raise", "true", "set_severity", "critical", position=1),
        rule("see", 'severity == "critical"', "tag", "saw-critical", position=2),
    ]
    out = RuleSet(rules).apply(FINDING)
    assert out.severity == "critical"
    assert out.tags == []


def test_duplicate_rule_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate rule id"):
        RuleSet([rule("x", "true"), rule("x", "false")])


# --- the language -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('severity == "high"', True),
        ('severity != "high"', False),
        ('severity in ["high", "critical"]', True),
        ("severity_rank >= sev(\"high\") && severity_rank < sev('critical')", True),
        ('sev("medium") < severity_rank', True),
        ("cvss_score >= 9", True),  # int literal against a double field
        ("port == 443 && port >= 1 && port <= 1024", True),
        ('"CVE-2021-44228" in cve_ids', True),
        ('"CVE-1999-0001" in cve_ids', False),
        ("size(cve_ids) == 2 && cve_ids.size() == 2 && size(title) > 10", True),
        ('title.contains("Log4j") && title.startsWith("Apache") && title.endsWith("Execution")', True),
        ('title.lowerAscii().contains("log4j") && package_name.upperAscii() == "LOG4J-CORE"', True),
        ('title.matches("(?i)remote code")', True),
        ('host.matches(r"^web[0-9]+\\.corp\\.example$")', True),
        ('title.matches("^Log4j")', False),  # unanchored search, but ^ anchors
        ('cve_ids.exists(c, c.startsWith("CVE-2021-"))', True),
        ('cve_ids.all(c, c.startsWith("CVE-2021-4"))', True),
        ("cwe_ids.exists(w, w > 500)", True),
        ('!(vendor == "snyk") && !false', True),
        ("url == null && host != null", True),
        ('"pci" in tags', True),
        ("other_ids == [] && size(other_ids) == 0", True),
        ('"a\\tb" == "a\tb" && \'x\' == "x" && "\\u00e9" == "é"', True),
        ("cvss_score > -1.5e0 // a comment", True),
    ],
)
def test_language_features(condition: str, expected: bool) -> None:
    out = RuleSet([rule("r", condition)]).apply(FINDING)
    assert (out.matched == ["r"]) is expected
    assert out.undefined == []


def test_lower_ascii_leaves_non_ascii_letters() -> None:
    out = RuleSet([rule("r", 'title.lowerAscii() == "çava É"')]).apply({**FINDING, "title": "ÇaVA É"})
    assert out.matched == []  # CEL lowerAscii only folds A-Z
    out = RuleSet([rule("r", 'title.lowerAscii() == "Çava É"')]).apply({**FINDING, "title": "ÇaVA É"})
    assert out.matched == ["r"]


# --- null and missing fields ---------------------------------------------------------------------

def test_null_field_makes_a_rule_undefined_not_a_crash() -> None:
    rules = [
        rule("m", 'file_path.startsWith("test/")', position=1),
        rule("o", "line > 10", position=2),
        rule("i", '"x" in other_ids', position=3),
    ]
    finding = {**FINDING, "other_ids": None}
    out = RuleSet(rules).apply(finding)
    assert out.matched == []
    assert out.undefined == ["m", "o", "i"]


def test_missing_keys_read_as_null() -> None:
    rules = [rule("eq", "host == null", position=1), rule("m", 'host.contains("x")', position=2)]
    out = RuleSet(rules).apply({"title": "only a title"})
    assert out.matched == ["eq"]
    assert out.undefined == ["m"]
    assert out.severity == "unknown"


def test_guarded_null_is_a_plain_non_match() -> None:
    out = RuleSet([rule("g", 'file_path != null && file_path.startsWith("test/")')]).apply(FINDING)
    assert out.matched == [] and out.undefined == []


@pytest.mark.parametrize(
    ("condition", "matched"),
    [
        ('file_path.startsWith("x") || port == 443', True),  # undefined || true -> true
        ('file_path.startsWith("x") && port == 80', False),  # undefined && false -> false
        ('port == 80 || file_path.startsWith("x") || vendor == "tenable"', True),
        ('cve_ids.exists(c, c == "CVE-2021-44228") || line > 1', True),
    ],
)
def test_and_or_absorb_an_undefined_side_like_cel(condition: str, matched: bool) -> None:
    out = RuleSet([rule("r", condition)]).apply(FINDING)
    assert (out.matched == ["r"]) is matched
    assert out.undefined == []


@pytest.mark.parametrize(
    "condition",
    ['file_path.startsWith("x") || port == 80', '!file_path.startsWith("x")', 'line > 1 && port == 443'],
)
def test_undefined_that_nothing_decides_stays_undefined(condition: str) -> None:
    out = RuleSet([rule("r", condition)]).apply(FINDING)
    assert out.matched == [] and out.undefined == ["r"]


def test_wrong_runtime_types_do_not_crash() -> None:
    junk = {**FINDING, "port": "443", "title": 12, "cve_ids": "CVE-2021-44228", "severity": ["high"]}
    rules = [
        rule("a", "port > 100", position=1),
        rule("b", 'title.contains("x")', position=2),
        rule("c", '"CVE-2021-44228" in cve_ids', position=3),  # CEL's 'in' does not search text
        rule("d", 'severity == "high"', position=4),
        rule("e", "port == 443", position=5),
    ]
    out = RuleSet(rules).apply(junk)
    assert out.matched == []
    assert out.undefined == ["a", "b", "c"]
    assert out.severity == "unknown"


# --- compile errors -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("condition", "fragment", "position"),
    [
        ('sevrity == "high"', "unknown field 'sevrity'; did you mean 'severity'?", 0),
        ('severity == "high" &&', "expected a value but found the end", 21),
        ('severity = "high"', "use '=='", 9),
        ('port == "443"', "cannot compare int with string", 5),
        ("severity > 3", "cannot order string and int", 9),
        ("title", "must be true/false", 0),
        ('title in "x"', "to search text use .contains()", 6),
        ("cvss_score + 1 > 2", "arithmetic is not supported", 11),
        ('severity == "high', "unterminated string", 12),
        ("port < 1 < 2", "cannot be chained", 9),
        ('sev("urgent") > 1', "sev() takes one of", 0),
        ('title.trim() == ""', "unknown method 'trim'", 6),
        ("cve_ids.exists(c, cwe_ids.exists(w, w > 1))", "nested exists()/all()", 26),
        ("cve_ids.exists(host, true)", "hides a field", 15),
        ("cve_ids[0] == 1", "indexing", 7),
        ('title.matches(severity)', "pattern as a quoted string", 14),
        ("", "condition is empty", 0),
        ("while", "reserved word", 0),
    ],
)
def test_compile_errors_name_the_problem_and_position(condition: str, fragment: str, position: int) -> None:
    err = compile_error(condition)
    assert fragment in err.message
    assert err.position == position
    assert err.field == "condition"


def test_overlong_and_overnested_conditions_are_refused() -> None:
    assert "longer than" in compile_error("true || " * 300 + "true").message
    assert len("true || " * 300) > MAX_CONDITION_CHARS
    assert "nested too deeply" in compile_error("!" * 40 + "true").message
    assert "nested too deeply" in compile_error("(" * 40 + "true" + ")" * 40).message
    assert "too complex" in compile_error("port in [" + ",".join(["1"] * 450) + "]").message


@pytest.mark.parametrize(
    ("action", "value", "fragment", "field"),
    [
        ("delete", None, "unknown action 'delete'", "action"),
        ("set_severity", "urgent", "set_severity needs one of", "value"),
        ("set_severity", None, "set_severity needs one of", "value"),
        ("suppress", "yes", "suppress takes no value", "value"),
        ("tag", "", "tag needs a label", "value"),
        ("tag", None, "tag needs a label", "value"),
        ("tag", "x" * 65, "tag needs a label", "value"),
        ("tag", "bad\nnewline", "tag needs a label", "value"),
    ],
)
def test_unknown_action_or_bad_value_is_refused(action: str, value: str | None, fragment: str, field: str) -> None:
    err = compile_error("true", action, value)
    assert fragment in err.message
    assert err.field == field


# --- safety -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('true')",
        "title.__class__",
        "title.__class__.__mro__",
        "().__class__.__bases__[0].__subclasses__()",
        'getattr(title, "upper")',
        'eval("1")',
        'exec("import os")',
        "lambda: 1",
        'title.format(severity)',
        '"{0.__class__}".format(title)',
        "open('/etc/passwd')",
        "[x for x in cve_ids]",
        "globals()",
        "title; import os",
    ],
)
def test_injection_attempts_are_rejected_at_compile_time(condition: str) -> None:
    with pytest.raises(RuleCompileError):
        rule("evil", condition)


# --- regex guard (RE2) --------------------------------------------------------------------------

def test_catastrophic_pattern_runs_in_linear_time_under_re2() -> None:
    # under a backtracking engine this pattern never finishes on this input; RE2 answers at once
    r = rule("redos", 'description.matches("^(a+)+$")')
    out = RuleSet([r]).apply({**FINDING, "description": "a" * 50_000 + "!"})
    assert out.matched == []
    out = RuleSet([r]).apply({**FINDING, "description": "a" * 50_000})
    assert out.matched == ["redos"]


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [(r"(a)\\1", "invalid regular expression"), (r"(?=x)y", "invalid regular expression"),
     ("a" * 513, "longer than 512")],
)
def test_regex_without_re2_semantics_or_too_long_is_refused(pattern: str, fragment: str) -> None:
    assert fragment in compile_error(f'title.matches("{pattern}")').message


# --- the grouping that skips rules gives the same outcome as evaluating every rule --------------

BENCH_RULES = [
    'severity == "critical" && vendor == "tenable"', '"CVE-2021-44228" in cve_ids',
    'host != null && host.endsWith(".dev.example")', "cvss_score != null && cvss_score >= 9.0",
    'package_name == "log4j-core"', 'title.contains("SQL")', 'size(cve_ids) == 0 && severity == "info"',
    "port == 23", 'vendor == "snyk" && file_path != null && file_path.startsWith("test/")',
    'ip.startsWith("10.0.1.")', "79 in cwe_ids", 'rule_id in ["R1", "R2", "R3", "R4"]',
    'repository == "org/legacy"', 'severity in ["high", "critical"] && vendor == "qualys"',
    'title.matches("(?i)outdated")', 'integration_id == "int-2"', 'format == "sarif" && severity == "low"',
    'host != null && host.matches("^host1[0-9]{2}\\\\.")', 'package_version == "0.0.1"',
    "cvss_score != null && cvss_score < 1.0", 'host.startsWith("host3")', "cvss_score > 5.0 || port == 443",
    "host != null", 'vendor == "snyk"', 'vendor in ["snyk", "qualys"] && host.contains("1")',
]


def _random_finding(rng: random.Random) -> dict[str, Any]:
    pick = rng.choice
    return {
        "title": pick(["Outdated package", "SQL injection", "XSS"]),
        "severity": pick(["info", "low", "high", "critical", "x"]),
        "cve_ids": pick([[], ["CVE-2021-44228"], None]), "cwe_ids": pick([[], [79]]),
        "rule_id": pick(["R1", "R9", None]),
        "cvss_score": pick([None, 0.5, 7.0, 9.8]), "host": pick([None, "host123.x", "a.dev.example", "host3"]),
        "ip": pick(["10.0.1.4", "10.0.2.4", None]), "port": pick([None, 23, 443]),
        "package_name": pick(["log4j-core", None]),
        "vendor": pick(["tenable", "snyk", "qualys"]), "file_path": pick([None, "test/a.py", "src/a.py"]),
        "repository": pick(["org/legacy", None]), "integration_id": pick(["int-1", "int-2"]),
        "format": pick(["sarif", "nessus"]), "package_version": pick(["0.0.1", "1.0"]),
    }


def test_rule_set_grouping_matches_brute_force_evaluation() -> None:
    def action(i: int) -> tuple[str, str | None]:
        return (("set_severity", "low"), ("suppress", None), ("tag", f"t{i % 3}"))[i % 3]

    rules = [rule(f"r{i}", c, *action(i), position=i) for i, c in enumerate(BENCH_RULES)]
    assert sum(1 for r in rules if r.index) >= 8 and any(r.requires for r in rules)
    rs = RuleSet(rules)
    rng = random.Random(7)
    for _ in range(2000):
        finding = _random_finding(rng)
        expected_matched, expected_undefined = [], []
        for r in rules:
            try:
                if r.test(finding):
                    expected_matched.append(r.id)
            except Exception:
                expected_undefined.append(r.id)
        out = rs.apply(finding)
        assert out.matched == expected_matched, finding
        assert out.undefined == expected_undefined, finding


def test_same_results_as_the_reference_cel_implementation() -> None:
    cel = pytest.importorskip("cel")  # the Rust CEL bindings, as a differential oracle
    rng = random.Random(11)
    findings = [_random_finding(rng) for _ in range(150)]
    checked = 0
    for condition in BENCH_RULES:
        ours = rule("r", condition)
        program = cel.compile(condition)
        for finding in findings:
            full = {k: finding.get(k) for k in ("title", "severity", "cve_ids", "cwe_ids", "rule_id", "cvss_score",
                                                "host", "ip", "port", "package_name", "vendor", "file_path",
                                                "repository", "integration_id", "format", "package_version")}
            try:
                reference: Any = program.execute(full)
            except Exception:
                reference = "undefined"
            try:
                got: Any = bool(ours.test(full))
            except Exception:
                got = "undefined"
            assert got == reference, (condition, full)
            checked += 1
    assert checked == len(BENCH_RULES) * len(findings)


def test_remembered_results_match_fresh_evaluation_for_odd_values() -> None:
    # several rules on one field share a per-value memo; values that compare equal across types
    # (1, 1.0, True; a list and a tuple) must give what a fresh evaluation gives
    conditions = ["port == 443", "port > 100", "port != null && port < 1024", "size(cve_ids) == 1",
                  '"CVE-1" in cve_ids', 'cve_ids.exists(c, c.startsWith("CVE"))']
    rules = [rule(f"m{i}", c, position=i) for i, c in enumerate(conditions)]
    rs = RuleSet(rules)
    values = [443, 443.0, True, 1, 1.0, "443", None, [443], 0, -0.0, float("nan")]
    lists = [["CVE-1"], ("CVE-1",), [], None, "CVE-1", [["x"]], [1], ["CVE-1", "CVE-2"]]
    for _ in range(2):  # the second pass answers from the memo
        for port in values:
            for cves in lists:
                finding = {"port": port, "cve_ids": cves}
                expected_matched, expected_undefined = [], []
                for r in rules:
                    try:
                        if r.test(finding):
                            expected_matched.append(r.id)
                    except Exception:
                        expected_undefined.append(r.id)
                out = rs.apply(finding)
                assert (out.matched, out.undefined) == (expected_matched, expected_undefined), finding


def test_remembered_values_are_bounded() -> None:
    rs = RuleSet([rule("a", 'title.contains("x")', position=1), rule("b", 'title.endsWith("9")', position=2)])
    for i in range(6000):
        out = rs.apply({"title": f"title {i}"})
        assert out.matched == (["b"] if i % 10 == 9 else [])
    assert all(len(memo) <= 4096 for _, _, memo in rs._memo)
    assert rs.apply({"title": "x" * 10_000}).matched == ["a"]  # long text: evaluated, not remembered
