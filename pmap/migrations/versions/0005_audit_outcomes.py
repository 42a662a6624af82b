"""audit outcomes: one vocabulary (success, failure)

Imports were audited "ok"/"failed" while every other action said "success"/"failure"; the audit
log now takes only :class:`pmap.core.audit_vocabulary.AuditOutcome` values, so old rows are rewritten.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# written out rather than imported: a migration keeps meaning what it meant when it shipped
_RENAMED = {"ok": "success", "failed": "failure"}

_audit = sa.table("audit_events", sa.column("action", sa.String), sa.column("outcome", sa.String))


def upgrade() -> None:
    for old, new in _RENAMED.items():
        op.execute(_audit.update().where(_audit.c.outcome == old).values(outcome=new))


def downgrade() -> None:
    # only imports ever said "ok"/"failed": give their rows the old words back
    for old, new in _RENAMED.items():
        op.execute(_audit.update().where(_audit.c.outcome == new, _audit.c.action == "findings.import")
                   .values(outcome=old))
