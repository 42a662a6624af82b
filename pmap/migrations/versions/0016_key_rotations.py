"""key rotation runs: key_rotations

Where a `pmapctl keys rotate` run has got to (the last integration id of its last committed batch), so a run that
was killed continues there. Envelopes themselves change format in place (version 2: a data key wrapped by a
key-encryption key); version 1 envelopes still open, so no data migration is needed.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_rotations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("new_data_keys", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.Uuid(), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("rewrapped", sa.Integer(), nullable=False),
        sa.Column("resealed", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_rotations")),
    )


def downgrade() -> None:
    op.drop_table("key_rotations")
