"""In-memory Jira data: projects, issue types, the simplified workflow, issues and webhooks.

Shapes follow the Jira Cloud platform REST API (``Issue``, ``IssueTransition``, ``StatusDetails``,
``StatusCategory``, ``UserPermission``). API v3 carries descriptions and comments in Atlassian
Document Format (ADF); v2 carries plain strings, so the store keeps text and renders per version.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pmap_sandbox.work._base import iso_ms, now


@dataclass(frozen=True)
class Project:
    id: str
    key: str
    name: str
    type_key: str  # software | service_desk


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category_id: int
    category_key: str  # new | indeterminate | done
    category_name: str
    color: str


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    to: str  # status id


PROJECTS = (
    Project("10000", "SEC", "Security", "software"),
    Project("10010", "ITH", "IT Help Desk", "service_desk"),
)
ISSUE_TYPES: dict[str, str] = {
    "10001": "Task", "10002": "Bug", "10003": "Story",
    "10010": "[System] Incident", "10011": "[System] Service request",
}
STATUSES: dict[str, Status] = {s.id: s for s in (
    Status("10000", "To Do", 2, "new", "To Do", "blue-gray"),
    Status("3", "In Progress", 4, "indeterminate", "In Progress", "yellow"),
    Status("10001", "Done", 3, "done", "Done", "green"),
)}
# the "simplified workflow": every status reachable from every other (global transitions)
TRANSITIONS = (Transition("11", "To Do", "10000"), Transition("21", "In Progress", "3"),
               Transition("31", "Done", "10001"))

# (id, key, name, type); the keys PMAP asks for, the admin ones it must not hold, and common others
PERMISSIONS: dict[str, tuple[str, str, str]] = {
    "ADMINISTER": ("0", "Administer Jira", "GLOBAL"),
    "SYSTEM_ADMIN": ("44", "Administer the system", "GLOBAL"),
    "BROWSE_PROJECTS": ("10", "Browse Projects", "PROJECT"),
    "CREATE_ISSUES": ("11", "Create Issues", "PROJECT"),
    "EDIT_ISSUES": ("12", "Edit Issues", "PROJECT"),
    "ASSIGN_ISSUES": ("13", "Assign Issues", "PROJECT"),
    "RESOLVE_ISSUES": ("14", "Resolve Issues", "PROJECT"),
    "ADD_COMMENTS": ("15", "Add Comments", "PROJECT"),
    "DELETE_ISSUES": ("16", "Delete Issues", "PROJECT"),
    "CLOSE_ISSUES": ("18", "Close Issues", "PROJECT"),
    "CREATE_ATTACHMENTS": ("19", "Create Attachments", "PROJECT"),
    "WORK_ON_ISSUES": ("20", "Work On Issues", "PROJECT"),
    "LINK_ISSUES": ("21", "Link Issues", "PROJECT"),
    "ADMINISTER_PROJECTS": ("23", "Administer Projects", "PROJECT"),
    "MOVE_ISSUES": ("25", "Move Issues", "PROJECT"),
    "TRANSITION_ISSUES": ("46", "Transition Issues", "PROJECT"),
}
ADMIN_PERMISSIONS = frozenset({"ADMINISTER", "SYSTEM_ADMIN", "ADMINISTER_PROJECTS"})
READ_ONLY = frozenset({"BROWSE_PROJECTS"})

WEBHOOK_EVENTS = frozenset({
    "jira:issue_created", "jira:issue_updated", "jira:issue_deleted",
    "comment_created", "comment_updated", "comment_deleted",
    "issuelink_created", "issuelink_deleted", "worklog_created", "worklog_updated", "worklog_deleted",
    "project_created", "project_updated", "project_deleted",
})


def held_permissions(noperm: bool, admin: bool) -> frozenset[str]:
    """The permission keys a caller holds: all (admin), browse only (noperm), else all but admin ones."""
    if noperm:
        return READ_ONLY
    if admin:
        return frozenset(PERMISSIONS)
    return frozenset(PERMISSIONS) - ADMIN_PERMISSIONS


@dataclass
class Comment:
    id: str
    body: str
    author: str
    created: datetime


@dataclass
class Issue:
    id: str
    key: str
    project: Project
    type_id: str
    summary: str
    description: str | None
    labels: list[str]
    priority: str
    reporter: str
    status_id: str = "10000"
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)
    resolution: str | None = None
    resolution_date: datetime | None = None
    comments: list[Comment] = field(default_factory=list)
    request_type_id: str | None = None  # set for Jira Service Management customer requests


@dataclass
class Webhook:
    id: int
    name: str
    url: str
    events: list[str]
    filters: dict[str, str]
    exclude_body: bool
    secret: str
    enabled: bool
    updated_by: str
    updated_at: datetime


class JiraState:
    """One Jira site's issues and webhooks (per server, per vendor key)."""

    def __init__(self) -> None:
        self.issues: dict[str, Issue] = {}
        self.webhooks: dict[int, Webhook] = {}
        self._issue_ids = itertools.count(10001)
        self._hook_ids = itertools.count(1)
        self._comment_ids = itertools.count(10100)
        self._numbers: dict[str, itertools.count[int]] = {}

    def project(self, ref: str | None) -> Project | None:
        """A project by key or id."""
        return next((p for p in PROJECTS if ref in (p.key, p.id)), None)

    def add_issue(self, project: Project, **kw: Any) -> Issue:
        """Store a new issue with the project's next key."""
        counter = self._numbers.setdefault(project.key, itertools.count(1))
        issue = Issue(id=str(next(self._issue_ids)), key=f"{project.key}-{next(counter)}", project=project, **kw)
        self.issues[issue.key] = issue
        return issue

    def issue(self, ref: str) -> Issue | None:
        """An issue by key or id."""
        if ref in self.issues:
            return self.issues[ref]
        return next((i for i in self.issues.values() if i.id == ref), None)

    def add_comment(self, issue: Issue, body: str, author: str) -> Comment:
        """Append a comment to ``issue``."""
        comment = Comment(str(next(self._comment_ids)), body, author, now())
        issue.comments.append(comment)
        issue.updated = now()
        return comment

    def add_webhook(self, **kw: Any) -> Webhook:
        """Register a webhook."""
        hook = Webhook(id=next(self._hook_ids), **kw)
        self.webhooks[hook.id] = hook
        return hook


# ---- rendering ----------------------------------------------------------------------------------

def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document (one paragraph per line)."""
    paragraphs = [{"type": "paragraph", "content": [{"type": "text", "text": line}]}
                  for line in text.split("\n") if line]
    return {"type": "doc", "version": 1, "content": paragraphs}


def adf_text(doc: Any) -> str | None:
    """The text of an ADF document (inverse of :func:`adf`); None when ``doc`` is not ADF."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or not isinstance(doc.get("content"), list):
        return None
    lines: list[str] = []
    for block in doc["content"]:
        parts = [n.get("text", "") for n in block.get("content", []) if isinstance(n, dict)] \
            if isinstance(block, dict) else []
        lines.append("".join(str(p) for p in parts))
    return "\n".join(lines)


def status_json(site: str, status: Status) -> dict[str, Any]:
    """``StatusDetails`` with its ``statusCategory``."""
    return {
        "self": f"{site}/rest/api/2/status/{status.id}",
        "description": "",
        "iconUrl": f"{site}/images/icons/statuses/generic.png",
        "name": status.name,
        "id": status.id,
        "statusCategory": {
            "self": f"{site}/rest/api/2/statuscategory/{status.category_id}",
            "id": status.category_id,
            "key": status.category_key,
            "colorName": status.color,
            "name": status.category_name,
        },
    }


def project_json(site: str, project: Project) -> dict[str, Any]:
    """A project reference as embedded in an issue."""
    return {"self": f"{site}/rest/api/2/project/{project.id}", "id": project.id, "key": project.key,
            "name": project.name, "projectTypeKey": project.type_key, "simplified": False}


def user_json(site: str, name: str, cloud: bool) -> dict[str, Any]:
    """A user reference (Cloud: accountId; Server/DC: name and key)."""
    ident = {"accountId": account_id(name), "accountType": "atlassian"} if cloud else {"name": name, "key": name}
    return {"self": f"{site}/rest/api/2/user", **ident, "emailAddress": name if "@" in name else f"{name}@example.com",
            "displayName": name.split("@")[0].replace(".", " ").title(), "active": True, "timeZone": "Etc/UTC"}


def account_id(name: str) -> str:
    """A stable Atlassian-style account id for a user name."""
    return f"5b10a2844c20165700ede{zlib.crc32(name.encode()) % 100000:05d}"


def text_field(text: str | None, api_version: str) -> Any:
    """A rich text field rendered for the API version (v3: ADF, v2: string)."""
    if text is None:
        return None
    return adf(text) if api_version == "3" else text


def issue_json(site: str, issue: Issue, api_version: str, cloud: bool) -> dict[str, Any]:
    """An ``Issue`` as returned by ``GET /issue/{key}``."""
    status = STATUSES[issue.status_id]
    return {
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": issue.id,
        "self": f"{site}/rest/api/{api_version}/issue/{issue.id}",
        "key": issue.key,
        "fields": {
            "summary": issue.summary,
            "description": text_field(issue.description, api_version),
            "issuetype": {"self": f"{site}/rest/api/2/issuetype/{issue.type_id}", "id": issue.type_id,
                          "name": ISSUE_TYPES[issue.type_id], "subtask": False},
            "project": project_json(site, issue.project),
            "status": status_json(site, status),
            "labels": list(issue.labels),
            "priority": {"self": f"{site}/rest/api/2/priority/3", "name": issue.priority, "id": "3"},
            "reporter": user_json(site, issue.reporter, cloud),
            "created": iso_ms(issue.created),
            "updated": iso_ms(issue.updated),
            "resolution": ({"self": f"{site}/rest/api/2/resolution/10000", "id": "10000",
                            "name": issue.resolution} if issue.resolution else None),
            "resolutiondate": iso_ms(issue.resolution_date) if issue.resolution_date else None,
            "statuscategorychangedate": iso_ms(issue.updated),
            "comment": {
                "comments": [comment_json(site, issue, c, api_version, cloud) for c in issue.comments],
                "maxResults": len(issue.comments), "total": len(issue.comments), "startAt": 0,
            },
        },
    }


def comment_json(site: str, issue: Issue, comment: Comment, api_version: str, cloud: bool) -> dict[str, Any]:
    """A ``Comment``."""
    author = user_json(site, comment.author, cloud)
    return {"self": f"{site}/rest/api/{api_version}/issue/{issue.id}/comment/{comment.id}", "id": comment.id,
            "author": author, "updateAuthor": author, "body": text_field(comment.body, api_version),
            "created": iso_ms(comment.created), "updated": iso_ms(comment.created), "jsdPublic": True}


def transition_json(site: str, transition: Transition) -> dict[str, Any]:
    """An ``IssueTransition`` (simplified workflow: global, no screen)."""
    return {"id": transition.id, "name": transition.name, "to": status_json(site, STATUSES[transition.to]),
            "hasScreen": False, "isGlobal": True, "isInitial": False, "isAvailable": True,
            "isConditional": False, "isLooped": False}


def webhook_json(site: str, hook: Webhook) -> dict[str, Any]:
    """A webhook as the Jira webhooks REST API (1.0) shows it; the secret is never returned."""
    return {"self": f"{site}/rest/webhooks/1.0/webhook/{hook.id}", "name": hook.name, "url": hook.url,
            "excludeBody": hook.exclude_body, "filters": dict(hook.filters), "events": list(hook.events),
            "enabled": hook.enabled, "lastUpdatedUser": hook.updated_by,
            "lastUpdatedDisplayName": hook.updated_by.split("@")[0],
            "lastUpdated": int(hook.updated_at.timestamp() * 1000)}
