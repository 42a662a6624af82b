"""Request and response bodies of the scan launch API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pmap.findings.schemas import JobOut


class ScanLaunchRequest(BaseModel):
    """Which of the vendor's configured scans to launch."""

    model_config = ConfigDict(extra="forbid")

    scan_id: str = Field(min_length=1, max_length=500,
                         description="The vendor's scan, policy or target id (ZAP: the target URL; Qualys VMDR: "
                                     "<option profile id>:<targets>, the targets IPs/ranges such as "
                                     "10.0.0.1,10.0.0.5-10.0.0.20 or ag=<asset group id>[,<id>])")


class ScanLaunchOut(BaseModel):
    """One launch: what was launched, the vendor's reference of the run, its state and outcome."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    integration_id: uuid.UUID
    vendor_scan_id: str
    vendor_run_ref: str | None
    state: str = Field(description="queued, launching, running, importing, completed or failed")
    vendor_status: str | None
    job_id: uuid.UUID | None
    actor: str
    summary: dict[str, Any] | None = Field(description="the import summary of a completed launch")
    error: dict[str, Any] | None = Field(description="the scrubbed error of a failed launch, with its step")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class ScanLaunchAccepted(BaseModel):
    """A launch was queued: its row and the job to follow (GET /api/v1/jobs/{job.id})."""

    launch: ScanLaunchOut
    job: JobOut


class ScanLaunchList(BaseModel):
    """An integration's launches, newest first."""

    items: list[ScanLaunchOut]
