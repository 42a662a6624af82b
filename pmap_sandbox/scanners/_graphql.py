"""A deliberately tiny GraphQL subset for the sandbox: parse one operation's selection set, project data.

Supports fields, aliases, arguments (literals and ``$variables``) and nested selections; no
fragments or directives. Enough for the minimal queries connectors send (``sites { id name }``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r'\s*(?:(\.\.\.)|("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(\$)|([{}():,!\[\]=@]))'
)


class GraphQLSyntaxError(ValueError):
    """The query is outside the supported subset or malformed."""


@dataclass
class Field:
    """One selected field."""

    name: str
    alias: str
    args: dict[str, Any] = field(default_factory=dict)
    children: list[Field] | None = None


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = re.sub(r"#[^\n]*", "", text)
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise GraphQLSyntaxError(f"Syntax Error: unexpected character at {pos}")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str], variables: Mapping[str, Any]) -> None:
        self.t, self.i, self.vars = tokens, 0, variables
        self.kind = "query"

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise GraphQLSyntaxError(f"Syntax Error: expected {expected or 'token'}, found {tok}")
        self.i += 1
        return tok

    def document(self) -> list[Field]:
        # skip "query Name($v: T)" (or "mutation Name(...)") up to the first top-level "{"
        depth = 0
        while self.peek() is not None and not (self.peek() == "{" and depth == 0):
            tok = self.take()
            depth += tok == "("
            depth -= tok == ")"
            if depth == 0 and tok == "mutation" and self.i == 1:
                self.kind = "mutation"
            elif tok in {"mutation", "subscription", "..."}:
                raise GraphQLSyntaxError(f"Syntax Error: {tok} is not supported by the sandbox")
        return self.selection_set()

    def selection_set(self) -> list[Field]:
        self.take("{")
        fields: list[Field] = []
        while self.peek() != "}":
            if self.peek() in {"...", "@"}:
                raise GraphQLSyntaxError("Syntax Error: fragments and directives are not supported")
            name = self.take()
            alias = name
            if self.peek() == ":":
                self.take(":")
                name = self.take()
            args = self.arguments() if self.peek() == "(" else {}
            children = self.selection_set() if self.peek() == "{" else None
            fields.append(Field(name=name, alias=alias, args=args, children=children))
            if self.peek() == ",":
                self.take(",")
        self.take("}")
        return fields

    def arguments(self) -> dict[str, Any]:
        self.take("(")
        args: dict[str, Any] = {}
        while self.peek() != ")":
            key = self.take()
            self.take(":")
            args[key] = self.value()
            if self.peek() == ",":
                self.take(",")
        self.take(")")
        return args

    def value(self) -> Any:
        tok = self.take()
        if tok == "$":
            return self.vars.get(self.take())
        if tok.startswith('"'):
            return json.loads(tok)  # GraphQL string escapes are JSON's
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        if re.fullmatch(r"-?\d+\.\d+", tok):
            return float(tok)
        if tok == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.take(",")
            self.take("]")
            return items
        return {"true": True, "false": False, "null": None}.get(tok, tok)


def parse(query: str, variables: Mapping[str, Any] | None = None) -> list[Field]:
    """The root fields of ``query``."""
    return _Parser(_tokens(query), variables or {}).document()


def operation(query: str, variables: Mapping[str, Any] | None = None) -> tuple[str, list[Field]]:
    """The kind of ``query``'s operation (query or mutation) and its root fields."""
    parser = _Parser(_tokens(query), variables or {})
    roots = parser.document()
    return parser.kind, roots


def project(value: Any, children: list[Field] | None, typename: str = "") -> Any:
    """Keep only the selected fields of ``value`` (recursively)."""
    if children is None or value is None:
        return value
    if isinstance(value, list):
        return [project(v, children, typename) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for f in children:
            if f.name == "__typename":
                out[f.alias] = value.get("__typename", typename)
            else:
                out[f.alias] = project(value.get(f.name), f.children)
        return out
    return value


Resolver = Callable[[Field], Any]


def execute(
    query: str, variables: Mapping[str, Any] | None, resolvers: Mapping[str, Resolver], type_name: str = "Query",
    mutations: Mapping[str, Resolver] | None = None,
) -> dict[str, Any]:
    """Run ``query`` against root ``resolvers`` (a mutation against ``mutations``); unknown fields yield GraphQL
    validation errors."""
    try:
        kind, roots = operation(query, variables)
    except GraphQLSyntaxError as exc:
        return {"errors": [{"message": str(exc), "extensions": {"classification": "InvalidSyntax"}}]}
    if kind == "mutation":
        resolvers, type_name = mutations or {}, "Mutation"
    unknown = [f for f in roots if f.name not in resolvers and f.name != "__typename"]
    if unknown:
        return {
            "errors": [
                {
                    "message": f"Validation error (FieldUndefined@[{f.name}]) : Field '{f.name}' in type "
                    f"'{type_name}' is undefined",
                    "extensions": {"classification": "ValidationError"},
                }
                for f in unknown
            ]
        }
    data = {}
    for f in roots:
        data[f.alias] = type_name if f.name == "__typename" else project(resolvers[f.name](f), f.children)
    return {"data": data}
