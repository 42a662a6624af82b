"""findings: the covered resource (asset) and merged occurrences

``asset`` is the resource a finding belongs to: a full report resolves the findings it lacks only on the
resources it covered (pmap.findings.coverage). Stored findings are backfilled with the rule's steps that
use stored columns (URL origin, host, ip, repository; the explicit asset a format names was not stored
before, so such findings get theirs at their next import). ``occurrence_count`` and ``occurrences`` hold
the entries of the latest report that shared the finding's identity, merged.

Revision ID: 0011
Revises: 0010
"""

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ASSET_MAX = 500
CHUNK = 5000
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


def _origin(url: str | None) -> str | None:
    # a copy of pmap.findings.coverage.url_origin as of this revision (migrations never import app code)
    if not url or "://" not in url:
        return None
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme or not host:
        return None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def _asset(url: str | None, host: str | None, ip: str | None, repository: str | None) -> str | None:
    # pmap.findings.coverage.covered_resource without the explicit asset (not stored before)
    value = _origin(url) or (host or ip or "").lower() or repository
    if not value:
        return None
    value = value.strip()[:ASSET_MAX]
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\x00", "") or None


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("asset", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("occurrence_count", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("occurrences", JSON, nullable=False, server_default=sa.text("'[]'")))
    op.create_index("ix_findings_org_asset", "findings", ["organization_id", "asset"])
    # backfill in chunks, keyset-paged by id: memory stays bounded whatever the table holds
    findings = sa.table("findings", sa.column("id", sa.Uuid()), sa.column("url", sa.String()),
                        sa.column("host", sa.String()), sa.column("ip", sa.String()),
                        sa.column("repository", sa.String()), sa.column("asset", sa.String()))
    conn = op.get_bind()
    update = (sa.update(findings).where(findings.c.id == sa.bindparam("fid"))
              .values(asset=sa.bindparam("value")))
    last = None
    while True:
        query = (sa.select(findings.c.id, findings.c.url, findings.c.host, findings.c.ip, findings.c.repository)
                 .order_by(findings.c.id).limit(CHUNK))
        if last is not None:
            query = query.where(findings.c.id > last)
        rows = conn.execute(query).all()
        if not rows:
            break
        last = rows[-1][0]
        values = [{"fid": fid, "value": value} for fid, url, host, ip, repository in rows
                  if (value := _asset(url, host, ip, repository)) is not None]
        if values:
            conn.execute(update, values)


def downgrade() -> None:
    op.drop_index("ix_findings_org_asset", table_name="findings")
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("occurrences")
        batch.drop_column("occurrence_count")
        batch.drop_column("asset")
