"""Migration 0014 adds ``integrations.last_test`` (null for every stored integration), and goes back, on SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from sqlalchemy import create_engine

from pmap.auth.models import Organization
from pmap.integrations.models import Integration
from pmap.migrations import alembic_config, upgrade


def _columns(engine: sa.Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("integrations")}


def test_0014_adds_last_test_and_goes_back(fresh_url: str) -> None:
    upgrade(fresh_url, "0013")
    org, integration = uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    engine = create_engine(fresh_url)
    assert "last_test" not in _columns(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(Organization), [{"id": org, "name": "acme", "created_at": now}])
        conn.execute(sa.insert(Integration), [{"id": integration, "organization_id": org, "name": "scanner",
                                               "vendor": "nessus", "category": "vulnerability_management",
                                               "connection": {}, "credential_fields": [], "webhook_state": {},
                                               "allow_unsigned_webhooks": False, "enabled": True,
                                               "severity_threshold": "info", "last_tested_at": now,
                                               "created_at": now, "updated_at": now}])
    upgrade(fresh_url, "head")
    engine.dispose()  # PostgreSQL: a fresh connection sees the new column in the cached catalog
    engine = create_engine(fresh_url)
    assert "last_test" in _columns(engine)
    record = {"ok": False, "at": now.isoformat(), "latency_ms": 12, "step": "auth", "product": None,
              "version": None, "license_expires_at": None}
    with engine.begin() as conn:
        assert conn.execute(sa.select(Integration.last_test)).scalar_one() is None
        conn.execute(sa.update(Integration).values(last_test=record))
    with engine.connect() as conn:
        assert conn.execute(sa.select(Integration.last_test)).scalar_one() == record
    command.downgrade(alembic_config(fresh_url), "0013")
    engine.dispose()
    engine = create_engine(fresh_url)
    assert "last_test" not in _columns(engine)
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT name, last_tested_at FROM integrations")).one()
    assert kept[0] == "scanner" and kept[1] is not None
    upgrade(fresh_url, "head")  # and up again
    engine.dispose()
