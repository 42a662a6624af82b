"""Keyset cursors over (created_at, id), the one cursor format of the API, keyset cursors over another sort
key (:class:`SortKey`), and the list helpers that go with them: a page's ``total`` and a case-insensitive text
filter."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from pmap.core.errors import BadRequestError, FieldProblem

T = TypeVar("T")


def encode_cursor(created_at: datetime, ident: uuid.UUID) -> str:
    """An opaque cursor pointing after (created_at, id)."""
    raw = json.dumps([created_at.isoformat(), str(ident)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor points after; 400 for anything this API did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, ident = json.loads(raw)
        if not (isinstance(created, str) and isinstance(ident, str)):
            raise ValueError("cursor parts are strings")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        # normalized here, so a date at the edge of the calendar fails now rather than when bound
        return when.astimezone(UTC), uuid.UUID(ident)
    except (binascii.Error, ValueError, TypeError, OverflowError, AttributeError):
        raise BadRequestError("invalid cursor",
                              fields=[FieldProblem("cursor", "is not a cursor this API returned")]) from None


def newest_first(stmt: Select[Any], model: Any, cursor: str | None, limit: int) -> Select[Any]:
    """``stmt`` ordered newest first, after ``cursor``, one row more than ``limit`` (to see if more exist)."""
    if cursor:
        created, ident = decode_cursor(cursor)
        stmt = stmt.where(or_(model.created_at < created, and_(model.created_at == created, model.id < ident)))
    return stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)


def split_page(rows: Sequence[T], limit: int) -> tuple[list[T], str | None]:
    """The page's rows and the cursor of the next page (None at the end)."""
    items = list(rows[:limit])
    more = len(rows) > limit
    nxt = encode_cursor(items[-1].created_at, items[-1].id) if more and items else None  # type: ignore[attr-defined]
    return items, nxt


#: where a sort on a nullable time puts "never": before every time (first ascending, last descending)
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SortKey:
    """A list's sort order other than newest first: ``column`` (text, or a time with ``time``) ascending or, with
    ``descending``, descending; ties (and every page boundary) broken by id. A time column sorts ``None`` as
    :data:`NEVER`."""

    name: str  # as the API names it: "name", "-last_tested_at"
    column: InstrumentedAttribute[Any]
    descending: bool = False
    time: bool = False

    def expression(self) -> ColumnElement[Any]:
        if self.time:
            return func.coalesce(self.column, literal(NEVER, type_=self.column.type))
        return self.column  # type: ignore[return-value]

    def value_of(self, row: Any) -> Any:
        value = getattr(row, self.column.key)
        return NEVER if value is None and self.time else value


def sorted_page(stmt: Select[Any], model: Any, key: SortKey, cursor: str | None, limit: int) -> Select[Any]:
    """``stmt`` ordered by ``key`` then id, after ``cursor`` (issued by :func:`split_sorted_page` for the same
    key: another key's cursor is a 400), one row more than ``limit``."""
    expr = key.expression()
    if cursor:
        value, ident = _decode_sorted(cursor, key)
        if key.descending:
            stmt = stmt.where(or_(expr < value, and_(expr == value, model.id < ident)))
        else:
            stmt = stmt.where(or_(expr > value, and_(expr == value, model.id > ident)))
    order = (expr.desc(), model.id.desc()) if key.descending else (expr.asc(), model.id.asc())
    return stmt.order_by(*order).limit(limit + 1)


def split_sorted_page(rows: Sequence[T], limit: int, key: SortKey) -> tuple[list[T], str | None]:
    """The page's rows and the cursor of the next page in ``key``'s order (None at the end)."""
    items = list(rows[:limit])
    if len(rows) <= limit or not items:
        return items, None
    last = items[-1]
    value = key.value_of(last)
    raw = json.dumps([key.name, value.isoformat() if isinstance(value, datetime) else value,
                      str(last.id)]).encode()  # type: ignore[attr-defined]
    return items, base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_sorted(cursor: str, key: SortKey) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, value, ident = json.loads(raw)
        if name != key.name or not isinstance(value, str) or not isinstance(ident, str):
            raise ValueError("a cursor of another sort order")
        if key.time:
            when = datetime.fromisoformat(value)
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC), uuid.UUID(ident)
        return value, uuid.UUID(ident)
    except (binascii.Error, ValueError, TypeError, OverflowError, AttributeError):
        raise BadRequestError("invalid cursor", fields=[FieldProblem(
            "cursor", "is not a cursor this API returned for this sort order")]) from None


def count_matching(session: Session, stmt: Select[Any]) -> int:
    """How many rows ``stmt`` selects (before any cursor or limit): a page's ``total``."""
    # count(*) over the statement's own FROM and WHERE: no column of the rows is read (nor a secret one)
    counted = stmt.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    return session.scalar(counted) or 0


def escape_like(text: str) -> str:
    r"""``text`` with LIKE's wildcards (and the escape character ``\``) made literal."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_text(column: InstrumentedAttribute[Any], text: str) -> ColumnElement[bool]:
    """``column`` contains ``text``, case-insensitively; ``%`` and ``_`` in ``text`` are literal.

    PostgreSQL answers with ILIKE; SQLite with ``lower(column) LIKE lower(pattern)``, whose
    ``lower`` folds ASCII letters only.
    """
    return column.ilike(f"%{escape_like(text)}%", escape="\\")
