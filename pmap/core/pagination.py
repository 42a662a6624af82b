"""Keyset cursors over (created_at, id), the one cursor format of the API, and the list helpers
that go with them: a page's ``total`` and a case-insensitive text filter."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_
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
