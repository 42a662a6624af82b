"""the job engine: leases, attempts, cancel requests and exclusive keys on jobs; uploads in the database

Revision ID: 0010
Revises: 0009
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_IN_FLIGHT = "exclusive_key IS NOT NULL AND status IN ('queued', 'running')"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("integration_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cancel_requested", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("exclusive_key", sa.String(length=200), nullable=True))
    op.create_index("ix_jobs_integration_id", "jobs", ["integration_id"])
    op.create_index("ux_jobs_exclusive", "jobs", ["exclusive_key"], unique=True,
                    postgresql_where=sa.text(_IN_FLIGHT), sqlite_where=sa.text(_IN_FLIGHT))
    # existing jobs name their integration in params: copy it to the column (few rows; portable)
    jobs = sa.table("jobs", sa.column("id", sa.Uuid()), sa.column("params", sa.JSON()),
                    sa.column("integration_id", sa.Uuid()))
    conn = op.get_bind()
    for ident, params in conn.execute(sa.select(jobs.c.id, jobs.c.params)).all():
        value = (params or {}).get("integration_id") if isinstance(params, dict) else None
        if isinstance(value, str):
            try:
                integration_id = uuid.UUID(value)
            except ValueError:
                continue
            conn.execute(sa.update(jobs).where(jobs.c.id == ident).values(integration_id=integration_id))
    op.create_table(
        "job_uploads",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "seq"),
    )


def downgrade() -> None:
    op.drop_table("job_uploads")
    op.drop_index("ux_jobs_exclusive", table_name="jobs")
    op.drop_index("ix_jobs_integration_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("exclusive_key", "cancel_requested", "lease_expires_at", "attempts", "integration_id"):
            batch.drop_column(column)
