"""tickets: one open ticket per finding per tracker, the ticket's last known status, reconcile state

A ticket link is now taken before the tracker is called (``ticket_key`` NULL meanwhile), and a partial
unique index allows one open link (``closed_at IS NULL``) per finding and tracker integration. The link
keeps what PMAP last learned of the ticket (url, status, done, when) and the last reconcile failure.

Links written before this revision may name one finding twice for one tracker: all but the newest are
marked closed (at their creation time) so the index can be built; deliveries still update them.

Revision ID: 0007_tickets
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_tickets"
down_revision = "0006"
branch_labels = None
depends_on = None

_OPEN = "closed_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.alter_column("ticket_key", existing_type=sa.String(length=255), nullable=True)
        batch_op.add_column(sa.Column("url", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("status", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("done", sa.Boolean(), server_default=sa.text("false"), nullable=False))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("status_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reconcile_error", sa.String(length=500), nullable=True))
    links = sa.table("ticket_links", sa.column("id", sa.Uuid()), sa.column("finding_id", sa.Uuid()),
                     sa.column("integration_id", sa.Uuid()), sa.column("created_at", sa.DateTime(timezone=True)),
                     sa.column("closed_at", sa.DateTime(timezone=True)),
                     sa.column("status_seen_at", sa.DateTime(timezone=True)))
    op.execute(links.update().values(status_seen_at=links.c.created_at))
    # older duplicates of one (finding, tracker) are closed, so the one-open-link index can exist
    newer = sa.alias(links, "newer")
    has_newer = sa.exists().where(newer.c.finding_id == links.c.finding_id,
                                  newer.c.integration_id == links.c.integration_id,
                                  sa.or_(newer.c.created_at > links.c.created_at,
                                         sa.and_(newer.c.created_at == links.c.created_at, newer.c.id > links.c.id)))
    op.execute(links.update().where(links.c.finding_id.is_not(None), has_newer).values(closed_at=links.c.created_at))
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.create_index("uq_ticket_links_open_finding", ["finding_id", "integration_id"], unique=True,
                              sqlite_where=sa.text(_OPEN), postgresql_where=sa.text(_OPEN))


def downgrade() -> None:
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.drop_index("uq_ticket_links_open_finding")
    # a link still being opened has no key to keep
    op.execute(sa.text("DELETE FROM ticket_links WHERE ticket_key IS NULL"))
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        for column in ("reconcile_error", "status_seen_at", "closed_at", "done", "status", "url"):
            batch_op.drop_column(column)
        batch_op.alter_column("ticket_key", existing_type=sa.String(length=255), nullable=False)
