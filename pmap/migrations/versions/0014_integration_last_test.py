"""integration connection tests: integrations.last_test

The outcome of the last test of a saved integration's settings as they are (POST /integrations/{id}/test): ok,
when, latency, the failed step, and what the vendor said it is (product, version, licence expiry). Never the
test's message: it may quote the vendor's answer.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # nullable: an integration never tested (or whose settings changed since) has none
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_test", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("last_test")
