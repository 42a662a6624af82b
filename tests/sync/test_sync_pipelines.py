"""Pipeline syncs through the API against the sandbox: each security report of the latest completed run is
imported with its own scope, a second sync creates nothing, artifact downloads redirected to the storage
host carry no credential, a vendor error fails the job at its step with no secret, and the decrypt is
audited with purpose pipeline_sync."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pmap.audit.models import AuditEvent
from pmap.findings.models import Job
from pmap.sync import pipelines
from pmap_sandbox.server import SandboxServer
from pmap_sandbox.work import github_store, gitlab_store
from pmap_sandbox.work._artifacts import gitlab_sast_report, sarif_report, zip_of
from tests.conftest import Api, without_actor

from .conftest import pipeline_integration, sync, vendor_state

PIPELINES = ["github", "gitlab_ci"]
EVERY_PIPELINE = [*PIPELINES, "azure_pipelines", "jenkins"]
#: the scopes each vendor's sync imports into: the sandbox's report plus the one each test adds
SCOPES = {
    "github": ["main/codeql-sarif/results.sarif", "main/semgrep-sarif/semgrep.sarif"],
    "gitlab_ci": ["main/secret-detection/gl-secret-detection-report.json", "main/semgrep-sast/gl-sast-report.json"],
}


def add_second_report(sandbox: SandboxServer, vendor: str) -> None:
    """A second security report in the latest completed run of acme/webapp."""
    now = datetime.now(UTC)
    if vendor == "github":
        gh = vendor_state(sandbox, vendor, github_store.GitHubState)
        run = gh.runs[gh.repos["acme/webapp"].id * 10 + 1]
        report = sarif_report("Semgrep", rule_id="python.flask.security.xss", path="app/templates.py", line=7)
        run.artifacts.append(github_store.Artifact(run.id * 100 + 9, run.id, "semgrep-sarif",
                                                   zip_of({"semgrep.sarif": report}), False, now))
    else:
        gl = vendor_state(sandbox, vendor, gitlab_store.GitLabState)
        pipeline = max((p for p in gl.pipelines.values() if p.status == "success"
                        and p.project.path_with_namespace == "acme/webapp"), key=lambda p: p.id)
        pipeline.jobs.append(gitlab_store.Job(pipeline.id * 10 + 9, "secret-detection", "test", "success",
                                              {"gl-secret-detection-report.json": gitlab_sast_report()}, now))


def scopes(api: Api, headers: dict[str, str], iid: str) -> list[str]:
    page = api.client.get("/api/v1/findings", headers=headers, params={"integration_id": iid, "limit": 500}).json()
    return sorted(f["scope"] for f in page["items"])


@pytest.mark.parametrize("vendor", PIPELINES)
def test_a_sync_imports_each_report_of_the_latest_completed_run_with_its_own_scope(
        api: Api, fresh: SandboxServer, vendor: str) -> None:
    headers = api.token(role="operator")
    add_second_report(fresh, vendor)
    iid, _ = pipeline_integration(api, headers, fresh, vendor)

    first = sync(api, headers, iid)
    assert first["status"] == "succeeded", first
    result = first["result"]
    assert sorted(i["scope"] for i in result["imports"]) == SCOPES[vendor]
    assert result["created"] == 2 and result["parsed"] == 2 and result["rejected"] == []
    assert [r["scope"] for r in result["runs"]] == ["main"]  # the repository's default branch
    assert scopes(api, headers, iid) == SCOPES[vendor]

    again = sync(api, headers, iid)
    assert again["status"] == "succeeded", again
    assert again["result"]["created"] == 0 and again["result"]["updated"] == 2
    assert scopes(api, headers, iid) == SCOPES[vendor]
    out = api.client.get(f"/api/v1/integrations/{iid}", headers=headers).json()
    assert out["last_sync"]["status"] == "ok" and out["last_synced_at"] is not None
    assert out["last_sync"]["summary"]["imports"] == again["result"]["imports"]


@pytest.mark.parametrize("vendor", PIPELINES)
def test_configured_branches_are_each_read(api: Api, fresh: SandboxServer, vendor: str) -> None:
    headers = api.token(role="operator")
    iid, _ = pipeline_integration(api, headers, fresh, vendor, branches=["main", "release"])
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded", job
    # the sandbox's runs are all on main: release has no completed run, so nothing of it is imported
    assert job["result"]["runs"] == [{"ref": "main", "scope": "main", "reports": 1},
                                     {"ref": "release", "scope": "release", "reports": 0}]
    assert job["result"]["created"] == 1


@pytest.mark.parametrize("vendor", PIPELINES)
def test_the_storage_host_redirect_carries_no_credential(api: Api, fresh: SandboxServer, vendor: str) -> None:
    headers = api.token(role="operator")
    iid, credentials = pipeline_integration(api, headers, fresh, vendor)
    if vendor == "github":  # artifact archives always live on GitHub's storage host
        seen = vendor_state(fresh, vendor, github_store.GitHubState).blob_requests
    else:  # GitLab with artifacts in object storage (gitlab.com): a redirect to a pre-signed S3 URL
        gl = vendor_state(fresh, vendor, gitlab_store.GitLabState)
        gl.object_storage = True
        seen = gl.object_requests
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded" and job["result"]["created"] == 1, job
    assert seen, "the artifact was not downloaded from the storage host"
    for got in seen:
        assert not {"authorization", "private-token", "cookie"} & set(got), got
        for secret in credentials.values():
            assert secret not in json.dumps(got)


@pytest.mark.parametrize("vendor", EVERY_PIPELINE)
def test_a_vendor_error_fails_the_job_at_its_step_with_no_secret(api: Api, fresh: SandboxServer,
                                                                  vendor: str) -> None:
    headers = api.token(role="operator")
    # "echo": the sandbox's error answer repeats the credential it got
    iid, credentials = pipeline_integration(api, headers, fresh, vendor, "echo")
    job = sync(api, headers, iid)
    assert job["status"] == "failed", job
    assert job["error"]["step"] in ("http", "auth", "permission", "response"), job["error"]
    out = api.client.get(f"/api/v1/integrations/{iid}", headers=headers).json()
    assert out["last_sync"]["status"] == "failed" and out["last_sync"]["step"] == job["error"]["step"]
    with api.state.sessions() as session:
        rows = [json.dumps({"params": j.params, "error": j.error}) for j in session.scalars(select(Job))]
        events = [json.dumps(e.detail) for e in session.scalars(select(AuditEvent).where(
            AuditEvent.integration_id == uuid.UUID(iid)))]
    everything = json.dumps([job, out, rows, events])
    for secret in credentials.values():
        if "echo" in secret:
            assert secret not in everything


@pytest.mark.parametrize("vendor", EVERY_PIPELINE)
def test_the_decrypt_of_a_pipeline_sync_is_audited_with_purpose_pipeline_sync(api: Api, fresh: SandboxServer,
                                                                              vendor: str) -> None:
    headers = api.token(role="operator")
    iid, _ = pipeline_integration(api, headers, fresh, vendor)
    assert sync(api, headers, iid)["status"] == "succeeded"
    with api.state.sessions() as session:
        events = {(e.action, e.purpose, e.outcome) for e in session.scalars(select(AuditEvent).where(
            AuditEvent.integration_id == uuid.UUID(iid)))}
        params = [j.params for j in session.scalars(select(Job).where(Job.kind == "sync"))]
    assert ("credentials.decrypt", "pipeline_sync", "success") in events
    assert ("pipeline.sync", "pipeline_sync", "success") in events
    # ids, never a secret
    assert [without_actor(p) for p in params] == [{"integration_id": iid, "full": False, "purpose": "pipeline_sync"}]


@pytest.mark.parametrize(("vendor", "scope"), [
    ("azure_pipelines", "latest/CodeAnalysisLogs/semgrep.sarif"),  # no branch configured: the latest run
    ("jenkins", "latest/reports/semgrep.sarif"),  # a job's last completed build
])
def test_azure_pipelines_and_jenkins_sync_their_latest_completed_run(api: Api, fresh: SandboxServer, vendor: str,
                                                                     scope: str) -> None:
    headers = api.token(role="operator")
    iid, _ = pipeline_integration(api, headers, fresh, vendor)
    first = sync(api, headers, iid)
    assert first["status"] == "succeeded", first
    assert [i["scope"] for i in first["result"]["imports"]] == [scope] and first["result"]["created"] == 1
    again = sync(api, headers, iid)
    assert again["status"] == "succeeded" and again["result"]["created"] == 0, again


def test_azure_pipelines_reads_each_configured_branch(api: Api, fresh: SandboxServer) -> None:
    headers = api.token(role="operator")
    iid, _ = pipeline_integration(api, headers, fresh, "azure_pipelines", branches=["main", "feature"])
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded", job
    assert [(r["scope"], r["reports"]) for r in job["result"]["runs"]] == [("main", 1), ("feature", 0)]
    assert [i["scope"] for i in job["result"]["imports"]] == ["main/CodeAnalysisLogs/semgrep.sarif"]


def test_a_broken_report_is_listed_as_rejected_and_the_others_import(api: Api, fresh: SandboxServer) -> None:
    headers = api.token(role="operator")
    gh = vendor_state(fresh, "github", github_store.GitHubState)
    run = gh.runs[gh.repos["acme/webapp"].id * 10 + 1]
    broken = sarif_report("Semgrep")[:-40]  # cut short: a SARIF log that ends mid-object
    run.artifacts.append(github_store.Artifact(run.id * 100 + 8, run.id, "broken-sarif",
                                               zip_of({"broken.sarif": broken}), False, datetime.now(UTC)))
    iid, _ = pipeline_integration(api, headers, fresh, "github")
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert [i["scope"] for i in result["imports"]] == ["main/codeql-sarif/results.sarif"]
    assert [(r["scope"], r["code"]) for r in result["rejected"]] == [("main/broken-sarif/broken.sarif",
                                                                     "report_invalid")]
    assert result["created"] == 1 and any("broken.sarif" in w for w in result["warnings"])


def test_the_catalog_lists_pipeline_reports_exactly_for_the_pipeline_vendors_a_sync_reads(api: Api) -> None:
    types = {t["vendor"]: t for t in api.client.get("/api/v1/connector-types", headers=api.token()).json()}
    fetching = sorted(v for v, t in types.items() if "fetch_pipeline_reports" in t["operations"])
    assert fetching == sorted(EVERY_PIPELINE)  # each synced end to end above
    assert not any("sync_findings" in types[v]["operations"] for v in fetching)


def test_artifacts_are_imported_from_the_spool_which_is_gone_after_the_sync(
        api: Api, fresh: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = api.token(role="operator")
    iid, _ = pipeline_integration(api, headers, fresh, "github")
    seen: list[tuple[Path, int]] = []
    real = pipelines.run_import

    def recording(engine: Any, target: Any, path: Path, options: Any, **kw: Any) -> Any:
        seen.append((path, path.stat().st_size))
        return real(engine, target, path, options, **kw)

    monkeypatch.setattr(pipelines, "run_import", recording)
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded" and job["result"]["created"] == 1, job
    [(path, size)] = seen
    assert path.parent.name.startswith("pmap-pipeline-sync-") and size > 0  # a report unpacked into the spool
    assert not path.parent.exists()  # removed with everything in it
