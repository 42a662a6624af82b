"""tamper-evident audit: audit_events.seq/mac/key_id, audit_keys, audit_chain_heads

Each audit event gets a per-organization sequence number and an HMAC chaining it to the previous event
(pmap.audit.chain), under an audit key sealed with the platform keyring. Existing events are sealed by the
first sealer run after the upgrade: they were not protected before it.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # nullable: an event is inserted unsealed and sealed right after its commit
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("key_id", sa.Uuid(), nullable=True))
        batch_op.create_index("ux_audit_events_org_seq", ["organization_id", "seq"], unique=True)
    op.create_table(
        "audit_keys",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("envelope", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_chain_heads",
        sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organizations.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.Column("anchor_seq", sa.BigInteger(), nullable=False),
        sa.Column("anchor_prev_mac", sa.String(length=64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_chain_heads")
    op.drop_table("audit_keys")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ux_audit_events_org_seq")
        batch_op.drop_column("key_id")
        batch_op.drop_column("mac")
        batch_op.drop_column("seq")
