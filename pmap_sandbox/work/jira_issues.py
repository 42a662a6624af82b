"""Jira issues: create, read, edit, comment and transition (platform REST API v2 and v3).

Validation messages are Jira's own (``errors`` keyed by field). API v3 requires rich text fields
(``description``, comment ``body``) in Atlassian Document Format and refuses plain strings; v2 is
the other way round. Permissions follow the caller's scenario: ``noperm`` may browse but not create,
edit, comment or transition.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import jira_store as store
from pmap_sandbox.work._base import Reply, json_response, now, read_json
from pmap_sandbox.work.jira import JiraSite, authenticate, jira_error, site_state, site_url

PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
CREATE_FIELDS = frozenset({"project", "summary", "issuetype", "description", "labels", "priority",
                           "assignee", "reporter", "components", "duedate"})
NOT_FOUND = "Issue does not exist or you do not have permission to see it."


def _invalid_json(reason: str) -> Response:
    return jira_error(400, [reason])


def _rich_text(value: Any, version: str, field: str, errors: dict[str, str]) -> str | None:
    """The text of a rich text field, recording Jira's error when its form does not fit the version."""
    if value is None:
        return None
    if version == "3":
        text = store.adf_text(value)
        if text is None:
            errors[field] = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
        return text
    if not isinstance(value, str):
        errors[field] = "Operation value must be a string"
        return None
    return value


def _labels(value: Any, errors: dict[str, str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors["labels"] = "Operation value must be an array of strings"
        return []
    for label in value:
        if " " in label:
            errors["labels"] = f"The label '{label}' contains spaces which is invalid."
    return list(value)


def _issue_type(value: Any, errors: dict[str, str]) -> str | None:
    if not isinstance(value, dict) or not (value.get("id") or value.get("name")):
        errors["issuetype"] = "Specify an issue type"
        return None
    for type_id, name in store.ISSUE_TYPES.items():
        if value.get("id") == type_id or value.get("name") == name:
            return type_id
    errors["issuetype"] = "The issue type selected is invalid."
    return None


def _priority(value: Any, errors: dict[str, str]) -> str:
    if value is None:
        return "Medium"
    name = value.get("name") if isinstance(value, dict) else None
    if name not in PRIORITIES:
        errors["priority"] = "The priority selected is invalid."
        return "Medium"
    return str(name)


def _unknown_fields(fields: dict[str, Any], allowed: frozenset[str], errors: dict[str, str]) -> None:
    for name in fields:
        if name not in allowed:
            errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."


def register(router: APIRouter, site: JiraSite, version: str) -> None:
    """Add the issue routes of one API version."""
    prefix = f"/rest/api/{version}/issue"

    def find(request: Request, ref: str) -> store.Issue:
        issue = site_state(site, request).issue(ref)
        if issue is None:
            raise Reply(jira_error(404, [NOT_FOUND]))
        return issue

    @router.post(prefix)
    async def create_issue(request: Request) -> Response:
        caller = await authenticate(site, request)
        body = await read_json(request, _invalid_json)
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            fields = {}
        errors: dict[str, str] = {}
        jira = site_state(site, request)
        raw_project = fields.get("project")
        project_ref: dict[str, Any] = raw_project if isinstance(raw_project, dict) else {}
        project = jira.project(project_ref.get("key") or project_ref.get("id"))
        if project is None:
            errors["project"] = "Specify a valid project ID or key"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        type_id = _issue_type(fields.get("issuetype"), errors)
        description = _rich_text(fields.get("description"), version, "description", errors)
        labels = _labels(fields.get("labels"), errors)
        priority = _priority(fields.get("priority"), errors)
        _unknown_fields(fields, CREATE_FIELDS, errors)
        if errors or project is None or type_id is None:
            return jira_error(400, [], errors)
        if "CREATE_ISSUES" not in store.held_permissions(caller.noperm, caller.admin):
            return jira_error(403, ["You do not have permission to create issues in this project."])
        issue = jira.add_issue(project, type_id=type_id, summary=str(summary), description=description,
                               labels=labels, priority=priority, reporter=caller.principal)
        url = site_url(site, request)
        return json_response(201, {"id": issue.id, "key": issue.key,
                                   "self": f"{url}/rest/api/{version}/issue/{issue.id}"})

    @router.get(prefix + "/{ref}")
    async def get_issue(request: Request, ref: str) -> Response:
        await authenticate(site, request)
        issue = find(request, ref)
        return json_response(200, store.issue_json(site_url(site, request), issue, version, site.cloud))

    @router.put(prefix + "/{ref}")
    async def edit_issue(request: Request, ref: str) -> Response:
        caller = await authenticate(site, request)
        issue = find(request, ref)
        body = await read_json(request, _invalid_json)
        fields = body.get("fields", {}) if isinstance(body, dict) else {}
        if not isinstance(fields, dict):
            return jira_error(400, ["Can not deserialize instance of fields"])
        if "EDIT_ISSUES" not in store.held_permissions(caller.noperm, caller.admin):
            return jira_error(400, ["You do not have permission to edit issues in this project."])
        errors: dict[str, str] = {}
        _unknown_fields(fields, frozenset({"summary", "description", "labels", "priority"}), errors)
        description = _rich_text(fields.get("description"), version, "description", errors)
        labels = _labels(fields.get("labels"), errors) if "labels" in fields else issue.labels
        priority = _priority(fields["priority"], errors) if "priority" in fields else issue.priority
        if "summary" in fields and (not isinstance(fields["summary"], str) or not fields["summary"].strip()):
            errors["summary"] = "You must specify a summary of the issue."
        if errors:
            return jira_error(400, [], errors)
        issue.summary = fields.get("summary", issue.summary)
        issue.description = description if "description" in fields else issue.description
        issue.labels, issue.priority, issue.updated = labels, priority, now()
        return Response(status_code=204)

    @router.post(prefix + "/{ref}/comment")
    async def add_comment(request: Request, ref: str) -> Response:
        caller = await authenticate(site, request)
        issue = find(request, ref)
        body = await read_json(request, _invalid_json)
        errors: dict[str, str] = {}
        text = _rich_text(body.get("body") if isinstance(body, dict) else None, version, "comment", errors)
        if text is None and not errors:
            errors["comment"] = "Comment body can not be empty!"
        if errors:
            return jira_error(400, [], errors)
        if "ADD_COMMENTS" not in store.held_permissions(caller.noperm, caller.admin):
            return jira_error(400, ["You do not have the permission to comment on this issue."])
        comment = site_state(site, request).add_comment(issue, str(text), caller.principal)
        return json_response(201, store.comment_json(site_url(site, request), issue, comment, version, site.cloud))

    @router.get(prefix + "/{ref}/transitions")
    async def get_transitions(request: Request, ref: str) -> Response:
        caller = await authenticate(site, request)
        find(request, ref)
        url = site_url(site, request)
        allowed = "TRANSITION_ISSUES" in store.held_permissions(caller.noperm, caller.admin)
        wanted = request.query_params.get("transitionId")
        transitions = [store.transition_json(url, t) for t in store.TRANSITIONS
                       if allowed and (wanted is None or t.id == wanted)]
        return json_response(200, {"expand": "transitions", "transitions": transitions})

    @router.post(prefix + "/{ref}/transitions")
    async def do_transition(request: Request, ref: str) -> Response:
        caller = await authenticate(site, request)
        issue = find(request, ref)
        body = await read_json(request, _invalid_json)
        wanted = body.get("transition") if isinstance(body, dict) else None
        if not isinstance(wanted, dict) or not (wanted.get("id") or wanted.get("name")):
            return jira_error(400, ["Missing 'transition' identifier"])
        if "TRANSITION_ISSUES" not in store.held_permissions(caller.noperm, caller.admin):
            return jira_error(400, ["You do not have permission to transition this issue."])
        transition = next((t for t in store.TRANSITIONS
                           if str(wanted.get("id")) == t.id or wanted.get("name") == t.name), None)
        if transition is None:
            return jira_error(400, [f"Transition id '{wanted.get('id') or wanted.get('name')}' "
                                    "is not valid for this issue."])
        issue.status_id, issue.updated = transition.to, now()
        done = store.STATUSES[transition.to].category_key == "done"
        issue.resolution = "Done" if done else None
        issue.resolution_date = now() if done else None
        for change in (body.get("update") or {}).get("comment", []) if isinstance(body.get("update"), dict) else []:
            added = change.get("add", {}) if isinstance(change, dict) else {}
            text = store.adf_text(added.get("body")) if version == "3" else added.get("body")
            if text:
                site_state(site, request).add_comment(issue, str(text), caller.principal)
        return Response(status_code=204)
