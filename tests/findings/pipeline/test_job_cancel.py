"""Cancelling a job: a running import stops at its next progress report and keeps nothing; a finished job is a
409; only an operator of the job's organization may cancel it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pmap.app import create_app
from pmap.core.settings import Settings
from pmap.findings.jobs import job_threads
from pmap.findings.models import Finding
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, nessus_report, upload, wait_job

REPORT = nessus_report([{"plugin": n, "host": f"10.0.{n // 250}.{n % 250}"} for n in range(2500)])


@pytest.fixture
def background(settings: Settings) -> Any:
    """An app whose every upload imports as a background job."""
    with TestClient(create_app(settings.model_copy(update={"import_background_bytes": 0})),
                    raise_server_exceptions=False) as client:
        yield Api(client)


def _gate(api: Api, monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Semaphore, threading.Event]:
    """Hold every job at its first progress report until released; ``held`` counts the jobs held."""
    held, release = threading.Semaphore(0), threading.Event()
    runner = api.app.state.jobs
    original: Callable[[uuid.UUID], Callable[[dict[str, Any]], None]] = runner._progress

    def gated(job_id: uuid.UUID) -> Callable[[dict[str, Any]], None]:
        report = original(job_id)

        def hold(progress: dict[str, Any]) -> None:
            held.release()
            release.wait(30)
            report(progress)

        return hold

    monkeypatch.setattr(runner, "_progress", gated)
    return held, release


def test_a_running_import_cancelled_stops_and_keeps_nothing(background: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = background
    h = api.token(role="operator")
    iid = create_integration(api, h)
    held, release = _gate(api, monkeypatch)
    r = upload(api, iid, REPORT, h)
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]["id"]
    assert held.acquire(timeout=30), "the import never reported progress"
    cancelled = api.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=h)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "running"
    release.set()
    job = wait_job(api, job_id, h)
    assert job["status"] == "failed" and job["error"]["code"] == "job_cancelled", job
    assert "cancelled by operator test-operator" in job["error"]["message"]
    with api.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Finding)) == 0  # an import is atomic: nothing kept
    again = api.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=h)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_only_an_operator_of_the_jobs_organization_cancels_it(background: Api) -> None:
    api = background
    h = api.token(role="operator")
    iid = create_integration(api, h)
    job_id = upload(api, iid, nessus_report([{"plugin": 1}]), h).json()["job"]["id"]
    assert api.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=api.token(role="viewer")).status_code == 403
    assert api.client.post(f"/api/v1/jobs/{job_id}/cancel",
                           headers=api.token(org="other", role="operator")).status_code == 404
    wait_job(api, job_id, h)
    assert api.client.post(f"/api/v1/jobs/{uuid.uuid4()}/cancel", headers=h).status_code == 404



def test_a_queued_job_cancelled_ends_at_once_and_never_runs(background: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = background
    h = api.token(role="operator")
    held, release = _gate(api, monkeypatch)
    threads = job_threads(api.state.engine)
    busy = [upload(api, create_integration(api, h), REPORT, h).json()["job"]["id"] for _ in range(threads)]
    for _ in busy:  # every worker holds a large import: the next job can only wait in the queue
        assert held.acquire(timeout=30)
    small = create_integration(api, h)
    queued = upload(api, small, nessus_report([{"plugin": 7}]), h).json()["job"]["id"]
    assert api.client.get(f"/api/v1/jobs/{queued}", headers=h).json()["status"] == "queued"
    cancelled = api.client.post(f"/api/v1/jobs/{queued}/cancel", headers=h).json()
    assert cancelled["status"] == "failed" and cancelled["error"]["code"] == "job_cancelled"
    release.set()
    assert all(wait_job(api, job, h)["status"] == "succeeded" for job in busy)
    assert wait_job(api, queued, h)["error"]["code"] == "job_cancelled"  # it never ran
    assert api.client.get("/api/v1/findings", headers=h, params={"integration_id": small}).json()["items"] == []
