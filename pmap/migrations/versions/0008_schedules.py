"""schedules: integrations.sync_schedule(_since), webhook_rotation_schedule(_since), scheduled_runs

Revision ID: 0008
Revises: 0007_tickets
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007_tickets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_schedule", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("sync_schedule_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("webhook_rotation_schedule", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("webhook_rotation_schedule_since", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "scheduled_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("skipped", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("integration_id", "kind", "due_at", name="uq_scheduled_runs_due"),
    )


def downgrade() -> None:
    op.drop_table("scheduled_runs")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("webhook_rotation_schedule_since")
        batch_op.drop_column("webhook_rotation_schedule")
        batch_op.drop_column("sync_schedule_since")
        batch_op.drop_column("sync_schedule")
