"""Alembic environment: PMAP's metadata, the URL from the config, batch mode on SQLite."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import pmap.models  # noqa: F401  (fills the metadata)
from pmap.core.db import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
connectable = config.attributes.get("connection")


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connectable is not None:
    _run(connectable)
else:
    if not url:
        raise RuntimeError("alembic: set sqlalchemy.url or pass a connection in the config's attributes")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
