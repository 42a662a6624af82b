"""Normalized findings, report imports, background jobs and severity rules.

A finding follows OCSF Vulnerability Finding (class 2002). Its identity is
``(integration_id, scope, fingerprint)``: the fingerprint already names the report format, so one
identity is one issue on one resource as seen by one stream of reports (integration + format +
scope). Re-importing updates the row; a newer full report of the same stream that covered its resource
(``asset``) and lacks it marks it ``resolved``; reappearing reopens it. Entries of one report sharing an
identity are merged into one finding that keeps each one's evidence (``occurrences``).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from pmap.core.db import Base, JSONVariant, UTCDateTime, new_id, utcnow


class FindingStatus(str, enum.Enum):
    """Lifecycle of a stored finding.

    ``filtered``: seen in the latest report but below the integration's severity threshold (kept
    as a row only when it was stored before the threshold rose; never created as such).
    """

    OPEN = "open"
    RESOLVED = "resolved"
    SUPPRESSED = "suppressed"
    FILTERED = "filtered"


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Finding(Base):
    """One normalized finding of one organization.

    ``organization_id`` has no foreign key of its own on purpose: it is the integration's
    organization (the integration's key cascades, and the organization's cascades to it), and a
    second per-row key check costs ~20% of a bulk import's database time.
    """

    __tablename__ = "findings"
    # the identity index also serves per-integration and per-stream queries (its prefix); a second
    # index led by integration_id would tempt the planner away from it during large imports
    __table_args__ = (
        UniqueConstraint("integration_id", "scope", "fingerprint", name="uq_findings_identity"),
        Index("ix_findings_org_created", "organization_id", "created_at", "id"),
        Index("ix_findings_org_status_severity", "organization_id", "status", "severity"),
        Index("ix_findings_org_host", "organization_id", "host"),
        Index("ix_findings_org_asset", "organization_id", "asset"),
    )

    # imports give time-ordered ids (pmap.findings.rows.TimeOrderedIds); on PostgreSQL the column also
    # defaults to gen_random_uuid() (migration 0003)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    integration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    first_import_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    last_import_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)

    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    tool: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # vulnerability identifiers
    cve_ids: Mapped[list[str]] = mapped_column(JSONVariant, default=list)
    cwe_ids: Mapped[list[int]] = mapped_column(JSONVariant, default=list)
    other_ids: Mapped[list[str]] = mapped_column(JSONVariant, default=list)
    rule_id: Mapped[str | None] = mapped_column(String(500), nullable=True)
    cvss_version: Mapped[str | None] = mapped_column(String(8), nullable=True)
    cvss_vector: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cvss_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    # affected resource: network, web, code or package, whichever the report states
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    protocol: Mapped[str | None] = mapped_column(String(16), nullable=True)
    url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    parameter: Mapped[str | None] = mapped_column(String(500), nullable=True)
    repository: Mapped[str | None] = mapped_column(String(500), nullable=True)
    file_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    line: Mapped[int | None] = mapped_column(Integer, nullable=True)
    package_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    package_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    fixed_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    remediation: Mapped[str | None] = mapped_column(Text, nullable=True)
    references: Mapped[list[str]] = mapped_column(JSONVariant, default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONVariant, default=dict)
    # severity: the vendor's value as evidence, what the format's mapper made of it, the final value
    vendor_severity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mapped_severity: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    severity_source: Mapped[str] = mapped_column(String(16))  # vendor | cvss | unmapped | rule
    severity_rule_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    suppressed_by_rule_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSONVariant, default=list)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the resource the finding belongs to (pmap.findings.coverage): a full report resolves the findings it
    # lacks only on the resources it covered; NULL is the stream's unnamed resource
    asset: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # occurrences of the finding in its latest report (entries sharing its identity, merged): how many, and
    # the evidence of each when there were several (at most OCCURRENCES_MAX, see pmap.findings.rows)
    occurrence_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    occurrences: Mapped[list[dict[str, Any]]] = mapped_column(JSONVariant, default=list,
                                                             server_default=text("'[]'"))


class ImportRecord(Base):
    """One successful report import and its summary (a failed import leaves no row: it rolled back)."""

    __tablename__ = "imports"
    __table_args__ = (Index("ix_imports_integration_created", "integration_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    full: Mapped[bool] = mapped_column(Boolean, default=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONVariant, default=dict)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Job(Base):
    """A background job (an import, a sync, a scan launch): the user-facing record and the queue's truth. A worker
    runs it under a lease on this row (``runner``, ``lease_expires_at``), so a redelivered task never runs beside a
    live attempt and one whose worker died is taken over (:mod:`pmap.jobs.lease`)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status", "status"),
        # one queued or running job per exclusive key (``sync:<integration id>``), whichever process admits it
        Index("ux_jobs_exclusive", "exclusive_key", unique=True,
              postgresql_where=text("exclusive_key IS NOT NULL AND status IN ('queued', 'running')"),
              sqlite_where=text("exclusive_key IS NOT NULL AND status IN ('queued', 'running')")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    params: Mapped[dict[str, Any]] = mapped_column(JSONVariant, default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(JSONVariant, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, nullable=True)
    # "host:pid" of the process that queued the job, then of the one running it (the lease's holder)
    runner: Mapped[str] = mapped_column(String(255))
    integration_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # every start counts
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_requested: Mapped[str | None] = mapped_column(String(300), nullable=True)  # who asked, while it runs
    exclusive_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rule(Base):
    """An organization's severity rule: a condition in the rule language and one action."""

    __tablename__ = "rules"
    __table_args__ = (Index("ix_rules_org_position", "organization_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    condition: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(16))
    value: Mapped[str | None] = mapped_column(String(64), nullable=True)
    position: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
