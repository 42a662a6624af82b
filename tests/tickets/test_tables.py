"""The ticket tables moved to the tickets package unchanged: the models still match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from pmap.models import Base  # every table, as the migrations see them
from pmap.tickets.models import TicketEvent, TicketLink


def test_the_ticket_tables_match_the_migrations(db_url: str) -> None:
    assert {TicketLink.__tablename__, TicketEvent.__tablename__} == {"ticket_links", "ticket_events"}
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert [d for d in diff if "ticket_" in repr(d)] == []
