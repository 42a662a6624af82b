"""Database rows of findings: every value capped, cleaned and serialized once.

Size caps (documented limits of what a finding stores): description 16,000 characters,
remediation 8,000, title 500, at most 50 references of 2,048 characters, 200 ids per list, and
``extra`` (vendor evidence) 8 KiB of JSON; other text columns are cut to their column length. Entries of
one report merged into one finding keep the evidence of at most :data:`OCCURRENCES_MAX` occurrences, each
at most :data:`OCCURRENCE_MAX_BYTES` of JSON (see :func:`occurrence`); the count goes on beyond.
Text PostgreSQL cannot store (NUL characters, lone surrogates) is cleaned, on SQLite too, so both
databases hold the same thing.
"""

from __future__ import annotations

import itertools
import operator
import secrets
import struct
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa

from pmap.findings.coverage import covered_resource
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
#: evidence kept per finding of the entries its report merged into it: this many occurrences (the count goes
#: on beyond), each a JSON object of at most OCCURRENCE_MAX_BYTES
OCCURRENCES_MAX = 100
OCCURRENCE_MAX_BYTES = 1_024
_INT4 = struct.Struct(">i")

OPEN, SUPPRESSED, RESOLVED = FindingStatus.OPEN.value, FindingStatus.SUPPRESSED.value, FindingStatus.RESOLVED.value

#: A report's own state of a finding (``ParsedFinding.status``, as the parsers write it) as PMAP's status.
#: Anything else (no state, "active", "new", "reopened", ...) is open. A rule's suppression wins over it.
REPORT_STATES = {
    "fixed": RESOLVED, "mitigated": RESOLVED, "closed": RESOLVED, "resolved": RESOLVED,
    "false_positive": SUPPRESSED, "suppressed": SUPPRESSED, "not_affected": SUPPRESSED, "accepted": SUPPRESSED,
    "ignored": SUPPRESSED, "risk_accepted": SUPPRESSED,
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


def _extra(extra: dict[str, Any], limit: int = EXTRA_MAX_BYTES) -> bytes:
    text = dump_json(extra)
    if len(text) <= limit:
        return text
    # keep every key, shortening long text evenly, rather than dropping evidence wholesale
    share = max(64, limit // (2 * len(extra)))
    trimmed = {k: (v[:share] + "…[truncated]" if isinstance(v, str) and len(v) > share else v)
               for k, v in extra.items()}
    text = dump_json(trimmed)
    if len(text) <= limit:
        return text
    keys = list(extra)[:50]
    while keys and len(text := dump_json({"truncated": True, "keys": keys})) > limit:
        keys = keys[: len(keys) // 2]
    return text if keys else b'{"truncated":true}'


def occurrence(f: ParsedFinding) -> str:
    """The evidence of one more occurrence of a finding in its report (an entry with the same identity,
    merged into it): its ip, vendor ids and ``extra``, as JSON text of at most OCCURRENCE_MAX_BYTES.
    Keys without a value are left out. (The first occurrence's is made of the stored finding's own
    columns at publish, see :func:`pmap.findings.storage.apply_occurrences`.)"""
    item: dict[str, Any] = {}
    if f.ip:
        item["ip"] = clean_text(str(f.ip), 64)
    if f.other_ids:
        item["other_ids"] = _text_list(f.other_ids, 20, 200)
    data = dump_json(item)
    if f.extra and isinstance(f.extra, dict):
        room = OCCURRENCE_MAX_BYTES - len(data) - len(b',"extra":')
        evidence = _extra(f.extra, max(64, room))
        data = (data[:-1] + (b"," if item else b"") + b'"extra":' + evidence + b"}")
    if len(data) > OCCURRENCE_MAX_BYTES:  # ids and evidence together too long: the evidence is the point
        data = b'{"extra":' + _extra(f.extra or {}, OCCURRENCE_MAX_BYTES - 16) + b"}"
    return data.decode()


def _utc(value: datetime | None, default: datetime) -> datetime:
    if value is None:
        return default
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # a valid date whose UTC form leaves the calendar (0001-01-01T00:00+05:00): the edge
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Stream:
    """What every row of one import shares: owner, stream identity (integration + format + scope)."""

    organization_id: uuid.UUID
    integration_id: uuid.UUID
    format: str
    scope: str
    import_id: uuid.UUID
    now: datetime


class TimeOrderedIds:
    """Row ids for one import: UUIDv7 (RFC 9562), increasing within the import.

    48 bits of Unix milliseconds, 12 random bits, then a counter seeded with 40 random bits and
    incremented per row (RFC 9562 section 6.2, method 1). Increasing keys are appended at the right
    edge of the primary-key and creation-order indexes instead of landing on a random page each,
    which PostgreSQL's B-tree inserts much faster (its rightmost-leaf fast path). Two imports that
    start in the same millisecond still draw 52 random bits each; a clash would fail the import on
    the primary key, never merge rows.
    """

    def __init__(self) -> None:
        ms = time.time_ns() // 1_000_000
        self._counter = itertools.count(
            (ms & (2**48 - 1)) << 80 | 0x7 << 76 | secrets.randbits(12) << 64 | 0b10 << 62 | secrets.randbits(40))

    def next_bytes(self) -> bytes:
        """The next id as its 16 bytes (what PostgreSQL's binary ``uuid`` format is)."""
        return next(self._counter).to_bytes(16, "big")

    def next_uuid(self) -> uuid.UUID:
        """The next id as a :class:`uuid.UUID`."""
        return uuid.UUID(int=next(self._counter))


def _same(value: Any) -> Any:
    return value


#: text columns copied from the finding, with their caps (the rest are cut to the column length)
_TEXT_CAPS = {"title": TITLE_MAX, "description": DESCRIPTION_MAX, "remediation": REMEDIATION_MAX}
_TEXT_FIELDS = ("title", "description", "tool", "rule_id", "cvss_version", "cvss_vector", "host", "ip", "protocol",
                "url", "parameter", "repository", "file_path", "package_name", "package_version", "fixed_version",
                "remediation", "vendor_severity")

#: the order of the values in a row tuple: the findings table's own column order
ROW_COLUMNS: tuple[str, ...] = (
    "id", "organization_id", "integration_id", "format", "scope", "fingerprint", "first_import_id", "last_import_id",
    "title", "description", "tool", "cve_ids", "cwe_ids", "other_ids", "rule_id", "cvss_version", "cvss_vector",
    "cvss_score", "host", "ip", "port", "protocol", "url", "parameter", "repository", "file_path", "line",
    "package_name", "package_version", "fixed_version", "remediation", "references", "extra", "vendor_severity",
    "mapped_severity", "severity", "severity_source", "severity_rule_id", "status", "suppressed_by_rule_id", "tags",
    "first_seen", "last_seen", "resolved_at", "created_at", "updated_at", "asset", "occurrence_count", "occurrences",
)
#: one finding's row: its values in :data:`ROW_COLUMNS` order
Row = tuple[Any, ...]
FINGERPRINT, STATUS = ROW_COLUMNS.index("fingerprint"), ROW_COLUMNS.index("status")


def _json_texts(values: list[str], limit: int, chars: int) -> bytes:
    """JSON array of at most ``limit`` non-empty texts of at most ``chars`` characters each, cleaned."""
    # the common case (a few short ASCII ids or URLs) is checked with C-level calls only
    if len(values) <= limit and all(values):
        try:
            joined = "".join(values)
        except TypeError:
            joined = ""
        if joined and joined.isascii() and "\x00" not in joined and max(map(len, values)) <= chars:
            return orjson.dumps(values)
    return dump_json(_text_list(values, limit, chars))


class RowBuilder:
    """Builds the database rows of one import's kept findings, every value capped and cleaned.

    A row is a tuple in :data:`ROW_COLUMNS` order (what binary COPY and ``executemany`` take
    without re-shaping; :meth:`as_dict` names the values). JSON columns are serialized once here:
    as text for SQLite; with ``binary`` (PostgreSQL's binary COPY) uuids, ints and JSON are given in
    their wire formats, so the driver's C code passes them through. Ids are time-ordered
    (:class:`TimeOrderedIds`).
    """

    def __init__(self, stream: Stream, *, binary: bool = False) -> None:
        limits = _limits()
        self._texts = operator.attrgetter(*_TEXT_FIELDS)
        self._caps = tuple(_TEXT_CAPS.get(name) or limits[name] for name in _TEXT_FIELDS)
        ids = TimeOrderedIds()
        if binary:
            # values the C dumpers of binary COPY would otherwise hand to Python ones (uuid, int4)
            # are given in their wire format: uuid as its 16 bytes, int4 big-endian, JSONB as a
            # version byte and the text
            self._json: Any = lambda data: b"\x01" + data
            key: Callable[[uuid.UUID], Any] = operator.attrgetter("bytes")
            self._int4: Callable[[int], Any] = _INT4.pack
            self._new_id: Callable[[], Any] = ids.next_bytes
        else:
            self._json, key, self._int4, self._new_id = bytes.decode, _same, _same, ids.next_uuid
        self._empty_list, self._empty_object = self._json(b"[]"), self._json(b"{}")
        self._one = self._int4(1)
        self._now = stream.now
        self._shared = (key(stream.organization_id), key(stream.integration_id), stream.format, stream.scope)
        self._import = key(stream.import_id)
        self._rule = lru_cache(maxsize=256)(lambda rule_id: key(uuid.UUID(rule_id)))  # a few, on many rows

    @staticmethod
    def as_dict(row: Row) -> dict[str, Any]:
        """The row's values by column name."""
        return dict(zip(ROW_COLUMNS, row, strict=True))

    def __call__(self, fingerprint: str, f: ParsedFinding, d: Decision, asset: Any = ...) -> Row:
        """The row of one kept finding; ``asset``: its :func:`covered_resource`, when the caller has it."""
        (title, description, tool, rule_id, cvss_version, cvss_vector, host, ip, protocol, url, parameter, repository,
         file_path, package_name, package_version, fixed_version, remediation, vendor_severity) = [
            # the common case (short ASCII text) costs three C-level checks and no call
            v if v is None or (type(v) is str and len(v) <= cap and v.isascii() and "\x00" not in v)
            else clean_text(str(v), cap)
            for v, cap in zip(self._texts(f), self._caps, strict=True)]
        js, empty, now, imported = self._json, self._empty_list, self._now, self._import
        port, line, score = f.port, f.line, f.cvss_score
        suppressed = self._rule(d.suppressed_by) if d.suppressed_by else None
        # a report that dates its scan but not each finding's discovery (Nessus' HOST_END) saw it
        # first no later than then; never store a first sighting after the last one
        last = _utc(f.last_seen, now)
        first = _utc(f.first_seen, last) if f.first_seen is not None else last
        if first > last:
            first = last
        status = SUPPRESSED if suppressed else REPORT_STATES.get((f.status or "").lower(), OPEN)
        return (
            self._new_id(), *self._shared, fingerprint, imported, imported, title or "(untitled)", description, tool,
            js(_json_texts(f.cve_ids, IDS_MAX, 64)) if f.cve_ids else empty,
            js(dump_json([c for c in f.cwe_ids[:IDS_MAX] if type(c) is int])) if f.cwe_ids else empty,
            js(_json_texts(f.other_ids, IDS_MAX, 200)) if f.other_ids else empty,
            rule_id, cvss_version, cvss_vector,
            float(score) if isinstance(score, (int, float)) else None,
            host, ip, self._int4(port) if type(port) is int and 0 <= port <= 65535 else None, protocol, url,
            parameter, repository, file_path, self._int4(line) if type(line) is int and 0 <= line <= INT4_MAX else None,
            package_name, package_version, fixed_version, remediation,
            js(_json_texts(f.references, REFERENCES_MAX, REFERENCE_CHARS)) if f.references else empty,
            js(_extra(f.extra)) if f.extra else self._empty_object,
            vendor_severity, d.mapped, d.severity, d.source, self._rule(d.rule_id) if d.rule_id else None,
            status, suppressed,
            js(dump_json(d.tags)) if d.tags else empty,
            # a finding its report states fixed is resolved as of this import (the upsert keeps an earlier date)
            first, last, now if status == RESOLVED else None, now, now,
            # occurrences: one until the publish step merges later ones in (pmap.findings.storage)
            covered_resource(f) if asset is ... else asset, self._one, self._empty_list,
        )


@dataclass(frozen=True, slots=True)
class EncodedRows:
    """A batch of rows already in PostgreSQL's binary ``COPY`` format (one ``bytes`` per row, field
    count included; no file header or trailer), with what the writer needs to read of each row: its
    fingerprint and status. What an import's parsing process ships (:mod:`pmap.findings.overlap`):
    a few ``bytes`` objects pickle and unpickle at memory speed, a tuple of 46 values does not."""

    fingerprints: list[str]
    statuses: list[str]
    data: list[bytes]

    def __len__(self) -> int:
        return len(self.data)

    def subset(self, keep: Callable[[str], bool]) -> EncodedRows:
        """The rows whose fingerprint ``keep`` accepts."""
        picked = [i for i, fp in enumerate(self.fingerprints) if keep(fp)]
        return EncodedRows([self.fingerprints[i] for i in picked], [self.statuses[i] for i in picked],
                           [self.data[i] for i in picked])


#: binary COPY's file header (signature, flags, header extension length) and trailer
COPY_HEADER, COPY_TRAILER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8, b"\xff\xff"


class RowEncoder:
    """Encodes rows of :class:`RowBuilder` (``binary=True``) into binary COPY tuples, by psycopg's own
    C code and default adapters (the same bytes ``Copy.write_row`` sends), without a connection."""

    def __init__(self) -> None:
        from psycopg._copy_base import format_row_binary  # the C function behind Copy.write_row
        from psycopg.adapt import Transformer

        self._format, self._tx = format_row_binary, Transformer()

    def __call__(self, rows: list[Row]) -> EncodedRows:
        fmt, tx = self._format, self._tx
        data = []
        for r in rows:
            out = bytearray()
            fmt(r, tx, out)
            data.append(bytes(out))
        return EncodedRows([r[FINGERPRINT] for r in rows], [r[STATUS] for r in rows], data)
