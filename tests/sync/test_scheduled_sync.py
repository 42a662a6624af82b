"""Scheduled syncs: a due schedule starts a real sync (actor: the scheduler) once, and the scheduler the app
runs in the background starts it by itself."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from pmap.audit.models import AuditEvent
from pmap.core.db import transaction, utcnow
from pmap.findings.models import Job
from pmap.integrations.models import Integration
from pmap.schedules.service import run_due
from pmap.sync.service import scheduled_sync
from pmap_sandbox.server import SandboxServer
from tests.conftest import Api, VirtualClock

from .conftest import integration, wait_job
from .test_sync_api import TVM, details, tvm_credentials


def _schedule(api: Api, headers: dict[str, str], iid: str, expression: str) -> None:
    r = api.client.patch(f"/api/v1/integrations/{iid}", headers=headers, json={"sync_schedule": expression})
    assert r.status_code == 200, r.text


def _sync_jobs(api: Api, iid: str) -> list[Job]:
    with api.state.sessions() as s:
        return [j for j in s.scalars(select(Job).where(Job.kind == "sync")) if j.params["integration_id"] == iid]


def test_a_due_schedule_starts_one_sync_run_by_the_scheduler(api: Api, sandbox: SandboxServer, seed: Any,
                                                             virtual_clock: VirtualClock) -> None:
    h = api.token(role="operator")
    seed(TVM, 25, fixed=[3])
    iid = integration(api, h, sandbox, TVM, tvm_credentials())
    _schedule(api, h, iid, "* * * * *")
    submit = scheduled_sync(api.state.sessions, api.app.state.jobs)
    later = utcnow() + timedelta(minutes=1, seconds=1)
    tick = run_due(api.state.sessions, submit, later)
    assert [str(i) for i, _ in tick.started] == [iid] and tick.skipped == []
    job = wait_job(api, h, str(tick.started[0][1]))
    assert job["status"] == "succeeded" and job["result"]["created"] == 25, job
    assert details(api, h, iid)["last_sync"]["status"] == "ok"
    assert run_due(api.state.sessions, submit, later).started == []  # that due time is taken
    assert len(_sync_jobs(api, iid)) == 1
    with api.state.sessions() as s:
        decrypts = s.scalars(select(AuditEvent).where(AuditEvent.integration_id == uuid.UUID(iid),
                                                      AuditEvent.action == "credentials.decrypt")).all()
    assert [e.actor for e in decrypts] == ["system:scheduler"]
    assert [e.purpose for e in decrypts] == ["sync"]


def test_the_app_runs_the_scheduler_in_the_background(make_api: Callable[..., Api],
                                                      sandbox: SandboxServer, seed: Any) -> None:
    api = make_api(scheduler_enabled=True, scheduler_interval=1)
    h = api.token(role="operator")
    seed(TVM, 5)
    iid = integration(api, h, sandbox, TVM, tvm_credentials())
    _schedule(api, h, iid, "* * * * *")
    with transaction(api.state.sessions) as s:  # as if it had been set two minutes ago: this minute is due
        s.get_one(Integration, uuid.UUID(iid)).sync_schedule_since = utcnow() - timedelta(minutes=2)
    deadline = time.monotonic() + 30
    while not _sync_jobs(api, iid) and time.monotonic() < deadline:
        time.sleep(0.1)
    [job] = _sync_jobs(api, iid)
    assert wait_job(api, h, str(job.id))["status"] == "succeeded"
