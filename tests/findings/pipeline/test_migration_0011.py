"""Migration 0011 backfills each stored finding's covered resource (``asset``) by the rule of
:mod:`pmap.findings.coverage` (URL origin, host, ip, repository; NULL for none), sets one occurrence, and
goes back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy import create_engine

from pmap.auth.models import Organization
from pmap.findings.coverage import covered_resource
from pmap.findings.formats.base import ParsedFinding
from pmap.integrations.models import Integration
from pmap.migrations import alembic_config, upgrade

RESOURCES = [  # (url, host, ip, repository)
    ("https://App.Test/login", "app.test", None, None),
    (None, "Web01.Corp", "10.0.0.1", None),
    (None, None, "10.0.0.2", None),
    (None, None, None, "acme/web"),
    (None, None, None, None),
    ("app.test:22", "app.test", None, None),
]


def test_0011_backfills_the_covered_resource_and_goes_back(fresh_url: str) -> None:
    upgrade(fresh_url, "0010")
    org, integration = uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    engine = create_engine(fresh_url)
    json = sa.JSON()
    columns: list[sa.ColumnClause[Any]] = [sa.column(c, sa.Uuid()) for c in ("id", "organization_id",
                                                                              "integration_id")]
    columns += [sa.column(c, sa.String()) for c in ("format", "scope", "fingerprint", "title", "mapped_severity",
                                                    "severity", "severity_source", "status", "url", "host", "ip",
                                                    "repository")]
    columns += [sa.column(c, json) for c in ("cve_ids", "cwe_ids", "other_ids", "references", "extra", "tags")]
    columns += [sa.column(c, sa.DateTime(timezone=True)) for c in ("first_seen", "last_seen", "created_at",
                                                                   "updated_at")]
    findings = sa.table("findings", *columns)  # as 0010 left it (the model has 0011's columns)
    ids = [uuid.uuid4() for _ in RESOURCES]
    with engine.begin() as conn:
        conn.execute(sa.insert(Organization), [{"id": org, "name": "acme", "created_at": now}])
        conn.execute(sa.insert(Integration), [{"id": integration, "organization_id": org, "name": "scanner",
                                               "vendor": "nessus", "category": "vulnerability_management",
                                               "connection": {}, "credential_fields": [], "webhook_state": {},
                                               "allow_unsigned_webhooks": False, "enabled": True,
                                               "severity_threshold": "info", "created_at": now, "updated_at": now}])
        conn.execute(sa.insert(findings), [
            {"id": fid, "organization_id": org, "integration_id": integration, "format": "nessus", "scope": "default",
             "fingerprint": f"{i:064x}", "title": "t", "mapped_severity": "low", "severity": "low",
             "severity_source": "vendor", "status": "open", "url": url, "host": host, "ip": ip,
             "repository": repository, "cve_ids": [], "cwe_ids": [], "other_ids": [], "references": [], "extra": {},
             "tags": [], "first_seen": now, "last_seen": now, "created_at": now, "updated_at": now}
            for i, (fid, (url, host, ip, repository)) in enumerate(zip(ids, RESOURCES, strict=True))])
    upgrade(fresh_url, "head")
    with engine.connect() as conn:
        rows: dict[Any, Any] = dict(conn.execute(sa.text("SELECT id, asset FROM findings")).all())
        counts = conn.execute(sa.text("SELECT occurrence_count, occurrences FROM findings")).all()
    by_id = {uuid.UUID(str(k)) if not isinstance(k, uuid.UUID) else k: v for k, v in rows.items()}
    expected = [covered_resource(ParsedFinding("t", url=u, host=h, ip=i, repository=r)) for u, h, i, r in RESOURCES]
    assert [by_id[fid] for fid in ids] == expected == [
        "https://app.test:443", "web01.corp", "10.0.0.2", "acme/web", None, "app.test"]
    assert {(n, str(o).replace(" ", "")) for n, o in counts} == {(1, "[]")}
    command.downgrade(alembic_config(fresh_url), "0010")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM findings")).scalar() == len(RESOURCES)
    engine.dispose()
