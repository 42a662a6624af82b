"""Parsing for PMAP's rule conditions: a small, safe subset of CEL (Common Expression Language).

User text is tokenized and parsed here into a tree of :class:`Node`; :mod:`pmap.findings.rules_compile`
type-checks that tree and turns it into Python closures. No user text ever reaches ``eval``,
``exec`` or ``compile``: the grammar has no attribute access, no assignment and no way to name
anything but the finding fields and the few functions listed in :mod:`pmap.findings.rules_compile`.

Grammar (CEL syntax and precedence; anything else is a compile error naming the position)::

    expr     := and ("||" and)*
    and      := rel ("&&" rel)*
    rel      := unary [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in") unary]   # no chaining
    unary    := "!" unary | "-" NUMBER | member
    member   := primary ("." IDENT "(" [args] ")")*
    primary  := literal | IDENT | IDENT "(" [args] ")" | "(" expr ")" | "[" [args] "]"
    literal  := STRING | r"raw" | INT | DOUBLE | true | false | null
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_CONDITION_CHARS = 2000
MAX_DEPTH = 32  # nesting of parentheses, lists, calls and "!"; keeps the recursive parser bounded
MAX_NODES = 400


class LangError(Exception):
    """A condition that cannot be compiled; ``position`` is a 0-based character offset when known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Node:
    """One syntax-tree node. ``kind``: lit, ident, list, not, and, or, rel, call, method."""

    kind: str
    pos: int
    value: Any = None
    args: tuple[Node, ...] = ()


# Our own pattern, applied to bounded user text; every alternative is unambiguous, so no backtracking blow-up.
_TOKEN_RE = re.compile(
    r"""
      (?P<ws>[ \t\r\n]+|//[^\n]*)
    | (?P<float>[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)
    | (?P<int>[0-9]+)
    | (?P<str>[rR]?(?:"(?:[^"\\\r\n]|\\.)*"|'(?:[^'\\\r\n]|\\.)*'))
    | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>&&|\|\||==|!=|<=|>=|[<>!()\[\],.\-])
    """,
    re.VERBOSE,
)
_ESCAPE_RE = re.compile(
    r"""\\(?:([abfnrtv\\'"?`])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-3][0-7]{2})|(.))""",
    re.DOTALL,
)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_KEYWORDS = {"true": True, "false": False, "null": None}
# CEL reserves these; naming them gives a clear message instead of "unknown field"
_RESERVED = {
    "in", "as", "break", "const", "continue", "else", "for", "function", "if", "import",
    "let", "loop", "package", "namespace", "return", "var", "void", "while",
}
_UNSUPPORTED_CHARS = {
    "=": "'=' is not an operator; use '==' to compare",
    "+": "arithmetic is not supported",
    "*": "arithmetic is not supported",
    "/": "arithmetic is not supported",
    "%": "arithmetic is not supported",
    "?": "the ternary operator '?:' is not supported; combine conditions with && and ||",
    "{": "maps and messages are not supported",
    "&": "use '&&' for logical and",
    "|": "use '||' for logical or",
}


def _unescape(body: str, pos: int) -> str:
    def repl(m: re.Match[str]) -> str:
        simple, hx, u4, u8, octal, bad = m.groups()
        if simple is not None:
            return _SIMPLE_ESCAPES.get(simple, simple)
        if bad is not None:
            raise LangError(f"invalid escape sequence '\\{bad}' in string", pos + m.start())
        code = int(hx or u4 or u8, 16) if octal is None else int(octal, 8)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise LangError("invalid unicode escape in string", pos + m.start())
        return chr(code)

    return _ESCAPE_RE.sub(repl, body)


def tokenize(text: str) -> list[tuple[str, Any, int]]:
    """Split a condition into ``(kind, value, position)`` tokens; kinds: lit, id, op, end."""
    tokens: list[tuple[str, Any, int]] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise LangError("unterminated string literal", pos)
            hint = _UNSUPPORTED_CHARS.get(ch, f"unexpected character {ch!r}")
            raise LangError(hint, pos)
        kind, raw = m.lastgroup, m.group()
        if kind == "float":
            tokens.append(("lit", float(raw), pos))
        elif kind == "int":
            tokens.append(("lit", int(raw), pos))
        elif kind == "str":
            if raw[0] in "rR":
                tokens.append(("lit", raw[2:-1], pos))
            else:
                tokens.append(("lit", _unescape(raw[1:-1], pos + 1), pos))
        elif kind == "id":
            if raw in _KEYWORDS:
                tokens.append(("lit", _KEYWORDS[raw], pos))
            elif raw == "in":
                tokens.append(("op", "in", pos))
            else:
                tokens.append(("id", raw, pos))
        elif kind == "op":
            tokens.append(("op", raw, pos))
        pos = m.end()
    tokens.append(("end", None, end))
    return tokens


_REL_OPS = {"==", "!=", "<", "<=", ">", ">=", "in"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.nodes = 0

    # --- helpers
    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, Any, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, op: str) -> int:
        kind, value, pos = self.take()
        if kind != "op" or value != op:
            raise LangError(f"expected '{op}' but found {_describe(kind, value)}", pos)
        return pos

    def node(self, kind: str, pos: int, value: Any = None, args: tuple[Node, ...] = ()) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LangError(f"condition is too complex (more than {MAX_NODES} parts)", pos)
        return Node(kind, pos, value, args)

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LangError(f"condition is nested too deeply (more than {MAX_DEPTH} levels)", pos)

    def is_op(self, op: str) -> bool:
        kind, value, _ = self.tokens[self.i]
        return kind == "op" and value == op

    # --- grammar
    def parse(self) -> Node:
        tree = self.expr()
        kind, value, pos = self.peek()
        if kind != "end":
            raise LangError(f"unexpected {_describe(kind, value)} after a complete expression", pos)
        return tree

    def expr(self) -> Node:
        return self.chain("||", "or", self.conjunction)

    def conjunction(self) -> Node:
        return self.chain("&&", "and", self.relation)

    def chain(self, op: str, kind: str, sub: Any) -> Node:
        first = sub()
        parts = [first]
        while self.is_op(op):
            self.take()
            parts.append(sub())
        return first if len(parts) == 1 else self.node(kind, first.pos, None, tuple(parts))

    def relation(self) -> Node:
        left = self.unary()
        kind, value, pos = self.peek()
        if kind == "op" and value in _REL_OPS:
            self.take()
            right = self.unary()
            nk, nv, npos = self.peek()
            if nk == "op" and nv in _REL_OPS:
                raise LangError("comparisons cannot be chained; combine them with &&", npos)
            return self.node("rel", pos, value, (left, right))
        return left

    def unary(self) -> Node:
        kind, value, pos = self.peek()
        if kind == "op" and value == "!":
            self.take()
            self.nest(pos)
            operand = self.unary()
            self.depth -= 1
            return self.node("not", pos, None, (operand,))
        if kind == "op" and value == "-":
            self.take()
            nk, nv, _ = self.take()
            if nk == "lit" and type(nv) in (int, float):
                return self.node("lit", pos, -nv)
            raise LangError("'-' is only allowed before a number", pos)
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            kind, value, pos = self.peek()
            if kind == "op" and value == ".":
                self.take()
                nk, name, npos = self.take()
                if nk != "id":
                    raise LangError(f"expected a method name after '.', found {_describe(nk, name)}", npos)
                if not self.is_op("("):
                    raise LangError(f"field selection '.{name}' is not supported; only method calls", npos)
                args = self.arguments(npos)
                node = self.node("method", npos, name, (node, *args))
            elif kind == "op" and value == "[":
                raise LangError("indexing with [] is not supported", pos)
            else:
                return node

    def arguments(self, pos: int) -> tuple[Node, ...]:
        open_pos = self.expect("(")
        self.nest(open_pos)
        args: list[Node] = []
        if not self.is_op(")"):
            args.append(self.expr())
            while self.is_op(","):
                self.take()
                args.append(self.expr())
        self.expect(")")
        self.depth -= 1
        return tuple(args)

    def primary(self) -> Node:
        kind, value, pos = self.take()
        if kind == "lit":
            return self.node("lit", pos, value)
        if kind == "id":
            if value in _RESERVED:
                raise LangError(f"'{value}' is a reserved word", pos)
            if self.is_op("("):
                return self.node("call", pos, value, self.arguments(pos))
            return self.node("ident", pos, value)
        if kind == "op" and value == "(":
            self.nest(pos)
            inner = self.expr()
            self.expect(")")
            self.depth -= 1
            return inner
        if kind == "op" and value == "[":
            self.nest(pos)
            items: list[Node] = []
            if not self.is_op("]"):
                items.append(self.expr())
                while self.is_op(","):
                    self.take()
                    if self.is_op("]"):  # CEL allows a trailing comma
                        break
                    items.append(self.expr())
            self.expect("]")
            self.depth -= 1
            return self.node("list", pos, None, tuple(items))
        raise LangError(f"expected a value but found {_describe(kind, value)}", pos)


def _describe(kind: str, value: Any) -> str:
    if kind == "end":
        return "the end of the condition"
    if kind == "lit":
        return f"literal {value!r}"
    return f"'{value}'"


def parse(text: object) -> Node:
    """Parse a condition into a syntax tree; raises :class:`LangError` with a position (also for a
    condition that is not text: it may come from stored JSON)."""
    if not isinstance(text, str) or not text.strip():
        raise LangError("condition is empty", 0)
    if len(text) > MAX_CONDITION_CHARS:
        raise LangError(f"condition is longer than {MAX_CONDITION_CHARS} characters", MAX_CONDITION_CHARS)
    return _Parser(text).parse()
