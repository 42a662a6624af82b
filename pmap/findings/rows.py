"""Database rows of findings: every value capped, cleaned and serialized once.

Size caps (documented limits of what a finding stores): description 16,000 characters,
remediation 8,000, title 500, at most 50 references of 2,048 characters, 200 ids per list, and
``extra`` (vendor evidence) 8 KiB of JSON; other text columns are cut to their column length.
Text PostgreSQL cannot store (NUL characters, lone surrogates) is cleaned, on SQLite too, so both
databases hold the same thing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa

from pmap.findings.formats.base import ParsedFinding
from pmap.findings.models import Finding, FindingStatus
from pmap.findings.severity import Decision

DESCRIPTION_MAX = 16_000
REMEDIATION_MAX = 8_000
TITLE_MAX = 500
REFERENCES_MAX, REFERENCE_CHARS = 50, 2_048
IDS_MAX = 200
EXTRA_MAX_BYTES = 8_192
INT4_MAX = 2**31 - 1

OPEN, SUPPRESSED, RESOLVED = FindingStatus.OPEN.value, FindingStatus.SUPPRESSED.value, FindingStatus.RESOLVED.value

#: A report's own state of a finding (``ParsedFinding.status``, as the parsers write it) as PMAP's status.
#: Anything else (no state, "active", "new", "reopened", ...) is open. A rule's suppression wins over it.
REPORT_STATES = {
    "fixed": RESOLVED, "mitigated": RESOLVED, "closed": RESOLVED, "resolved": RESOLVED,
    "false_positive": SUPPRESSED, "suppressed": SUPPRESSED, "not_affected": SUPPRESSED, "accepted": SUPPRESSED,
    "ignored": SUPPRESSED,
}


@lru_cache(maxsize=1)
def _limits() -> dict[str, int]:
    return {c.name: int(c.type.length) for c in Finding.__table__.columns
            if isinstance(c.type, sa.String) and c.type.length}


def clean_text(value: str | None, limit: int) -> str | None:
    """``value`` cut to ``limit`` characters, without NUL or lone surrogates (PostgreSQL refuses both)."""
    if value is None:
        return None
    if len(value) > limit:
        value = value[:limit]
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value or None


def _deep_clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value, 1 << 20) or ""
    if isinstance(value, dict):
        return {str(k): _deep_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_deep_clean(v) for v in value]
    return value


def dump_json(value: Any) -> bytes:
    """UTF-8 JSON of ``value``; strings PostgreSQL cannot store (NUL, lone surrogates) are cleaned."""
    try:
        data = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        data = orjson.dumps(_deep_clean(value), default=str)
    if b"\\u0000" in data:
        data = orjson.dumps(_deep_clean(value), default=str)
    return data


def _text_list(values: Iterable[Any], limit: int, chars: int) -> list[str]:
    out: list[str] = []
    for v in values:
        if len(out) >= limit:
            break
        text = clean_text(str(v), chars)
        if text:
            out.append(text)
    return out


def _extra(extra: dict[str, Any]) -> bytes:
    text = dump_json(extra)
    if len(text) <= EXTRA_MAX_BYTES:
        return text
    # keep every key, shortening long text evenly, rather than dropping evidence wholesale
    share = max(64, EXTRA_MAX_BYTES // (2 * len(extra)))
    trimmed = {k: (v[:share] + "…[truncated]" if isinstance(v, str) and len(v) > share else v) for k, v in extra.items()}
    text = dump_json(trimmed)
    return text if len(text) <= EXTRA_MAX_BYTES else dump_json({"truncated": True, "keys": list(extra)[:50]})


def _utc(value: datetime | None, default: datetime) -> datetime:
    if value is None:
        return default
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@dataclass(frozen=True, slots=True)
class Stream:
    """What every row of one import shares: owner, stream identity (integration + format + scope)."""

    organization_id: uuid.UUID
    integration_id: uuid.UUID
    format: str
    scope: str
    import_id: uuid.UUID
    now: datetime


#: text columns copied from the finding, with their caps (the rest are cut to the column length)
_TEXT_CAPS = {"title": TITLE_MAX, "description": DESCRIPTION_MAX, "remediation": REMEDIATION_MAX}
_TEXT_FIELDS = ("title", "description", "tool", "rule_id", "cvss_version", "cvss_vector", "host", "ip", "protocol",
                "url", "parameter", "repository", "file_path", "package_name", "package_version", "fixed_version",
                "remediation", "vendor_severity")


class RowBuilder:
    """Builds the database rows of one import's kept findings, every value capped and cleaned.

    JSON columns are serialized once here: as text for SQLite, and for PostgreSQL's binary COPY
    as the JSONB wire format (a version byte, then the text), so the driver does no work on them.
    """

    def __init__(self, stream: Stream, *, binary_json: bool = False) -> None:
        limits = _limits()
        self._text = tuple((name, _TEXT_CAPS.get(name) or limits[name]) for name in _TEXT_FIELDS)
        self._json: Any = (lambda data: b"\x01" + data) if binary_json else bytes.decode
        self._empty_list, self._empty_object = self._json(b"[]"), self._json(b"{}")
        self._now = stream.now
        self._uuid = lru_cache(maxsize=256)(uuid.UUID)  # rule ids: a few, repeated on many rows
        self._new_id = not binary_json  # PostgreSQL generates ids itself (gen_random_uuid() default)
        self._base = {
            "organization_id": stream.organization_id, "integration_id": stream.integration_id,
            "format": stream.format, "scope": stream.scope, "first_import_id": stream.import_id,
            "last_import_id": stream.import_id, "resolved_at": None, "created_at": stream.now,
            "updated_at": stream.now,
        }

    def __call__(self, fingerprint: str, f: ParsedFinding, d: Decision) -> dict[str, Any]:
        """The row of one kept finding."""
        row = self._base.copy()
        for name, limit in self._text:
            v = getattr(f, name)
            # the common case (short ASCII text) costs three C-level checks and no call
            if v is not None and (type(v) is not str or len(v) > limit or not v.isascii() or "\x00" in v):
                v = clean_text(str(v), limit)
            row[name] = v
        if not row["title"]:
            row["title"] = "(untitled)"
        js, empty = self._json, self._empty_list
        rule_uuid = self._uuid(d.rule_id) if d.rule_id else None
        suppressed_uuid = self._uuid(d.suppressed_by) if d.suppressed_by else None
        port, line, score = f.port, f.line, f.cvss_score
        if self._new_id:
            row["id"] = uuid.uuid4()
        row.update(
            fingerprint=fingerprint,
            cve_ids=js(dump_json(_text_list(f.cve_ids, IDS_MAX, 64))) if f.cve_ids else empty,
            cwe_ids=js(dump_json([c for c in f.cwe_ids[:IDS_MAX] if type(c) is int])) if f.cwe_ids else empty,
            other_ids=js(dump_json(_text_list(f.other_ids, IDS_MAX, 200))) if f.other_ids else empty,
            references=js(dump_json(_text_list(f.references, REFERENCES_MAX, REFERENCE_CHARS))) if f.references else empty,
            extra=js(_extra(f.extra)) if f.extra else self._empty_object,
            tags=js(dump_json(d.tags)) if d.tags else empty,
            cvss_score=float(score) if isinstance(score, (int, float)) else None,
            port=port if type(port) is int and 0 <= port <= 65535 else None,
            line=line if type(line) is int and 0 <= line <= INT4_MAX else None,
            mapped_severity=d.mapped, severity=d.severity, severity_source=d.source, severity_rule_id=rule_uuid,
            status=SUPPRESSED if suppressed_uuid else REPORT_STATES.get((f.status or "").lower(), OPEN),
            suppressed_by_rule_id=suppressed_uuid,
            first_seen=_utc(f.first_seen, self._now), last_seen=_utc(f.last_seen, self._now),
        )
        return row
