"""The ticket tables: the models match the migrations, and 0007 makes room for one open link per finding
and tracker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from pmap.auth.models import Organization
from pmap.integrations.models import Integration
from pmap.migrations import alembic_config, upgrade
from pmap.models import Base  # every table, as the migrations see them
from pmap.tickets.models import TicketEvent, TicketLink


def test_the_ticket_tables_match_the_migrations(db_url: str) -> None:
    assert {TicketLink.__tablename__, TicketEvent.__tablename__} == {"ticket_links", "ticket_events"}
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert [d for d in diff if "ticket_" in repr(d)] == []


def test_0007_closes_older_duplicate_links_and_goes_back(fresh_url: str) -> None:
    """Links from before 0007 may name one finding twice on one tracker: the newest stays open."""
    upgrade(fresh_url, "0006")
    org, integration, finding = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    when = [datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC) for i in range(3)]
    engine = create_engine(fresh_url)
    # ticket_links as 0006 left them (the model has 0007's columns)
    links = sa.table("ticket_links", *(sa.column(c, sa.Uuid()) for c in (
        "id", "organization_id", "integration_id", "finding_id")), sa.column("ticket_key", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)))
    with engine.begin() as conn:
        conn.execute(sa.insert(Organization), [{"id": org, "name": "acme", "created_at": when[0]}])
        conn.execute(sa.insert(Integration), [{"id": integration, "organization_id": org, "name": "jira",
                                               "vendor": "jira_cloud", "category": "ticketing", "connection": {},
                                               "credential_fields": [], "webhook_state": {},
                                               "allow_unsigned_webhooks": False, "enabled": True,
                                               "severity_threshold": "info", "created_at": when[0],
                                               "updated_at": when[0]}])
        conn.execute(sa.insert(links), [
            {"id": uuid.uuid4(), "organization_id": org, "integration_id": integration, "ticket_key": f"SEC-{i}",
             "finding_id": finding if i < 2 else None, "created_at": when[i]} for i in range(3)])
    upgrade(fresh_url, "head")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT ticket_key, closed_at, status_seen_at, done FROM ticket_links "
                                    "ORDER BY ticket_key")).all()
    assert [(k, c is not None, s is not None, bool(d)) for k, c, s, d in rows] == [
        ("SEC-0", True, True, False), ("SEC-1", False, True, False), ("SEC-2", False, True, False)]
    command.downgrade(alembic_config(fresh_url), "0006")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ticket_links")).scalar() == 3
    engine.dispose()
