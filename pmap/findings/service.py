"""Reading findings and imports: filters, keyset pagination, one organization at a time."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, defer

from pmap.auth.principal import Principal
from pmap.core.pagination import contains_text, count_matching, newest_first, split_page
from pmap.findings.models import Finding, ImportRecord
from pmap.findings.schemas import (
    FindingCounts,
    FindingOut,
    FindingPage,
    FindingWithOccurrences,
    ImportOut,
    ImportPage,
    IntegrationFindingCounts,
)
from pmap.findings.severity import SEVERITIES
from pmap.integrations.models import Integration

_CWE = re.compile(r"^CWE-(\d{1,6})$", re.IGNORECASE)


@dataclass(slots=True)
class FindingFilters:
    """Listing filters; every given filter must hold (lists: any of the values)."""

    integration_id: uuid.UUID | None = None
    severity: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    vuln_id: str | None = None  # CVE, CWE-n, GHSA/advisory id or the vendor's rule/plugin id
    host: str | None = None
    ip: str | None = None
    port: int | None = None
    url: str | None = None
    repository: str | None = None
    file_path: str | None = None
    package_name: str | None = None
    resource: str | None = None  # equals any of host, ip, url, repository, file_path, package_name
    scope: str | None = None
    format: str | None = None
    tag: str | None = None
    title: str | None = None  # contained in the title, case-insensitively; % and _ are literal


def json_list_has(session: Session, column: Any, value: Any) -> sa.ColumnElement[bool]:
    """``value`` is an element of the JSON array in ``column`` (JSONB containment on PostgreSQL,
    ``json_each`` on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.type_coerce(column, JSONB).contains([value])
    each = sa.func.json_each(column).table_valued("value")
    return sa.exists(sa.select(1).select_from(each).where(each.c.value == value))


def _vuln_id(session: Session, raw: str) -> sa.ColumnElement[bool]:
    text = raw.strip()
    cwe = _CWE.match(text)
    if cwe:
        return json_list_has(session, Finding.cwe_ids, int(cwe.group(1)))
    if text.upper().startswith("CVE-"):
        text = text.upper()
    return sa.or_(json_list_has(session, Finding.cve_ids, text), json_list_has(session, Finding.other_ids, text),
                  Finding.rule_id == text)


def _where(session: Session, f: FindingFilters) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    equal = {Finding.integration_id: f.integration_id, Finding.host: f.host, Finding.ip: f.ip, Finding.port: f.port,
             Finding.url: f.url, Finding.repository: f.repository, Finding.file_path: f.file_path,
             Finding.package_name: f.package_name, Finding.scope: f.scope, Finding.format: f.format}
    clauses += [col == value for col, value in equal.items() if value is not None]
    if f.severity:
        clauses.append(Finding.severity.in_(f.severity))
    if f.status:
        clauses.append(Finding.status.in_(f.status))
    if f.vuln_id:
        clauses.append(_vuln_id(session, f.vuln_id))
    if f.tag:
        clauses.append(json_list_has(session, Finding.tags, f.tag))
    if f.title:
        clauses.append(contains_text(Finding.title, f.title))
    if f.resource:
        r = f.resource
        clauses.append(sa.or_(Finding.host == r, Finding.ip == r, Finding.url == r, Finding.repository == r,
                              Finding.file_path == r, Finding.package_name == r, Finding.asset == r))
    return clauses


def list_findings(session: Session, principal: Principal, filters: FindingFilters, *, limit: int,
                  cursor: str | None) -> FindingPage:
    """One page of the organization's findings, newest first."""
    # a page shows each finding's occurrence count, not their evidence (up to 100 KiB each): not loaded
    stmt = principal.scoped(Finding).where(*_where(session, filters)).options(defer(Finding.occurrences))
    rows, nxt = split_page(session.scalars(newest_first(stmt, Finding, cursor, limit)).all(), limit)
    return FindingPage(items=[FindingOut.model_validate(r) for r in rows], next_cursor=nxt)


#: the order of ``by_severity`` in counts: the most severe first
_COUNT_ORDER = tuple(reversed(SEVERITIES))


def _severity_counts() -> dict[str, int]:
    return dict.fromkeys(_COUNT_ORDER, 0)


def count_findings(session: Session, principal: Principal, filters: FindingFilters) -> FindingCounts:
    """The organization's findings matching ``filters``, counted by the database per integration and severity."""
    stmt = (principal.scoped(Finding, Finding.integration_id, Integration.name, Integration.vendor, Finding.severity,
                             sa.func.count())
            .join(Integration, Integration.id == Finding.integration_id)
            .where(*_where(session, filters))
            .group_by(Finding.integration_id, Integration.name, Integration.vendor, Finding.severity))
    overall = _severity_counts()
    per: dict[uuid.UUID, IntegrationFindingCounts] = {}
    for integration_id, name, vendor, severity, n in session.execute(stmt):
        # a stored severity is always one of SEVERITIES; anything else is counted where a person triages it
        key = severity if severity in overall else "unknown"
        entry = per.get(integration_id)
        if entry is None:
            entry = per[integration_id] = IntegrationFindingCounts(
                integration_id=integration_id, name=name, vendor=vendor, total=0, by_severity=_severity_counts())
        entry.total += n
        entry.by_severity[key] += n
        overall[key] += n
    ranked = sorted(per.values(), key=lambda e: (-e.total, e.name, str(e.integration_id)))
    return FindingCounts(total=sum(overall.values()), by_severity=overall, by_integration=ranked)


def get_finding(session: Session, principal: Principal, finding_id: uuid.UUID) -> FindingWithOccurrences:
    """One finding of the organization (404 otherwise)."""
    return FindingWithOccurrences.model_validate(principal.get_owned(session, Finding, finding_id, what="finding"))


def list_imports(session: Session, principal: Principal, integration_id: uuid.UUID, *, limit: int,
                 cursor: str | None) -> ImportPage:
    """The imports of one integration, newest first, with their ``total``."""
    stmt = principal.scoped(ImportRecord).where(ImportRecord.integration_id == integration_id)
    rows, nxt = split_page(session.scalars(newest_first(stmt, ImportRecord, cursor, limit)).all(), limit)
    return ImportPage(items=[ImportOut.model_validate(r) for r in rows], next_cursor=nxt,
                      total=count_matching(session, stmt))


def get_import(session: Session, principal: Principal, import_id: uuid.UUID) -> ImportOut:
    """One import of the organization (404 otherwise)."""
    return ImportOut.model_validate(principal.get_owned(session, ImportRecord, import_id, what="import"))
