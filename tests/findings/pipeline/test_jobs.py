"""Background imports: 202 + job, progress, result or error, ownership, resuming after a dead process, spool
cleanup."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pmap.auth.models import Organization
from pmap.core.db import transaction, utcnow
from pmap.core.settings import Settings
from pmap.findings.jobs import JobCancelled
from pmap.findings.models import Job
from pmap.jobs import uploads
from pmap.jobs.models import JobUpload
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, upload, wait_job

ITEMS = [{"plugin": i, "host": f"10.2.0.{i % 7}", "severity": i % 5} for i in range(40)]


def _background(api: Api) -> None:
    api.state.settings.import_background_bytes = 100  # every upload here runs as a job


def test_large_upload_runs_as_a_job_with_the_same_summary(api: Api, admin: dict[str, str]) -> None:
    sync_iid, job_iid = create_integration(api, admin), create_integration(api, admin)
    report = nessus_report(ITEMS)
    direct = upload(api, sync_iid, report, admin).json()
    _background(api)
    r = upload(api, job_iid, report, admin)
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert job["status"] in ("queued", "running", "succeeded") and job["kind"] == "import"
    done = wait_job(api, job["id"], admin)
    assert done["status"] == "succeeded" and done["error"] is None and done["finished_at"] is not None
    result = done["result"]
    for key in ("format", "parsed", "kept", "filtered_out", "created", "updated", "resolved", "unknown_severity"):
        assert result[key] == direct[key], key
    assert done["progress"]["phase"] == "done" and done["progress"]["bytes_read"] == len(report)
    assert len(findings(api, admin, integration_id=job_iid)) == direct["created"]
    listed = api.client.get("/api/v1/jobs", headers=admin).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert list((api.state.settings.data_dir / "imports").iterdir()) == []  # the spooled upload is gone


def test_a_failing_job_reports_the_error_and_writes_nothing(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    _background(api)
    whole = nessus_report(ITEMS)
    r = upload(api, iid, whole[: len(whole) // 2], admin)
    assert r.status_code == 202
    done = wait_job(api, r.json()["job"]["id"], admin)
    assert done["status"] == "failed" and done["result"] is None
    err = done["error"]
    assert err["code"] == "report_invalid" and err["format"] == "nessus" and err["location"].startswith("line")
    assert findings(api, admin) == []
    assert list((api.state.settings.data_dir / "imports").iterdir()) == []


def test_format_problems_are_refused_before_a_job_starts(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    _background(api)
    r = upload(api, iid, b'{"runs": []}' + b" " * 500, admin, filename="x.json")
    assert r.status_code == 422
    assert api.client.get("/api/v1/jobs", headers=admin).json()["items"] == []


def test_jobs_belong_to_their_organization(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    _background(api)
    job_id = upload(api, iid, nessus_report(ITEMS), admin).json()["job"]["id"]
    wait_job(api, job_id, admin)
    assert api.client.get(f"/api/v1/jobs/{job_id}", headers=api.token("globex", "admin")).status_code == 404
    assert api.client.get(f"/api/v1/jobs/{job_id}", headers=api.token("acme", "viewer")).status_code == 200
    assert api.client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=admin).status_code == 404


def test_jobs_of_a_dead_process_resume_at_start_up(make_api: Callable[..., Api], settings: Settings) -> None:
    spool = settings.data_dir / "imports"
    spool.mkdir(parents=True)
    abandoned, receiving = spool / "upload-abandoned.part", spool / "upload-receiving.part"
    abandoned.write_bytes(b"x")
    receiving.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(abandoned, (two_days_ago, two_days_ago))
    first = make_api()
    admin = first.token(role="admin")
    iid = create_integration(first, admin)
    host = socket.gethostname()
    with transaction(first.state.sessions) as s:
        org = s.scalars(select(Organization)).one()
        # a process that died mid-import: its job still reads running, its upload is in the database
        dead = Job(organization_id=org.id, kind="import", status="running", progress={}, attempts=1,
                   params={"integration_id": iid, "format": None, "scope": "default", "full": True,
                           "filename": "r.nessus", "size": 1},
                   runner=f"{host}:999999999", actor="token:t", created_at=utcnow(), updated_at=utcnow(),
                   integration_id=uuid.UUID(iid))
        far = Job(organization_id=org.id, kind="import", status="running", params={"integration_id": iid},
                  progress={}, runner="other-host:1", actor="token:t", created_at=utcnow(), updated_at=utcnow(),
                  lease_expires_at=utcnow() + timedelta(minutes=5))
        s.add_all([dead, far])
        s.flush()
        uploads.store(s, dead.id, _file(settings, nessus_report(ITEMS)))
        dead_id, far_id = str(dead.id), far.id
    # a new process starting on the same database resumes what the dead one left
    second = make_api()
    job = wait_job(second, dead_id, admin)
    assert job["status"] == "succeeded" and job["attempts"] == 2 and job["result"]["created"] == len(ITEMS)
    with second.state.sessions() as s:
        far_job = s.get(Job, far_id)
        assert far_job is not None and far_job.status == "running"  # another host's job with a live lease: left alone
        assert s.scalars(select(JobUpload).where(JobUpload.job_id == uuid.UUID(dead_id))).all() == []
    assert not abandoned.exists()
    assert receiving.exists()  # young: may be an upload another process is still receiving


def _file(settings: Settings, content: bytes) -> Path:
    path = settings.data_dir / "report.nessus"
    path.write_bytes(content)
    return path


def test_a_stopping_service_gives_a_running_import_back(api: Api) -> None:
    runner = cast(FastAPI, api.client.app).state.jobs
    report = runner._progress(uuid.uuid4())
    report({"phase": "importing", "bytes_read": 1, "bytes_total": 2, "findings": 1})  # running normally
    runner._stopping.set()
    try:
        with pytest.raises(JobCancelled) as caught:
            report({"phase": "importing", "bytes_read": 2, "bytes_total": 2, "findings": 2})
        assert "goes back to the queue" in caught.value.message
    finally:
        runner._stopping.clear()


def test_jobs_are_listed_per_integration_and_kind(api: Api, admin: dict[str, str]) -> None:
    first, second = create_integration(api, admin), create_integration(api, admin)
    _background(api)
    ids = {}
    for iid in (first, second):
        r = upload(api, iid, nessus_report(ITEMS), admin)
        assert r.status_code == 202, r.text
        ids[iid] = wait_job(api, r.json()["job"]["id"], admin)["id"]
    for iid in (first, second):
        listed = api.client.get("/api/v1/jobs", params={"integration_id": iid}, headers=admin).json()["items"]
        assert [j["id"] for j in listed] == [ids[iid]]
    both = api.client.get("/api/v1/jobs", params={"kind": "import"}, headers=admin).json()["items"]
    assert {j["id"] for j in both} == set(ids.values())
    assert api.client.get("/api/v1/jobs", params={"kind": "sync"}, headers=admin).json()["items"] == []
