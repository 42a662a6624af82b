"""webhooks: delivery records and ticket links

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("delivery_id", sa.String(length=255), nullable=True),
        sa.Column("event", sa.String(length=100), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("verification", sa.String(length=16), nullable=False),
        sa.Column("secret_slot", sa.String(length=16), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"],
                                name=op.f("fk_webhook_deliveries_integration_id_integrations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_webhook_deliveries_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("integration_id", "dedupe_key", name="uq_webhook_deliveries_integration_dedupe"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_integration_created", ["integration_id", "created_at", "id"],
                              unique=False)
        batch_op.create_index("ix_webhook_deliveries_accepted", ["created_at"], unique=False,
                              postgresql_where=sa.text("outcome = 'accepted'"),
                              sqlite_where=sa.text("outcome = 'accepted'"))

    op.create_table(
        "ticket_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_key", sa.String(length=255), nullable=False),
        sa.Column("finding_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"],
                                name=op.f("fk_ticket_links_integration_id_integrations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_ticket_links_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_links")),
        sa.UniqueConstraint("integration_id", "ticket_key", name="uq_ticket_links_integration_ticket"),
    )
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_links_finding_id"), ["finding_id"], unique=False)

    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("delivery_row_id", sa.Uuid(), nullable=True),
        sa.Column("ticket_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=100), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("finding_id", sa.Uuid(), nullable=True),
        sa.Column("finding_updated", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_row_id"], ["webhook_deliveries.id"],
                                name=op.f("fk_ticket_events_delivery_row_id_webhook_deliveries"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"],
                                name=op.f("fk_ticket_events_integration_id_integrations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_ticket_events_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_events")),
    )
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_events_integration_created", ["integration_id", "created_at", "id"],
                              unique=False)
        batch_op.create_index("ix_ticket_events_integration_ticket", ["integration_id", "ticket_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_events_integration_ticket")
        batch_op.drop_index("ix_ticket_events_integration_created")
    op.drop_table("ticket_events")
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_links_finding_id"))
    op.drop_table("ticket_links")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_accepted")
        batch_op.drop_index("ix_webhook_deliveries_integration_created")
    op.drop_table("webhook_deliveries")
