"""findings: normalized findings, imports, jobs and rules

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                   name=f"fk_{table}_organization_id_organizations", ondelete="CASCADE")


def _integration_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"],
                                   name=f"fk_{table}_integration_id_integrations", ondelete="CASCADE")


def _tune_findings_for_bulk_load() -> None:
    """PostgreSQL only: what makes a 100,000-finding import cheaper for the server."""
    # a row inserted without an id gets one from the server (PostgreSQL 13+); bulk imports now give
    # time-ordered ids themselves (pmap.findings.rows.TimeOrderedIds)
    op.execute("ALTER TABLE findings ALTER COLUMN id SET DEFAULT gen_random_uuid()")
    # room on each page for the new version of a row: a re-import updates every row of the report,
    # and an update that fits on its page (and changes no indexed column) skips every index (HOT)
    op.execute("ALTER TABLE findings SET (fillfactor = 70)")
    # long text is compressed as it is stored; lz4 costs ~20% less server time than the default pglz
    lz4 = op.get_bind().execute(sa.text(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
    if lz4:
        for column in ("description", "remediation", "extra"):
            op.execute(f"ALTER TABLE findings ALTER COLUMN {column} SET COMPRESSION lz4")


def upgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("severity_threshold", sa.String(length=16), nullable=False,
                                      server_default="info"))

    op.create_table(
        "findings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("format", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("first_import_id", sa.Uuid(), nullable=True),
        sa.Column("last_import_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tool", sa.String(length=200), nullable=True),
        sa.Column("cve_ids", JSON, nullable=False),
        sa.Column("cwe_ids", JSON, nullable=False),
        sa.Column("other_ids", JSON, nullable=False),
        sa.Column("rule_id", sa.String(length=500), nullable=True),
        sa.Column("cvss_version", sa.String(length=8), nullable=True),
        sa.Column("cvss_vector", sa.String(length=200), nullable=True),
        sa.Column("cvss_score", sa.Float(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("protocol", sa.String(length=16), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("parameter", sa.String(length=500), nullable=True),
        sa.Column("repository", sa.String(length=500), nullable=True),
        sa.Column("file_path", sa.String(length=1024), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("package_name", sa.String(length=500), nullable=True),
        sa.Column("package_version", sa.String(length=200), nullable=True),
        sa.Column("fixed_version", sa.String(length=200), nullable=True),
        sa.Column("remediation", sa.Text(), nullable=True),
        sa.Column("references", JSON, nullable=False),
        sa.Column("extra", JSON, nullable=False),
        sa.Column("vendor_severity", sa.String(length=64), nullable=True),
        sa.Column("mapped_severity", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("severity_source", sa.String(length=16), nullable=False),
        sa.Column("severity_rule_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("suppressed_by_rule_id", sa.Uuid(), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        _ts("first_seen"),
        _ts("last_seen"),
        _ts("resolved_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _integration_fk("findings"),  # no organization key: implied by the integration (see the model)
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
        sa.UniqueConstraint("integration_id", "scope", "fingerprint", name="uq_findings_identity"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _tune_findings_for_bulk_load()
    op.create_index("ix_findings_org_created", "findings", ["organization_id", "created_at", "id"])
    op.create_index("ix_findings_org_status_severity", "findings", ["organization_id", "status", "severity"])
    op.create_index("ix_findings_org_host", "findings", ["organization_id", "host"])

    op.create_table(
        "imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("format", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        _ts("created_at"),
        _ts("finished_at", nullable=True),
        _org_fk("imports"),
        _integration_fk("imports"),
        sa.PrimaryKeyConstraint("id", name="pk_imports"),
    )
    op.create_index("ix_imports_organization_id", "imports", ["organization_id"])
    op.create_index("ix_imports_integration_created", "imports", ["integration_id", "created_at", "id"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("progress", JSON, nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("runner", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        _ts("updated_at"),
        _org_fk("jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_organization_id", "jobs", ["organization_id"])
    op.create_index("ix_jobs_status", "jobs", ["status"])

    op.create_table(
        "rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _org_fk("rules"),
        sa.PrimaryKeyConstraint("id", name="pk_rules"),
    )
    op.create_index("ix_rules_org_position", "rules", ["organization_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_rules_org_position", table_name="rules")
    op.drop_table("rules")
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_index("ix_jobs_organization_id", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_imports_integration_created", table_name="imports")
    op.drop_index("ix_imports_organization_id", table_name="imports")
    op.drop_table("imports")
    for name in ("ix_findings_org_host", "ix_findings_org_status_severity", "ix_findings_org_created"):
        op.drop_index(name, table_name="findings")
    op.drop_table("findings")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("severity_threshold")
