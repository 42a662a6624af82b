"""The runtime half of rule conditions: closure factories that evaluate over a finding mapping.

:mod:`pmap.findings.rules_compile` type-checks a condition and picks these factories; each returns
a ``Test`` (``finding -> value``). Common shapes (``field == "x"``, ``field.startsWith("x")``) get
one specialized closure, because a Python call is the unit of cost here (~50 ns).

Any exception raised while evaluating means *undefined* (CEL's error value): ``None`` has no
``startswith``, ``None >= 7`` is a TypeError, and so on. That keeps the hot paths free of checks; a
check is added only where Python would otherwise answer where CEL does not (``"a" in "abc"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pmap.findings.rules_regex import RegexBank

SEVERITY_RANK = {"unknown": 0, "info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

Test = Callable[[Any], Any]


class Undefined(Exception):
    """The condition has no value for this finding (a CEL error: null operand or wrong type)."""


@dataclass(slots=True)
class Val:
    """A compiled sub-expression: its closure, static type, and what the factories specialize on."""

    fn: Test
    type: str
    const: bool = False
    value: Any = None
    field: str | None = None  # set when ``fn`` is a plain ``f.get(field)`` read


class _Scope:
    """The finding seen from inside ``exists``/``all``: one extra name bound to the current item."""

    __slots__ = ("_f", "_item", "_name")

    def __init__(self, f: Any, name: str, item: Any) -> None:
        self._f, self._name, self._item = f, name, item

    def get(self, key: str, default: Any = None) -> Any:
        return self._item if key == self._name else self._f.get(key, default)


def getter(name: str) -> Test:
    """A closure reading one field (a missing key reads as null)."""
    return lambda f: f.get(name)


def severity_rank(f: Any) -> int:
    """The derived ``severity_rank`` field: 0 for unknown or unrecognized severities."""
    return SEVERITY_RANK.get(f.get("severity"), 0)


def as_bool(fn: Test) -> Test:
    """``fn`` checked to give a bool (for values whose type is only known at run time)."""

    def checked(f: Any) -> bool:
        v = fn(f)
        if v is True or v is False:
            return v
        raise Undefined

    return checked


_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def logic(parts: list[Test], decisive: bool) -> Test:
    """CEL's commutative ``&&`` (decisive=False) / ``||`` (decisive=True): an error loses to a decisive value."""
    if len(parts) == 2:
        a, b = parts
        if decisive:
            def or2(f: Any) -> bool:
                try:
                    if a(f):
                        return True
                except Exception:  # an error side loses to a decisive one
                    if b(f):
                        return True
                    raise
                return b(f)
            return or2

        def and2(f: Any) -> bool:
            try:
                if not a(f):
                    return False
            except Exception:
                if not b(f):
                    return False
                raise
            return b(f)
        return and2

    def many(f: Any) -> bool:
        failed = False
        for p in parts:
            try:
                if bool(p(f)) is decisive:
                    return decisive
            except Exception:
                failed = True
        if failed:
            raise Undefined
        return not decisive

    return many


def negation(fn: Test) -> Test:
    """``!x``; undefined stays undefined."""
    return lambda f: not fn(f)


def comparison(op: str, left: Val, right: Val) -> Test:
    """``==  !=  <  <=  >  >=``, specialized for field-versus-constant."""
    cmp = _CMP[op]
    if left.const and right.const:
        result = cmp(left.value, right.value)
        return lambda f: result
    if left.fn is severity_rank and right.const:
        # one dict lookup instead of a rank computation and a comparison
        table = {name: cmp(rank, right.value) for name, rank in SEVERITY_RANK.items()}
        default = cmp(0, right.value)
        return lambda f: table.get(f.get("severity"), default)
    if left.field is not None and right.const:
        name, c = left.field, right.value
        if op == "==":
            return lambda f: f.get(name) == c
        if op == "!=":
            return lambda f: f.get(name) != c
        if op == ">=":
            return lambda f: f.get(name) >= c
        if op == ">":
            return lambda f: f.get(name) > c
        if op == "<=":
            return lambda f: f.get(name) <= c
        return lambda f: f.get(name) < c
    if left.const and (right.field is not None or right.fn is severity_rank):
        return comparison(_FLIPPED[op], right, left)
    a, b = left.fn, right.fn
    return lambda f: cmp(a(f), b(f))


def membership(left: Val, right: Val) -> Test:
    """``x in list``; a list literal of constants becomes a frozenset."""
    if right.const:
        try:
            pool: Any = frozenset(right.value)
        except TypeError:  # unhashable items: keep the list
            pool = right.value
        if left.field is not None:
            name = left.field
            return lambda f: f.get(name) in pool
        lfn = left.fn
        return lambda f: lfn(f) in pool
    rfn = right.fn
    if left.const and right.field is not None:
        name, c = right.field, left.value

        def in_field(f: Any) -> bool:
            v = f.get(name)
            if v.__class__ is list or v.__class__ is tuple:
                return c in v
            raise Undefined  # Python would also search text and dicts; CEL's 'in' needs a list

        return in_field
    lfn = left.fn

    def generic(f: Any) -> bool:
        v = rfn(f)
        if v.__class__ is list or v.__class__ is tuple:
            return lfn(f) in v
        raise Undefined

    return generic


def size_of(fn: Test) -> Test:
    """``size(x)`` of text or a list."""

    def size(f: Any) -> int:
        v = fn(f)
        if isinstance(v, (str, list, tuple)):
            return len(v)
        raise Undefined

    return size


def ascii_case(rfn: Test, upper: bool, remember: bool = False) -> Test:
    """``lowerAscii()`` / ``upperAscii()``: only ASCII letters change, as in CEL's strings extension.

    With ``remember``, the last text converted and its result are kept: rules sharing this closure
    (see :class:`pmap.findings.rules_regex.RegexBanks`) convert a finding's field once, not once each.
    """
    # str.lower() also folds non-ASCII letters; translate() is ~25x slower, so it only runs on non-ASCII text
    table = _ASCII_UPPER if upper else _ASCII_LOWER

    def convert(f: Any) -> str:
        s = rfn(f)
        if s.isascii():
            return s.upper() if upper else s.lower()
        return s.translate(table)

    if not remember:
        return convert
    last: list[tuple[Any, str]] = [(None, "")]

    def remembered(f: Any) -> str:
        s = rfn(f)
        seen = last[0]  # one tuple, replaced whole: safe between threads
        if seen[0] is s and s is not None:  # the same object: the caller holds it, so its id is not reused
            return seen[1]
        # as in convert; a null or non-text value raises here: undefined, nothing kept
        out = (s.upper() if upper else s.lower()) if s.isascii() else s.translate(table)
        last[0] = (s, out)
        return out

    return remembered


def text_test(name: str, recv: Val, arg: Val) -> Test:
    """``contains`` / ``startsWith`` / ``endsWith``; null or non-text raises (undefined)."""
    if arg.const:
        c = arg.value
        if recv.field is not None:
            fname = recv.field
            if name == "startsWith":
                return lambda f: f.get(fname).startswith(c)
            if name == "endsWith":
                return lambda f: f.get(fname).endswith(c)
            return lambda f: f.get(fname).find(c) >= 0
        rfn = recv.fn
        if name == "startsWith":
            return lambda f: rfn(f).startswith(c)
        if name == "endsWith":
            return lambda f: rfn(f).endswith(c)
        return lambda f: rfn(f).find(c) >= 0
    rfn, afn = recv.fn, arg.fn

    def generic(f: Any) -> bool:
        s, t = rfn(f), afn(f)
        if t.__class__ is not str:
            raise Undefined
        if name == "startsWith":
            return s.startswith(t)
        if name == "endsWith":
            return s.endswith(t)
        return s.find(t) >= 0

    return generic


def regex_test(recv: Test, index: int, bank: RegexBank) -> Test:
    """``matches(pattern)``: an unanchored RE2 search (linear time; no backreferences or lookaround).

    The pattern is ``bank``'s ``index``-th: every pattern reading the same text is searched in one pass.
    """
    hits = bank.hits

    def matches(f: Any) -> bool:
        s = recv(f)
        if s.__class__ is not str:
            raise Undefined
        return index in hits(s)

    return matches


def quantifier(items_fn: Test, var: str, pred: Test, want: bool) -> Test:
    """``exists`` (want=True) / ``all`` (want=False) over a list; bounded by the list's length."""

    def run(f: Any) -> bool:
        items = items_fn(f)
        if items.__class__ is not list and items.__class__ is not tuple:
            raise Undefined
        failed = False
        for item in items:
            try:
                if bool(pred(_Scope(f, var, item))) is want:
                    return want
            except Exception:
                failed = True
        if failed:
            raise Undefined
        return not want

    return run
