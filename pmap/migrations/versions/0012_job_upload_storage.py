"""job uploads: stored uncompressed on PostgreSQL

A queued import's report is kept in ``job_uploads`` until its job runs (minutes at most), then deleted.
PostgreSQL compressed each 1 MB chunk with pglz on the way in: a 357 MB .nessus took 7.2 s to store (3.5 s
of server CPU) instead of 3.1 s (1.0 s), on the path from the upload to the import's start. ``STORAGE
EXTERNAL`` keeps the chunks out of line, uncompressed. SQLite: nothing to do.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE job_uploads ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE job_uploads ALTER COLUMN data SET STORAGE EXTENDED")
