"""A verified GitHub ``workflow_run`` (completed) or GitLab pipeline event (success/failed) on a CI/CD
integration starts a sync of that run (actor: the webhook); a forged or unsigned delivery starts nothing, nor
does a run that has not finished; while a sync runs, the delivery records why it was skipped."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from pmap.core.db import transaction, utcnow
from pmap.findings.jobs import KIND_SYNC
from pmap.findings.models import Job
from pmap.integrations.models import Integration
from pmap.jobs.lease import runner_id
from pmap.webhooks import triggers
from pmap_sandbox.server import SandboxServer
from pmap_sandbox.work import github_store, gitlab_store
from tests.conftest import Api, without_actor
from tests.webhooks.conftest import deliveries, settle, signed

from .conftest import pipeline_integration, vendor_state, wait_job

SCHEME = {"github": "github", "gitlab_ci": "gitlab_token"}
EVENT = {"github": "workflow_run", "gitlab_ci": "Pipeline Hook"}
REPORT = {"github": "codeql-sarif/results.sarif", "gitlab_ci": "semgrep-sast/gl-sast-report.json"}


def finished_run(sandbox: SandboxServer, vendor: str) -> int:
    """The id of acme/webapp's completed run (GitHub) or successful pipeline (GitLab) in the sandbox."""
    if vendor == "github":
        gh = vendor_state(sandbox, vendor, github_store.GitHubState)
        return gh.repos["acme/webapp"].id * 10 + 1
    gl = vendor_state(sandbox, vendor, gitlab_store.GitLabState)
    return max(p.id for p in gl.pipelines.values()
               if p.status == "success" and p.project.path_with_namespace == "acme/webapp")


def event_of(vendor: str, run: int, *, done: bool = True, branch: str = "main") -> dict[str, Any]:
    """The vendor's documented payload of a run that finished (or is still going)."""
    if vendor == "github":
        return {"action": "completed" if done else "in_progress",
                "workflow_run": {"id": run, "head_branch": branch, "status": "completed" if done else "in_progress",
                                 "conclusion": "success" if done else None},
                "repository": {"full_name": "acme/webapp"}}
    return {"object_kind": "pipeline",
            "object_attributes": {"id": run, "ref": branch, "status": "success" if done else "running",
                                  "finished_at": "2024-05-01 10:01:00 UTC" if done else None},
            "project": {"path_with_namespace": "acme/webapp"}}


def hooked(api: Api, sandbox: SandboxServer, vendor: str) -> tuple[dict[str, str], str, str]:
    """An admin's headers, a pipeline integration, and its webhook secret."""
    h = api.token()
    iid, _ = pipeline_integration(api, h, sandbox, vendor)
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code in (200, 201)
    return h, iid, api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"]


def deliver(api: Api, iid: str, vendor: str, secret: str, doc: dict[str, Any]) -> int:
    body = json.dumps(doc).encode()
    headers = signed(SCHEME[vendor], body, secret, event=EVENT[vendor])
    return api.client.post(f"/hooks/{iid}", content=body, headers=headers).status_code


def sync_jobs(api: Api, iid: str) -> list[Job]:
    with api.state.sessions() as session:
        return [j for j in session.scalars(select(Job).where(Job.kind == KIND_SYNC))
                if j.params.get("integration_id") == iid]


@pytest.mark.parametrize("vendor", ["github", "gitlab_ci"])
def test_a_verified_finished_run_event_syncs_that_run(api: Api, fresh: SandboxServer, vendor: str) -> None:
    h, iid, secret = hooked(api, fresh, vendor)
    run = finished_run(fresh, vendor)
    assert deliver(api, iid, vendor, secret, event_of(vendor, run)) == 202
    settle(api)
    [delivery] = deliveries(api.client, h, iid)
    assert delivery["outcome"] == "processed" and f"sync of run {run} queued" in delivery["reason"], delivery
    [job] = sync_jobs(api, iid)
    assert job.actor == f"webhook:{vendor}"
    assert without_actor(job.params) == {"integration_id": iid, "full": True, "purpose": "pipeline_sync",
                                         "run": str(run), "branch": "main"}
    done = wait_job(api, h, str(job.id))
    assert done["status"] == "succeeded", done
    assert done["result"]["runs"] == [{"ref": str(run), "scope": "main", "reports": 1}]
    assert [i["scope"] for i in done["result"]["imports"]] == [f"main/{REPORT[vendor]}"]
    assert done["result"]["created"] == 1


@pytest.mark.parametrize("vendor", ["github", "gitlab_ci"])
def test_a_forged_or_unfinished_run_event_starts_nothing(api: Api, fresh: SandboxServer, vendor: str) -> None:
    h, iid, secret = hooked(api, fresh, vendor)
    run = finished_run(fresh, vendor)
    assert deliver(api, iid, vendor, "forged-" + secret[7:], event_of(vendor, run)) == 401
    assert deliver(api, iid, vendor, secret, event_of(vendor, run, done=False)) == 202
    settle(api)
    assert sync_jobs(api, iid) == []


def test_an_unsigned_delivery_starts_nothing(api: Api, fresh: SandboxServer) -> None:
    # no secret configured: outside production an unsigned delivery is accepted, but it is not verified
    h = api.token()
    iid, _ = pipeline_integration(api, h, fresh, "github")
    run = finished_run(fresh, "github")
    body = json.dumps(event_of("github", run)).encode()
    resp = api.client.post(f"/hooks/{iid}", content=body, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "workflow_run",
        "X-GitHub-Delivery": str(uuid.uuid4())})
    assert resp.status_code == 202, resp.text
    settle(api)
    assert sync_jobs(api, iid) == []
    [delivery] = deliveries(api.client, h, iid)
    assert delivery["verification"] == "unsigned" and "sync" not in (delivery["reason"] or "")


def test_a_run_event_while_a_sync_runs_is_skipped_and_says_why(api: Api, fresh: SandboxServer) -> None:
    h, iid, secret = hooked(api, fresh, "github")
    with api.state.sessions() as session:
        row = session.get(Integration, uuid.UUID(iid))
        assert row is not None
        organization_id = row.organization_id
    now = utcnow()
    with transaction(api.state.sessions) as session:  # a sync this process is running
        running = Job(organization_id=organization_id, kind=KIND_SYNC, status="running",
                      params={"integration_id": iid, "full": False}, progress={}, runner=runner_id(), actor="test",
                      created_at=now, updated_at=now, started_at=now)
        session.add(running)
    assert deliver(api, iid, "github", secret, event_of("github", finished_run(fresh, "github"))) == 202
    settle(api)
    [delivery] = deliveries(api.client, h, iid)
    assert delivery["outcome"] == "processed"
    assert "skipped" in delivery["reason"] and str(running.id) in delivery["reason"], delivery
    assert [j.id for j in sync_jobs(api, iid)] == [running.id]


ORG, IID = uuid.uuid4(), uuid.uuid4()


@pytest.mark.parametrize(("vendor", "scheme", "event", "doc", "expected"), [
    pytest.param("github", "github", "workflow_run",
                 {"action": "completed", "workflow_run": {"id": 7, "head_branch": "main"}}, ("7", "main"),
                 id="gh-done"),
    pytest.param("github", "github", "workflow_run",
                 {"action": "requested", "workflow_run": {"id": 7, "head_branch": "main"}}, None, id="gh-requested"),
    pytest.param("github", "github", "push",
                 {"action": "completed", "workflow_run": {"id": 7}}, None, id="gh-other-event"),
    pytest.param("github_issues", "github", "workflow_run",
                 {"action": "completed", "workflow_run": {"id": 7}}, None, id="gh-not-a-pipeline-type"),
    pytest.param("github", "github", "workflow_run",
                 {"action": "completed", "workflow_run": {"id": "7/../../x"}}, None, id="gh-id-not-a-number"),
    pytest.param("github", "github", "workflow_run",
                 {"action": "completed", "workflow_run": {"id": True}}, None, id="gh-id-bool"),
    pytest.param("github", "github", "workflow_run",
                 {"action": "completed", "workflow_run": {"id": 7, "head_branch": "ma\u0000in\n"}}, ("7", "main"),
                 id="gh-branch-cleaned"),
    pytest.param("gitlab_ci", "gitlab_token", "Pipeline Hook",
                 {"object_kind": "pipeline", "object_attributes": {"id": 9, "ref": "dev", "status": "failed"}},
                 ("9", "dev"), id="gl-failed"),
    pytest.param("gitlab_ci", "gitlab_token", "Pipeline Hook",
                 {"object_kind": "pipeline", "object_attributes": {"id": 9, "status": "running"}}, None,
                 id="gl-running"),
    pytest.param("gitlab_ci", "gitlab_token", "Pipeline Hook", ["not", "an", "object"], None, id="gl-array"),
])
def test_the_finished_run_is_read_from_the_documented_payload_only(
        vendor: str, scheme: str, event: str, doc: Any, expected: tuple[str, str | None] | None) -> None:
    run = triggers.run_finished(ORG, IID, vendor, scheme, event, json.dumps(doc).encode())
    assert (None if run is None else (run.run, run.branch)) == expected


def test_a_body_that_is_not_json_reads_as_no_run() -> None:
    assert triggers.run_finished(ORG, IID, "github", "github", "workflow_run", b"\xff{not json") is None


def test_a_run_of_another_workflow_than_the_configured_one_imports_nothing(api: Api, fresh: SandboxServer) -> None:
    h = api.token()
    iid, _ = pipeline_integration(api, h, fresh, "github", workflow="release.yml")
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code in (200, 201)
    secret = api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"]
    assert deliver(api, iid, "github", secret, event_of("github", finished_run(fresh, "github"))) == 202
    settle(api)
    [job] = sync_jobs(api, iid)
    done = wait_job(api, h, str(job.id))
    assert done["status"] == "succeeded" and done["result"]["imports"] == [], done
