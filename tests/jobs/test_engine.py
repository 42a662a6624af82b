"""The job engine without a broker: leases and attempts, a restart that loses nothing, uploads kept in the
database, one sync per integration enforced by the database."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from pmap.auth.models import Organization
from pmap.core.db import transaction, utcnow
from pmap.findings.jobs import job_threads
from pmap.findings.models import Job
from pmap.jobs import lease
from pmap.jobs.models import JobUpload
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, nessus_report, upload, wait_job
from tests.findings.pipeline.test_job_cancel import _gate

REPORT = nessus_report([{"plugin": i, "host": f"10.9.0.{i % 5}", "severity": i % 5} for i in range(30)])


def _job(api: Api, **values: object) -> uuid.UUID:
    with transaction(api.state.sessions) as s:
        org = s.scalars(select(Organization)).first()
        if org is None:
            org = Organization(name="acme")
            s.add(org)
            s.flush()
        fields: dict[str, object] = {"kind": "import", "status": "queued", "params": {}, "progress": {},
                                     "runner": lease.runner_id(), "actor": "token:t", "created_at": utcnow(),
                                     "updated_at": utcnow()}
        fields.update(values)
        job = Job(organization_id=org.id, **fields)
        s.add(job)
        s.flush()
        return job.id


def test_a_claim_takes_a_queued_job_once_and_counts_the_attempt(api: Api) -> None:
    sessions = api.state.sessions
    job_id = _job(api)
    first = lease.claim(sessions, job_id, "host-a:1", 30)
    assert isinstance(first, lease.Claimed) and first.attempts == 1 and first.taken_over is None
    # another host's delivery of the same job while the first attempt's lease runs: busy, come back later
    again = lease.claim(sessions, job_id, "host-b:2", 30)
    assert isinstance(again, lease.Busy) and 1.0 <= again.retry_after <= 32
    with sessions() as s:
        row = s.get(Job, job_id)
        assert row is not None and row.status == "running" and row.runner == "host-a:1" and row.attempts == 1


def test_a_lapsed_lease_or_a_dead_process_is_taken_over(api: Api) -> None:
    sessions = api.state.sessions
    lapsed = _job(api, status="running", runner="far-host:7", attempts=1,
                  lease_expires_at=utcnow() - timedelta(seconds=1))
    claim = lease.claim(sessions, lapsed, "host-b:2", 30)
    assert isinstance(claim, lease.Claimed) and claim.attempts == 2 and claim.taken_over == "far-host:7"
    dead = _job(api, status="running", runner=f"{socket.gethostname()}:999999999", attempts=1,
                lease_expires_at=utcnow() + timedelta(minutes=5))  # its lease runs, but its process is gone
    claim = lease.claim(sessions, dead, "host-b:2", 30)
    assert isinstance(claim, lease.Claimed) and claim.attempts == 2
    finished = _job(api, status="succeeded")
    assert lease.claim(sessions, finished, "host-b:2", 30) is None


def test_a_heartbeat_renews_its_own_lease_and_hears_a_cancel(api: Api) -> None:
    sessions = api.state.sessions
    job_id = _job(api)
    assert isinstance(lease.claim(sessions, job_id, "host-a:1", 30), lease.Claimed)
    beat = lease.heartbeat(sessions, job_id, "host-a:1", 30, {"phase": "importing", "findings": 5})
    assert beat.held and beat.cancel_requested is None
    with transaction(sessions) as s:
        row = s.get(Job, job_id)
        assert row is not None and row.progress["findings"] == 5
        assert row.lease_expires_at is not None and row.lease_expires_at > utcnow() + timedelta(seconds=20)
        row.cancel_requested = "cancelled by operator o"
    assert lease.heartbeat(sessions, job_id, "host-a:1", 30, None).cancel_requested == "cancelled by operator o"
    # an attempt whose lease another process took hears that it lost it, and writes nothing
    assert not lease.heartbeat(sessions, job_id, "host-z:9", 30, {"phase": "x"}).held
    with sessions() as s:
        assert s.get(Job, job_id).progress["findings"] == 5  # type: ignore[union-attr]


def test_a_restart_loses_no_job(make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch) -> None:
    first = make_api(import_background_bytes=0)
    h = first.token(role="operator")
    held, release = _gate(first, monkeypatch)
    running = [upload(first, create_integration(first, h), REPORT, h).json()["job"]["id"]
               for _ in range(job_threads(first.state.engine))]
    for _ in running:  # every job thread holds an import: the next one waits in the queue
        assert held.acquire(timeout=30)
    queued = upload(first, create_integration(first, h), REPORT, h).json()["job"]["id"]
    with first.state.sessions() as s:  # the queued upload waits in the database, not on this process's disk
        assert s.scalars(select(JobUpload).where(JobUpload.job_id == uuid.UUID(queued))).first() is not None
    assert list((first.state.settings.data_dir / "imports").iterdir()) == []
    stopping = threading.Thread(target=first.client.__exit__, args=(None, None, None))
    stopping.start()  # the service stops while one import runs and another waits
    first.app.state.jobs._stopping.wait(10)
    release.set()
    stopping.join(30)
    with first.state.sessions() as s:
        states = {str(j.id): (j.status, j.attempts) for j in s.scalars(select(Job))}
    assert states == {**{j: ("queued", 1) for j in running}, queued: ("queued", 0)}  # given back; still waiting
    monkeypatch.undo()
    second = make_api(import_background_bytes=0)
    done = [wait_job(second, job, h) for job in (*running, queued)]
    assert [(d["status"], d["attempts"]) for d in done] == [("succeeded", 2)] * len(running) + [("succeeded", 1)]
    assert all(d["result"]["created"] == 30 for d in done)  # the interrupted imports kept nothing the first time
    with second.state.sessions() as s:
        assert s.scalars(select(JobUpload)).all() == []  # each upload went with its finished job


def test_a_jobs_audit_event_the_database_did_not_take_is_written_once_it_answers(
        make_api: Callable[..., Api]) -> None:
    # seen by the fault suite: PostgreSQL restarted as a job ended, and that job's audit event was lost
    from sqlalchemy.exc import OperationalError

    from pmap.audit.models import AuditEvent

    api = make_api(import_background_bytes=0, job_lease_seconds=3)  # a heartbeat every second
    runner = api.app.state.jobs
    real, away = runner._audit, threading.Event()
    away.set()

    class Unreachable:
        def record(self, **kw: object) -> None:
            if away.is_set():
                raise OperationalError("INSERT", {}, Exception("the database is restarting"))
            real.record(**kw)

    runner._audit = Unreachable()
    h = api.token(role="operator")
    job = upload(api, create_integration(api, h), REPORT, h).json()["job"]["id"]
    assert wait_job(api, job, h)["status"] == "succeeded"

    def events() -> list[str]:
        with api.state.sessions() as s:
            return [e.outcome for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "findings.import"))
                    if (e.detail or {}).get("job_id") == job]

    assert events() == []  # not taken while the database was away
    away.clear()
    deadline = utcnow() + timedelta(seconds=20)
    while not events() and utcnow() < deadline:
        threading.Event().wait(0.2)
    assert events() == ["success"]  # written at a heartbeat once it answered, once
    threading.Event().wait(2.5)
    assert events() == ["success"]
