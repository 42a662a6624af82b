"""In-memory GitHub data: private repositories, issues, workflow runs, artifacts and repo hooks.

Two private repositories exist (``acme/webapp`` and ``acme/api``); each has a completed CodeQL run
with a live SARIF artifact and an expired one, and a run still in progress. JSON builders follow
the REST API's ``issue``, ``workflow-run``, ``artifact`` and ``hook`` schemas.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pmap_sandbox.work._artifacts import sarif_report, zip_of
from pmap_sandbox.work._base import iso_z, now

LOGIN = "pmap-bot"
USER_ID = 583231
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


@dataclass(frozen=True)
class Repo:
    id: int
    owner: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Artifact:
    id: int
    run_id: int
    name: str
    content: bytes
    expired: bool
    created: datetime


@dataclass
class Run:
    id: int
    repo: Repo
    name: str
    path: str
    status: str
    conclusion: str | None
    run_number: int
    created: datetime
    artifacts: list[Artifact] = field(default_factory=list)


@dataclass
class Hook:
    id: int
    repo: Repo
    events: list[str]
    active: bool
    url: str
    content_type: str
    secret: str
    insecure_ssl: str
    created: datetime
    updated: datetime
    last_response: dict[str, Any] = field(default_factory=lambda: {"code": None, "status": "unused",
                                                                   "message": None})
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def node_id(prefix: str, number: int) -> str:
    """A GraphQL node id of the modern form (``I_kwDO...``)."""
    return prefix + base64.b64encode(f"{prefix}{number}".encode()).decode().rstrip("=")


class GitHubState:
    """One simulated GitHub (per server, per vendor key)."""

    def __init__(self) -> None:
        self.repos = {r.full_name: r for r in (Repo(1296269, "acme", "webapp"), Repo(1296270, "acme", "api"))}
        self.issues: dict[int, dict[int, dict[str, Any]]] = {r.id: {} for r in self.repos.values()}
        self.hooks: dict[int, Hook] = {}
        self.runs: dict[int, Run] = {}
        self.blobs: dict[str, bytes] = {}
        #: the headers of each request the storage host got (a test asserts no credential reached it)
        self.blob_requests: list[dict[str, str]] = []
        self._issue_ids = itertools.count(1347000001)
        self._hook_ids = itertools.count(12345601)
        self._comment_ids = itertools.count(1146825001)
        for repo in self.repos.values():
            self._seed_runs(repo)

    def _seed_runs(self, repo: Repo) -> None:
        base = now() - timedelta(days=2)
        done = Run(repo.id * 10 + 1, repo, "CodeQL", ".github/workflows/codeql.yml", "completed", "success", 41, base)
        done.artifacts = [
            Artifact(repo.id * 10 + 1, done.id, "codeql-sarif", zip_of({"results.sarif": sarif_report("CodeQL")}),
                     False, base),
            Artifact(repo.id * 10 + 2, done.id, "codeql-sarif-old", zip_of({"results.sarif": b"{}"}), True,
                     base - timedelta(days=120)),
        ]
        running = Run(repo.id * 10 + 2, repo, "CI", ".github/workflows/ci.yml", "in_progress", None, 42,
                      now() - timedelta(minutes=5))
        self.runs.update({done.id: done, running.id: running})

    def next_issue_id(self) -> int:
        return next(self._issue_ids)

    def next_hook_id(self) -> int:
        return next(self._hook_ids)

    def next_comment_id(self) -> int:
        return next(self._comment_ids)

    def artifact(self, repo: Repo, artifact_id: int) -> Artifact | None:
        """An artifact of ``repo`` by id."""
        for run in self.runs.values():
            if run.repo == repo:
                for artifact in run.artifacts:
                    if artifact.id == artifact_id:
                        return artifact
        return None


def user_json(api: str) -> dict[str, Any]:
    """The ``simple-user`` behind every sandbox token."""
    return {"login": LOGIN, "id": USER_ID, "node_id": node_id("U_kgDO", USER_ID),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{USER_ID}?v=4", "gravatar_id": "",
            "url": f"{api}/users/{LOGIN}", "html_url": f"https://github.com/{LOGIN}", "type": "User",
            "site_admin": False}


def repo_json(api: str, repo: Repo, perms: dict[str, bool] | None = None) -> dict[str, Any]:
    """A ``repository`` (private)."""
    body: dict[str, Any] = {
        "id": repo.id, "node_id": node_id("R_kgDO", repo.id), "name": repo.name, "full_name": repo.full_name,
        "private": True, "visibility": "private", "owner": {**user_json(api), "login": repo.owner,
                                                            "type": "Organization"},
        "html_url": f"https://github.com/{repo.full_name}", "url": f"{api}/repos/{repo.full_name}",
        "default_branch": "main", "hooks_url": f"{api}/repos/{repo.full_name}/hooks",
    }
    if perms is not None:
        body["permissions"] = perms
    return body


def run_json(api: str, run: Run) -> dict[str, Any]:
    """A ``workflow-run``; ``path`` carries the ref the workflow file was read from, as in the REST
    reference's example (``.github/workflows/build.yml@main``)."""
    root = f"{api}/repos/{run.repo.full_name}/actions/runs/{run.id}"
    return {
        "id": run.id, "name": run.name, "node_id": node_id("WFR_kwLO", run.id), "head_branch": "main",
        "head_sha": SHA, "path": f"{run.path}@main", "display_title": f"{run.name} on main",
        "run_number": run.run_number,
        "event": "push", "status": run.status, "conclusion": run.conclusion, "workflow_id": run.repo.id + 7,
        "check_suite_id": run.id + 9, "url": root, "html_url": f"https://github.com/{run.repo.full_name}"
        f"/actions/runs/{run.id}", "created_at": iso_z(run.created), "updated_at": iso_z(run.created),
        "run_attempt": 1, "run_started_at": iso_z(run.created), "actor": user_json(api),
        "triggering_actor": user_json(api), "jobs_url": f"{root}/jobs", "logs_url": f"{root}/logs",
        "artifacts_url": f"{root}/artifacts", "cancel_url": f"{root}/cancel", "rerun_url": f"{root}/rerun",
        "workflow_url": f"{api}/repos/{run.repo.full_name}/actions/workflows/{run.repo.id + 7}",
        "repository": repo_json(api, run.repo), "head_repository": repo_json(api, run.repo),
    }


def artifact_json(api: str, repo: Repo, artifact: Artifact) -> dict[str, Any]:
    """An ``artifact``; ``archive_download_url`` answers a redirect to the zip."""
    url = f"{api}/repos/{repo.full_name}/actions/artifacts/{artifact.id}"
    return {
        "id": artifact.id, "node_id": node_id("MDg6QXJ0aWZhY3Q", artifact.id), "name": artifact.name,
        "size_in_bytes": len(artifact.content), "url": url, "archive_download_url": f"{url}/zip",
        "expired": artifact.expired, "created_at": iso_z(artifact.created),
        "updated_at": iso_z(artifact.created), "expires_at": iso_z(artifact.created + timedelta(days=90)),
        "digest": "sha256:" + hashlib.sha256(artifact.content).hexdigest(),
        "workflow_run": {"id": artifact.run_id, "repository_id": repo.id, "head_repository_id": repo.id,
                         "head_branch": "main", "head_sha": SHA},
    }


def hook_json(api: str, hook: Hook) -> dict[str, Any]:
    """A repository ``hook``; a set secret shows as asterisks."""
    root = f"{api}/repos/{hook.repo.full_name}/hooks/{hook.id}"
    config: dict[str, Any] = {"content_type": hook.content_type, "insecure_ssl": hook.insecure_ssl, "url": hook.url}
    if hook.secret:
        config["secret"] = "********"  # noqa: S105  (the mask GitHub answers in place of a hook secret)
    return {"type": "Repository", "id": hook.id, "name": "web", "active": hook.active, "events": list(hook.events),
            "config": config, "updated_at": iso_z(hook.updated), "created_at": iso_z(hook.created), "url": root,
            "test_url": f"{root}/test", "ping_url": f"{root}/pings", "deliveries_url": f"{root}/deliveries",
            "last_response": dict(hook.last_response)}
