"""In-memory GitLab data: projects, issues, pipelines, jobs with artifacts, and project hooks.

Projects ``acme/webapp`` (id 1) and ``acme/api`` (id 2) each have a finished pipeline whose
``semgrep-sast`` job carries a ``gl-sast-report.json`` (raw ``sast`` artifact and inside the
``archive`` zip), a ``build`` job without artifacts, and a running pipeline.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pmap_sandbox.work._artifacts import gitlab_sast_report, zip_of
from pmap_sandbox.work._base import iso_z, now

USER_ID = 42
USERNAME = "pmap-bot"
SHA = "b83d6e391c22777fca1ed3012fce84f633d7fed0"
HOOK_EVENTS = ("push_events", "tag_push_events", "issues_events", "confidential_issues_events",
               "note_events", "confidential_note_events", "merge_requests_events", "job_events",
               "pipeline_events", "wiki_page_events", "deployment_events", "feature_flag_events",
               "releases_events", "emoji_events", "resource_access_token_events")


@dataclass(frozen=True)
class Project:
    id: int
    namespace: str
    path: str

    @property
    def path_with_namespace(self) -> str:
        return f"{self.namespace}/{self.path}"


@dataclass
class Job:
    id: int
    name: str
    stage: str
    status: str
    files: dict[str, bytes]  # artifact path -> content; empty when the job kept no artifacts
    created: datetime


@dataclass
class Pipeline:
    id: int
    iid: int
    project: Project
    status: str
    created: datetime
    jobs: list[Job] = field(default_factory=list)


@dataclass
class Hook:
    id: int
    project: Project
    url: str
    token: str
    name: str
    events: dict[str, bool]
    enable_ssl_verification: bool
    created: datetime
    deliveries: list[dict[str, Any]] = field(default_factory=list)


class GitLabState:
    """One simulated GitLab instance (per server, per vendor key)."""

    def __init__(self) -> None:
        self.projects = {p.id: p for p in (Project(1, "acme", "webapp"), Project(2, "acme", "api"))}
        self.issues: dict[int, dict[int, dict[str, Any]]] = {pid: {} for pid in self.projects}
        self.pipelines: dict[int, Pipeline] = {}
        #: artifacts kept in object storage with proxy_download off (as on gitlab.com): a download answers 302
        #: to a pre-signed URL on the storage host, which records the headers it got
        self.object_storage = False
        self.objects: dict[str, bytes] = {}
        self.object_requests: list[dict[str, str]] = []
        self.hooks: dict[int, Hook] = {}
        self._issue_ids = itertools.count(9001)
        self._hook_ids = itertools.count(1)
        self._note_ids = itertools.count(30001)
        for project in self.projects.values():
            self._seed(project)

    def _seed(self, project: Project) -> None:
        done_at = now() - timedelta(hours=6)
        report = gitlab_sast_report()
        sast = Job(project.id * 1000 + 1, "semgrep-sast", "test", "success",
                   {"gl-sast-report.json": report}, done_at)
        build = Job(project.id * 1000 + 2, "build", "build", "success", {}, done_at)
        done = Pipeline(project.id * 100 + 1, 11, project, "success", done_at, [build, sast])
        running = Pipeline(project.id * 100 + 2, 12, project, "running", now() - timedelta(minutes=3),
                           [Job(project.id * 1000 + 3, "build", "build", "running", {}, now())])
        self.pipelines.update({done.id: done, running.id: running})

    def project(self, ref: str) -> Project | None:
        """A project by numeric id or ``namespace/path``."""
        if ref.isdigit():
            return self.projects.get(int(ref))
        return next((p for p in self.projects.values() if p.path_with_namespace == ref), None)

    def job(self, project: Project, job_id: int) -> tuple[Pipeline, Job] | None:
        """A job of ``project`` and its pipeline."""
        for pipeline in self.pipelines.values():
            if pipeline.project == project:
                for job in pipeline.jobs:
                    if job.id == job_id:
                        return pipeline, job
        return None

    def next_issue_id(self) -> int:
        return next(self._issue_ids)

    def next_hook_id(self) -> int:
        return next(self._hook_ids)

    def next_note_id(self) -> int:
        return next(self._note_ids)


def user_json(web: str) -> dict[str, Any]:
    """The ``UserBasic`` behind every sandbox token."""
    return {"id": USER_ID, "username": USERNAME, "name": "PMAP Bot", "state": "active", "locked": False,
            "avatar_url": None, "web_url": f"{web}/{USERNAME}"}


def project_json(web: str, project: Project, access_level: int) -> dict[str, Any]:
    """A ``Project`` with the caller's ``permissions``."""
    return {"id": project.id, "name": project.path, "path": project.path,
            "path_with_namespace": project.path_with_namespace,
            "name_with_namespace": f"{project.namespace} / {project.path}", "default_branch": "main",
            "visibility": "private", "web_url": f"{web}/{project.path_with_namespace}",
            "namespace": {"id": 7, "name": project.namespace, "path": project.namespace, "kind": "group",
                          "full_path": project.namespace},
            "permissions": {"project_access": {"access_level": access_level, "notification_level": 3},
                            "group_access": None}}


def pipeline_json(web: str, pipeline: Pipeline, detailed: bool = False) -> dict[str, Any]:
    """A ``PipelineBasic`` (``detailed`` adds the fields of ``GET /pipelines/:id``)."""
    body: dict[str, Any] = {
        "id": pipeline.id, "iid": pipeline.iid, "project_id": pipeline.project.id, "sha": SHA, "ref": "main",
        "status": pipeline.status, "source": "push", "created_at": iso_z(pipeline.created),
        "updated_at": iso_z(pipeline.created),
        "web_url": f"{web}/{pipeline.project.path_with_namespace}/-/pipelines/{pipeline.id}",
    }
    if detailed:
        finished = pipeline.status in ("success", "failed", "canceled")
        body.update({"before_sha": "0" * 40, "tag": False, "yaml_errors": None, "user": user_json(web),
                     "started_at": iso_z(pipeline.created),
                     "finished_at": iso_z(pipeline.created + timedelta(minutes=4)) if finished else None,
                     "duration": 240 if finished else None, "queued_duration": 1, "coverage": None,
                     "detailed_status": {"group": pipeline.status, "text": pipeline.status,
                                         "label": "passed" if pipeline.status == "success" else pipeline.status}})
    return body


def job_json(web: str, pipeline: Pipeline, job: Job) -> dict[str, Any]:
    """A ``Job`` with its ``artifacts`` list (an ``archive`` zip plus one raw report per file)."""
    artifacts: list[dict[str, Any]] = []
    if job.files:
        archive = zip_of(job.files)
        artifacts.append({"file_type": "archive", "size": len(archive), "filename": "artifacts.zip",
                          "file_format": "zip"})
        artifacts += [{"file_type": "sast", "size": len(content), "filename": name, "file_format": "raw"}
                      for name, content in job.files.items()]
    finished = job.status in ("success", "failed", "canceled")
    body: dict[str, Any] = {
        "id": job.id, "status": job.status, "stage": job.stage, "name": job.name, "ref": "main", "tag": False,
        "coverage": None, "allow_failure": False, "created_at": iso_z(job.created),
        "started_at": iso_z(job.created), "finished_at": iso_z(job.created + timedelta(minutes=2)) if finished
        else None, "duration": 120.0 if finished else None, "queued_duration": 0.5, "user": user_json(web),
        "commit": {"id": SHA, "short_id": SHA[:8], "title": "Update dependencies"},
        "pipeline": {"id": pipeline.id, "project_id": pipeline.project.id, "ref": "main", "sha": SHA,
                     "status": pipeline.status},
        "web_url": f"{web}/{pipeline.project.path_with_namespace}/-/jobs/{job.id}", "artifacts": artifacts,
        "artifacts_expire_at": iso_z(job.created + timedelta(days=30)) if job.files else None,
        "runner": None, "tag_list": [],
    }
    if job.files:
        body["artifacts_file"] = {"filename": "artifacts.zip", "size": artifacts[0]["size"]}
    return body


def hook_json(hook: Hook) -> dict[str, Any]:
    """A ``ProjectHook``; the token is never returned."""
    return {"id": hook.id, "url": hook.url, "name": hook.name, "description": "", "project_id": hook.project.id,
            **hook.events, "push_events_branch_filter": "", "enable_ssl_verification": hook.enable_ssl_verification,
            "repository_update_events": False, "alert_status": "executable", "disabled_until": None,
            "url_variables": [], "custom_webhook_template": "", "created_at": iso_z(hook.created)}
