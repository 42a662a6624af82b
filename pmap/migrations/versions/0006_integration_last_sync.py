"""integration sync: integrations.last_sync and integrations.sync_state

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # nullable: an integration never synced has neither; last_sync is shown by the API, sync_state (the
    # last successful sync's start and the vendor's cursor) is read only by the next incremental sync
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_sync", _JSON, nullable=True))
        batch_op.add_column(sa.Column("sync_state", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("sync_state")
        batch_op.drop_column("last_sync")
