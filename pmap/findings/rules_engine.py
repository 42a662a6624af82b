"""Per-organization severity rules: ordered ``condition -> action`` pairs applied to each imported finding.

A rule's condition is written in a safe subset of CEL (see :mod:`pmap.findings.rules_lang` for the
grammar and :mod:`pmap.findings.rules_compile` for the semantics). It is parsed, type-checked and
compiled once into Python closures; nothing a user writes is passed to ``eval``/``exec``/``compile``.

Condition language, in short::

    severity == "high" && vendor == "tenable"
    severity_rank >= sev("high")                     # ranks: unknown 0, info 1 ... critical 5
    "CVE-2021-44228" in cve_ids && size(cve_ids) > 0
    host != null && host.endsWith(".lab.example")
    title.lowerAscii().contains("sql") || title.matches(r"(?i)cross.site")
    cve_ids.exists(c, c.startsWith("CVE-2024-"))

Fields: title, description, severity, vendor_severity, cve_ids, cwe_ids, other_ids, rule_id,
cvss_score, cvss_vector, host, ip, port, protocol, url, parameter, repository, file_path, line,
package_name, package_version, fixed_version, vendor, integration_id, format, tags, and the derived
severity_rank. Functions: ``size()``, ``sev()``; methods on text: ``contains``, ``startsWith``,
``endsWith``, ``matches`` (RE2: linear time, no backreferences; pattern <= 512 chars, a literal),
``lowerAscii``, ``upperAscii``; on lists: ``exists``, ``all`` (not nested). Limits: 2,000 characters,
32 nesting levels, 400 syntax nodes. A typo'd field, a type mismatch (``port == "443"``) or an
unsupported construct is a :class:`RuleCompileError` with the character position.

Null semantics (CEL's): a missing key reads as ``null``. ``x == null`` / ``x != null`` test it;
``==`` against another value is false. Ordering, ``in``, ``size`` and methods on ``null`` (or on a
value of the wrong type) are *undefined*; ``&&``/``||`` absorb an undefined side when the other side
decides. A rule whose whole condition is undefined does not match and its id is listed in
:attr:`RuleOutcome.undefined`, so callers can count it. Guard with ``host != null && ...``.

Evaluation semantics:

- Conditions see the finding as imported, not the effect of earlier rules (a rule cannot match on a
  severity another rule set), so the order only decides how actions combine.
- Rules run in ``position`` order (ties: the order given). Every matching rule's action applies.
- ``set_severity``: the *last* matching rule wins (later rules override earlier ones);
  ``severity_rule_id`` names it. ``suppress``: ``suppressed_by`` is the *first* matching suppress rule.
  ``tag``: tags added by rules, de-duplicated, in first-seen order (the finding's own tags are not
  repeated in :attr:`RuleOutcome.tags`; merge them if needed).

Speed (``bench/rules_engine_bench.py``; 2-core machine, 100,000 Nessus-like findings, 20 rules,
CPU time): a realistic rule mix adds ~3-4 us per finding to the import loop (~25% of parsing and
building the finding, ~40% of a bare ``iterparse``); 20 rules none of which is indexable ~4-5 us.
The same 20 conditions cost ~145 us per finding in the Rust CEL bindings (``cel``: per-call
conversion, and ``matches`` recompiles its regex on every call) and ~3.6 ms in ``celpy``. Rule
grouping (see :class:`RuleSet`) is what keeps most rules from being evaluated at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pmap.findings.rules_compile import SEVERITY_RANK, compile_condition
from pmap.findings.rules_lang import LangError
from pmap.findings.rules_regex import RegexBank, RegexBanks

ACTIONS = ("set_severity", "suppress", "tag")
SEVERITIES = tuple(SEVERITY_RANK)
MAX_TAG_CHARS = 64
_TAG_RE = re.compile(r"[^\W_][\w .:/@+#-]*\Z")


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule as stored: ``action`` is set_severity (value: a severity), suppress (no value) or tag (value)."""

    id: str
    name: str
    condition: str
    action: str
    value: str | None
    position: int


class RuleCompileError(ValueError):
    """A rule that cannot be used: ``message`` names the problem, ``position`` the character offset
    in the condition when known, ``field`` which part of the rule (condition, action or value)."""

    def __init__(self, message: str, position: int | None = None, *, field: str = "condition") -> None:
        self.message = message
        self.position = position
        self.field = field
        where = f" (at position {position})" if position is not None else ""
        super().__init__(f"{field}: {message}{where}")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A validated rule, ready to evaluate: ``test(finding)`` is true, false or raises (undefined)."""

    spec: RuleSpec
    test: Callable[[Mapping[str, Any]], Any]
    action: str
    value: str | None  # normalized: lower-case severity for set_severity, None for suppress
    fields: frozenset[str]  # finding fields the condition reads
    index: tuple[str, tuple[Any, ...]] | None  # (field, values) the condition requires, if any
    requires: str | None = None  # a field the condition requires to be non-null, if any
    test_if_present: Callable[[Mapping[str, Any]], Any] | None = None  # ``test`` without that check
    size: int = 0  # compiled size: syntax nodes plus RE2 program instructions
    regex: tuple[str, RegexBank, int] | None = None  # (field, bank, index) when the condition is one ``matches``

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(slots=True)
class RuleOutcome:
    """What the rules did to one finding."""

    severity: str  # final severity
    severity_rule_id: str | None  # the rule that set it; None when no set_severity rule matched
    suppressed: bool
    suppressed_by: str | None
    tags: list[str]  # tags added by rules
    matched: list[str]  # ids of matching rules, in evaluation order
    undefined: list[str] = field(default_factory=list)  # ids whose condition was undefined (null/type)


def _validate_action(spec: RuleSpec) -> str | None:
    action, value = spec.action, spec.value
    if action not in ACTIONS:
        raise RuleCompileError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}", field="action")
    if action == "set_severity":
        norm = value.strip().lower() if isinstance(value, str) else ""
        if norm not in SEVERITY_RANK:
            raise RuleCompileError(
                f"set_severity needs one of {', '.join(SEVERITIES)}, got {value!r}", field="value"
            )
        return norm
    if action == "suppress":
        if value not in (None, ""):
            raise RuleCompileError("suppress takes no value", field="value")
        return None
    tag = value.strip() if isinstance(value, str) else ""
    if not tag or len(tag) > MAX_TAG_CHARS or not _TAG_RE.match(tag):
        raise RuleCompileError(
            f"tag needs a label of 1-{MAX_TAG_CHARS} letters, digits, spaces or . : / @ + # - _ "
            "(starting with a letter or digit)",
            field="value",
        )
    return tag


def compile_rule(spec: RuleSpec, banks: RegexBanks | None = None) -> CompiledRule:
    """Validate a rule's action and value and compile its condition; raises :class:`RuleCompileError`.

    Rules compiled with the same ``banks`` share one regex pass per field (see
    :mod:`pmap.findings.rules_regex`); :func:`compile_rules` does that for a whole rule set.
    """
    ident: object = spec.id  # a RuleSpec may be built from stored or posted data: check, don't trust the type
    if not isinstance(ident, str) or not ident:
        raise RuleCompileError("a rule needs a non-empty id", field="id")
    value = _validate_action(spec)
    try:
        condition = compile_condition(spec.condition, banks)
    except LangError as exc:
        raise RuleCompileError(exc.message, exc.position) from None
    except RecursionError:  # defence in depth: the parser's own depth limit should make this unreachable
        raise RuleCompileError("condition is nested too deeply") from None
    return CompiledRule(
        spec=spec, test=condition.test, action=spec.action, value=value,
        fields=condition.fields, index=condition.index, requires=condition.requires,
        test_if_present=condition.test_if_present, size=condition.size, regex=condition.regex,
    )


def compile_rules(specs: Sequence[RuleSpec]) -> RuleSet:
    """Compile rules into one :class:`RuleSet` whose regexes over one field run in one pass."""
    banks = RegexBanks()
    compiled = [compile_rule(spec, banks) for spec in specs]
    banks.seal()
    return RuleSet(compiled)


# (order in the set, test, rule id, action, value): flat tuples so the hot loop unpacks instead of
# reading attributes; sorting a few matched entries restores rule order (orders are unique)
_Entry = tuple[int, Callable[[Mapping[str, Any]], Any], str, str, "str | None"]


_MEMO_MIN_RULES = 2  # one cheap rule costs less to evaluate than to look up
_MEMO_MAX = 4096  # distinct values remembered per field group; later new values are evaluated
_MEMO_TEXT_MAX = 256  # longer texts (descriptions) are evaluated, not remembered
_NO_KEY = object()


def _run(entries: Sequence[_Entry], finding: Mapping[str, Any]) -> tuple[tuple[_Entry, ...], tuple[_Entry, ...]]:
    matched: list[_Entry] = []
    undefined: list[_Entry] = []
    for entry in entries:
        try:
            if entry[1](finding):
                matched.append(entry)
        except Exception:
            undefined.append(entry)
    return tuple(matched), tuple(undefined)


class RuleSet:
    """An organization's rules, ready to apply to many findings; safe to share between threads.

    Rules are grouped so that most are skipped or answered without evaluation:

    - by the value of a field their condition requires (``vendor == "x"``): one dict lookup picks
      the few rules that can match;
    - rules that are one ``field.matches(..)`` are answered by their field's regex bank: one RE2
      pass finds every such rule that matches;
    - two or more rules reading the same single field (``title.contains(..)``, ``title.matches(..)``)
      are evaluated once per distinct value and the results remembered: scanners repeat titles,
      hosts and CVE lists across thousands of findings (bounded: 4,096 values per field);
    - by a field the condition requires to be non-null (``host != null && ...``);
    - the rest are evaluated for every finding.

    Matches from several groups are sorted back into rule order.
    """

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        ordered = sorted(rules, key=lambda r: r.spec.position)
        seen: set[str] = set()
        for rule in ordered:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        self.rules: tuple[CompiledRule, ...] = tuple(ordered)
        always: list[_Entry] = []
        index: dict[str, dict[Any, list[_Entry]]] = {}
        needs: dict[str, list[_Entry]] = {}
        single: dict[str, list[int]] = {}
        regex: dict[int, tuple[str, RegexBank, dict[int, list[_Entry]], list[_Entry]]] = {}
        for order, rule in enumerate(ordered):
            sources = rule.fields - {"severity_rank"}  # derived from severity, which is in the set
            if rule.regex is not None:
                name, bank, pattern = rule.regex
                group = regex.setdefault(id(bank), (name, bank, {}, []))
                entry = (order, rule.test, rule.id, rule.action, rule.value)
                group[2].setdefault(pattern, []).append(entry)
                group[3].append(entry)
            elif rule.index is None and len(sources) == 1:
                single.setdefault(next(iter(sources)), []).append(order)
        memo_orders = {o for orders in single.values() if len(orders) >= _MEMO_MIN_RULES for o in orders}
        memo: dict[str, list[_Entry]] = {}
        for order, rule in enumerate(ordered):
            if rule.index is not None:
                name, values = rule.index
                table = index.setdefault(name, {})
                for v in values:
                    table.setdefault(v, []).append((order, rule.test, rule.id, rule.action, rule.value))
            elif rule.regex is not None:
                continue
            elif order in memo_orders:
                field_name = next(iter(rule.fields - {"severity_rank"}))
                memo.setdefault(field_name, []).append((order, rule.test, rule.id, rule.action, rule.value))
            elif rule.requires is not None:
                # the group is only evaluated when the field is non-null, so the test may skip that check
                entry = (order, rule.test_if_present or rule.test, rule.id, rule.action, rule.value)
                needs.setdefault(rule.requires, []).append(entry)
            else:
                always.append((order, rule.test, rule.id, rule.action, rule.value))
        self._always: tuple[_Entry, ...] = tuple(always)
        self._index: tuple[tuple[str, dict[Any, list[_Entry]]], ...] = tuple(index.items())
        self._needs: tuple[tuple[str, tuple[_Entry, ...]], ...] = tuple((k, tuple(v)) for k, v in needs.items())
        self._memo: tuple[tuple[str, tuple[_Entry, ...], dict[Any, Any]], ...] = tuple(
            (k, tuple(v), {}) for k, v in memo.items()
        )
        # (field, the bank's search, its rules by pattern index, all its rules: undefined for non-text)
        self._regex: tuple[tuple[str, Callable[[str], frozenset[int]], dict[int, list[_Entry]], tuple[_Entry, ...]],
                           ...] = tuple((name, bank.hits, by_pattern, tuple(every))
                                        for name, bank, by_pattern, every in regex.values())

    def __len__(self) -> int:
        return len(self.rules)

    def apply(self, finding: Mapping[str, Any]) -> RuleOutcome:
        """Evaluate every rule against ``finding`` and combine the actions of those that match."""
        # one flat function: at ~3 us per finding, each extra call or attribute read shows
        matched: list[_Entry] = []
        undefined: list[_Entry] = []
        groups = 0
        if self._always:
            groups = 1
            for entry in self._always:
                try:
                    if entry[1](finding):
                        matched.append(entry)
                except Exception:
                    undefined.append(entry)
        get = finding.get
        for name, table in self._index:
            try:
                hit = table.get(get(name))
            except TypeError:  # an unhashable value equals no indexed constant
                continue
            if hit is not None:
                groups += 1
                for entry in hit:
                    try:
                        if entry[1](finding):
                            matched.append(entry)
                    except Exception:
                        undefined.append(entry)
        for name, entries, seen_values in self._memo:
            value: Any = get(name)
            cls = value.__class__
            if cls is str:
                key = value if len(value) <= _MEMO_TEXT_MAX else _NO_KEY
            elif cls is list or cls is tuple:
                key = tuple(value) if len(value) <= 64 else _NO_KEY  # conditions treat both alike
            else:
                key = value  # numbers and None; equal numbers (1, 1.0) give equal results
            try:
                found = seen_values.get(key)
            except TypeError:  # unhashable items
                key, found = _NO_KEY, None
            if found is None:
                found = _run(entries, finding)
                if key is not _NO_KEY and len(seen_values) < _MEMO_MAX:
                    seen_values[key] = found
            if found[0]:
                groups += 1
                matched.extend(found[0])
            if found[1]:
                undefined.extend(found[1])
        for name, hits_of, by_pattern, every in self._regex:
            value = get(name)
            if value.__class__ is str:
                for pattern in hits_of(value):
                    hit = by_pattern.get(pattern)  # the bank also holds patterns of other rules' conditions
                    if hit is not None:
                        matched.extend(hit)
                        groups += 1  # each pattern's rules are in order, several need sorting together
            else:
                undefined.extend(every)
        for name, entries in self._needs:
            if get(name) is not None:
                groups += 1
                for entry in entries:
                    try:
                        if entry[1](finding):
                            matched.append(entry)
                    except Exception:
                        undefined.append(entry)
        if groups > 1 and len(matched) > 1:
            matched.sort()
        if len(undefined) > 1:  # groups counts matching groups only; undefined ones may come from several
            undefined.sort()

        severity: Any = get("severity")
        try:
            if severity not in SEVERITY_RANK:
                severity = "unknown"
        except TypeError:  # unhashable junk
            severity = "unknown"
        severity_rule: str | None = None
        suppressed_by: str | None = None
        tags: list[str] = []
        ids: list[str] = []
        for _, _, rule_id, action, value in matched:
            ids.append(rule_id)
            if action == "set_severity":
                severity, severity_rule = value, rule_id  # set_severity values are validated severities
            elif action == "suppress":
                if suppressed_by is None:
                    suppressed_by = rule_id
            elif value not in tags:
                tags.append(value)
        # positional: a keyword call costs ~0.4 us more per finding, a measurable share of the budget
        return RuleOutcome(
            severity, severity_rule, suppressed_by is not None, suppressed_by, tags, ids,
            [e[2] for e in undefined] if undefined else [],
        )
