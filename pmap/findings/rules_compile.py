"""Type-checks a parsed rule condition and compiles it into closures over a finding mapping.

Why closures and not a CEL library: on 20 rules x 100,000 findings the Rust CEL bindings (``cel``)
cost ~145 us per finding (1-3 us per rule evaluation, and ``matches`` recompiles its regex on every
call), ``celpy`` ~3.6 ms; these closures cost 0.1-0.3 us per rule. See :mod:`pmap.findings.rules_engine`.

Types are checked at compile time (each field has one: see :data:`FIELD_TYPES`), so ``port == "443"``
or ``severity > 3`` is a compile error rather than a rule that silently never matches. Semantics
follow CEL: ``==`` across types is false; ordering, ``in``, ``size`` and methods on null or on the
wrong type are *undefined*; ``&&``/``||`` absorb an undefined side when the other side decides.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pmap.findings.rules_lang import LangError, Node, parse
from pmap.findings.rules_ops import (
    SEVERITY_RANK,
    Test,
    Val,
    as_bool,
    ascii_case,
    comparison,
    getter,
    logic,
    membership,
    negation,
    quantifier,
    regex_test,
    severity_rank,
    size_of,
    text_test,
)
from pmap.findings.rules_regex import RegexBank, RegexBanks, pattern_size

STR, INT, DOUBLE, BOOL, NULL, DYN = "string", "int", "double", "bool", "null", "dyn"
LIST_STR, LIST_INT, LIST_DYN = "list<string>", "list<int>", "list<dyn>"
_NUMERIC = {INT, DOUBLE}
_SCALARS = {STR, INT, DOUBLE}

FIELD_TYPES: dict[str, str] = {
    **dict.fromkeys(
        ("title", "description", "severity", "vendor_severity", "rule_id", "cvss_vector", "host", "ip",
         "protocol", "url", "parameter", "repository", "file_path", "package_name", "package_version",
         "fixed_version", "vendor", "integration_id", "format"),
        STR,
    ),
    "cve_ids": LIST_STR, "other_ids": LIST_STR, "tags": LIST_STR, "cwe_ids": LIST_INT,
    "cvss_score": DOUBLE, "port": INT, "line": INT,
    "severity_rank": INT,  # derived: 0 unknown .. 5 critical; never null
}
_STRING_METHODS = {"contains": 1, "startsWith": 1, "endsWith": 1, "matches": 1, "lowerAscii": 0, "upperAscii": 0}


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: ``test(finding)`` returns a bool or raises (undefined).

    ``index`` is ``(field, values)`` when the condition can only be true if ``finding[field]`` is
    one of ``values`` (a top-level ``field == "x"`` or ``field in [...]`` conjunct); ``requires``
    names a field that must not be null (a top-level ``field != null`` conjunct). The rule set uses
    both to skip rules without evaluating them: a false conjunct makes ``&&`` false in CEL even when
    another side is undefined, so skipping is exact.
    """

    test: Test
    fields: frozenset[str]
    index: tuple[str, tuple[Any, ...]] | None
    requires: str | None = None
    test_if_present: Test | None = None  # the condition without the ``requires`` conjunct
    size: int = 0  # syntax nodes plus RE2 program instructions: what one evaluation may walk
    regex: tuple[str, RegexBank, int] | None = None  # the whole condition is ``field.matches(bank pattern)``


def _compatible(a: str, b: str) -> bool:
    if a == b or DYN in (a, b) or NULL in (a, b):
        return True
    if a in _NUMERIC and b in _NUMERIC:
        return True
    return a.startswith("list<") and b.startswith("list<") and LIST_DYN in (a, b)


def _element(list_type: str) -> str:
    return list_type[5:-1] if list_type.startswith("list<") else DYN


class _Compiler:
    """Walks the syntax tree once: checks names and types, picks a closure factory per node."""

    def __init__(self, banks: RegexBanks) -> None:
        self.scope: dict[str, str] = {}
        self.fields: set[str] = set()
        self.banks = banks
        self.regex_size = 0

    def compile(self, node: Node) -> Val:
        method = getattr(self, "_" + node.kind)
        return method(node)

    def boolean(self, node: Node, what: str) -> Test:
        val = self.compile(node)
        if val.type == DYN:
            return as_bool(val.fn)
        if val.type != BOOL:
            raise LangError(f"{what} must be true/false, but this is a {val.type}", node.pos)
        return val.fn

    # --- leaves
    def _lit(self, node: Node) -> Val:
        v = node.value
        t = (NULL if v is None else BOOL if type(v) is bool else INT if type(v) is int
             else DOUBLE if type(v) is float else STR)
        return Val(lambda f: v, t, const=True, value=v)

    def _ident(self, node: Node) -> Val:
        name = node.value
        if name in self.scope:
            return Val(getter(name), self.scope[name], field=name)
        if name not in FIELD_TYPES:
            close = difflib.get_close_matches(name, FIELD_TYPES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise LangError(f"unknown field '{name}'{hint}", node.pos)
        self.fields.add(name)
        if name == "severity_rank":
            self.fields.add("severity")
            return Val(severity_rank, INT)
        return Val(getter(name), FIELD_TYPES[name], field=name)

    def _list(self, node: Node) -> Val:
        items = [self.compile(a) for a in node.args]
        types = {i.type for i in items}
        if types <= _NUMERIC and types:
            elem = INT if types == {INT} else DOUBLE
        else:
            elem = types.pop() if len(types) == 1 and next(iter(types)) in (STR, BOOL) else DYN
        t = f"list<{elem}>"
        if all(i.const for i in items):
            values = [i.value for i in items]
            return Val(lambda f: values, t, const=True, value=values)
        fns = [i.fn for i in items]
        return Val(lambda f: [fn(f) for fn in fns], t)

    # --- logic
    def _not(self, node: Node) -> Val:
        inner = self.boolean(node.args[0], "the operand of '!'")
        return Val(negation(inner), BOOL)

    def _and(self, node: Node) -> Val:
        return Val(logic([self.boolean(a, "each side of '&&'") for a in node.args], decisive=False), BOOL)

    def _or(self, node: Node) -> Val:
        return Val(logic([self.boolean(a, "each side of '||'") for a in node.args], decisive=True), BOOL)

    # --- comparisons
    def _rel(self, node: Node) -> Val:
        op = node.value
        left, right = self.compile(node.args[0]), self.compile(node.args[1])
        if op == "in":
            return self._in(node, left, right)
        if op in ("==", "!="):
            if not _compatible(left.type, right.type):
                raise LangError(f"cannot compare {left.type} with {right.type} using '{op}'", node.pos)
        elif not ((left.type in _NUMERIC and right.type in _NUMERIC) or (left.type == right.type == STR)
                  or DYN in (left.type, right.type)):
            raise LangError(f"cannot order {left.type} and {right.type} with '{op}'", node.pos)
        return Val(comparison(op, left, right), BOOL)

    def _in(self, node: Node, left: Val, right: Val) -> Val:
        if right.type == STR:
            raise LangError("'in' needs a list on the right; to search text use .contains()", node.pos)
        if not right.type.startswith("list<") and right.type != DYN:
            raise LangError(f"'in' needs a list on the right, not a {right.type}", node.pos)
        if not _compatible(left.type, _element(right.type)):
            raise LangError(f"cannot look for a {left.type} in a {right.type}", node.pos)
        return Val(membership(left, right), BOOL)

    # --- functions and methods
    def _call(self, node: Node) -> Val:
        name, args = node.value, node.args
        if name == "size" and len(args) == 1:
            return self._size(self.compile(args[0]), node)
        if name == "sev" and len(args) == 1:
            arg = args[0]
            if arg.kind != "lit" or not isinstance(arg.value, str) or arg.value.lower() not in SEVERITY_RANK:
                raise LangError(f"sev() takes one of {', '.join(SEVERITY_RANK)} as a quoted string", node.pos)
            rank = SEVERITY_RANK[arg.value.lower()]
            return Val(lambda f: rank, INT, const=True, value=rank)
        if name in ("size", "sev"):
            raise LangError(f"{name}() takes exactly one argument", node.pos)
        raise LangError(f"unknown function '{name}'; available: size(), sev()", node.pos)

    def _method(self, node: Node) -> Val:
        name, recv_node, args = node.value, node.args[0], node.args[1:]
        if name in ("exists", "all"):
            return self._macro(node, name, recv_node, args)
        recv = self.compile(recv_node)
        if name == "size" and not args:
            return self._size(recv, node)
        if name not in _STRING_METHODS:
            raise LangError(
                f"unknown method '{name}'; available: {', '.join(sorted(_STRING_METHODS))}, size(), exists(), all()",
                node.pos,
            )
        if recv.type not in (STR, DYN):
            raise LangError(f".{name}() applies to text, not to a {recv.type}", node.pos)
        want = _STRING_METHODS[name]
        if len(args) != want:
            raise LangError(f".{name}() takes {want} argument{'s' if want != 1 else ''}", node.pos)
        if name in ("lowerAscii", "upperAscii"):
            upper = name == "upperAscii"
            if recv.field is not None:  # rules of a set converting the same field share one conversion per finding
                fn = recv.fn
                return Val(self.banks.shared((name, recv.field), lambda: ascii_case(fn, upper, remember=True)), STR)
            return Val(ascii_case(recv.fn, upper=upper), STR)
        if name == "matches":
            pattern = args[0]
            if pattern.kind != "lit" or not isinstance(pattern.value, str):
                raise LangError(".matches() needs the pattern as a quoted string", pattern.pos)
            try:
                self.regex_size += pattern_size(pattern.value)
            except ValueError as exc:
                raise LangError(str(exc), pattern.pos) from None
            bank = self.banks.for_field(recv.field)
            return Val(regex_test(recv.fn, bank.add(pattern.value), bank), BOOL)
        arg = self.compile(args[0])
        if arg.type not in (STR, DYN):
            raise LangError(f".{name}() needs a text argument, not a {arg.type}", args[0].pos)
        return Val(text_test(name, recv, arg), BOOL)

    def _size(self, val: Val, node: Node) -> Val:
        if val.type not in (STR, DYN) and not val.type.startswith("list<"):
            raise LangError(f"size() applies to text or a list, not to a {val.type}", node.pos)
        return Val(size_of(val.fn), INT)

    def _macro(self, node: Node, name: str, recv_node: Node, args: tuple[Node, ...]) -> Val:
        if len(args) != 2 or args[0].kind != "ident":
            raise LangError(f".{name}() takes a variable name and a condition, e.g. .{name}(x, x > 1)", node.pos)
        if self.scope:
            raise LangError("nested exists()/all() are not supported", node.pos)
        recv = self.compile(recv_node)
        if not recv.type.startswith("list<") and recv.type != DYN:
            raise LangError(f".{name}() applies to a list, not to a {recv.type}", node.pos)
        var = args[0].value
        if var in FIELD_TYPES:
            raise LangError(f"the variable '{var}' hides a field; choose another name", args[0].pos)
        self.scope = {var: _element(recv.type)}
        try:
            pred = self.boolean(args[1], f"the condition of .{name}()")
        finally:
            self.scope = {}
        return Val(quantifier(recv.fn, var, pred, want=(name == "exists")), BOOL)


def _index_of(tree: Node) -> tuple[str, tuple[Any, ...]] | None:
    """The most selective ``field == const`` / ``field in [consts]`` conjunct at the top level."""
    best: tuple[str, tuple[Any, ...]] | None = None
    for part in tree.args if tree.kind == "and" else (tree,):
        if part.kind != "rel" or part.value not in ("==", "in"):
            continue
        left, right = part.args
        if part.value == "==" and left.kind == "lit" and right.kind == "ident":
            left, right = right, left
        if left.kind != "ident" or FIELD_TYPES.get(left.value) not in _SCALARS or left.value == "severity_rank":
            continue
        consts = (right,) if part.value == "==" else right.args if right.kind == "list" else None
        if not consts or any(c.kind != "lit" or c.value is None or type(c.value) is bool for c in consts):
            continue
        if best is None or len(consts) < len(best[1]):
            best = (left.value, tuple(dict.fromkeys(c.value for c in consts)))
    return best


def _required_field(tree: Node) -> tuple[str, Node | None] | None:
    """The first top-level ``field != null`` conjunct's field, and the condition without it."""
    parts = tree.args if tree.kind == "and" else (tree,)
    for i, part in enumerate(parts):
        if part.kind == "rel" and part.value == "!=":
            left, right = part.args
            if left.kind == "lit" and right.kind == "ident":
                left, right = right, left
            if left.kind == "ident" and left.value in FIELD_TYPES and right.kind == "lit" and right.value is None:
                rest = parts[:i] + parts[i + 1:]
                if not rest:
                    return left.value, None
                return left.value, rest[0] if len(rest) == 1 else Node("and", tree.pos, None, rest)
    return None


def _node_count(tree: Node) -> int:
    return 1 + sum(_node_count(a) for a in tree.args)


def compile_condition(text: str, banks: RegexBanks | None = None) -> Condition:
    """Parse, type-check and compile a condition; raises :class:`LangError` naming the problem.

    Conditions compiled with the same ``banks`` search their patterns over one field in one RE2
    pass; seal the banks once every condition is compiled.
    """
    tree = parse(text)
    own = banks is None
    banks = RegexBanks() if banks is None else banks
    compiler = _Compiler(banks)
    test = compiler.boolean(tree, "a condition")
    required = _required_field(tree)
    requires, test_if_present = None, None
    if required is not None:
        requires = required[0]
        rest = required[1]
        test_if_present = _Compiler(banks).boolean(rest, "a condition") if rest is not None else (lambda f: True)
    regex = None
    if tree.kind == "method" and tree.value == "matches" and tree.args[0].kind == "ident" \
            and FIELD_TYPES.get(tree.args[0].value) == STR:
        bank = banks.for_field(tree.args[0].value)
        regex = (tree.args[0].value, bank, bank.add(tree.args[1].value))  # the index the compiler got
    if own:
        banks.seal()
    return Condition(
        test=test, fields=frozenset(compiler.fields), index=_index_of(tree),
        requires=requires, test_if_present=test_if_present, size=_node_count(tree) + compiler.regex_size,
        regex=regex,
    )
