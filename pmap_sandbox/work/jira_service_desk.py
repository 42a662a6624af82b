"""Jira Service Management (``/rest/servicedeskapi``): info, service desks, request types, requests.

This API has its own error shape, ``{"errorMessage": ..., "i18nErrorMessage": {...}}``, and paged
lists (``size``, ``start``, ``limit``, ``isLastPage``, ``values``). ``GET /info`` (anonymous
allowed) answers ``SoftwareInfoDTO`` (``version``, ``platformVersion``, ``buildDate``, ``buildChangeSet``,
``isLicensedForUse``: false under the ``expired`` scenario). Customer requests
are ordinary issues of the service project, so the platform issue routes read and transition them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import jira_store as store
from pmap_sandbox.work._base import Reply, int_param, iso_ms, json_response, read_json
from pmap_sandbox.work.jira import JiraSite, authenticate, site_state, site_url

PREFIX = "/rest/servicedeskapi"
DESK_ID = "1"
DESK_PROJECT = "ITH"
BUILD_DATE = datetime(2024, 11, 4, tzinfo=UTC)
REQUEST_TYPES: dict[str, tuple[str, str, str]] = {  # id -> (name, description, issue type id)
    "10": ("Report a system problem", "Tell us about a problem with a system or service.", "10010"),
    "11": ("Get IT help", "Ask the IT team for help.", "10011"),
}


def sd_error(status: int, message: str, key: str) -> Response:
    """The service desk API's error body."""
    return json_response(status, {"errorMessage": message,
                                  "i18nErrorMessage": {"i18nKey": key, "parameters": []}})


def _date(moment: datetime) -> dict[str, Any]:
    jira = iso_ms(moment)
    return {"iso8601": jira[:19] + jira[-5:], "jira": jira,
            "friendly": moment.strftime("%d/%b/%y %I:%M %p"), "epochMillis": int(moment.timestamp() * 1000)}


def _paged(request: Request, values: list[dict[str, Any]]) -> dict[str, Any]:
    start = int_param(request.query_params.get("start"), 0, low=0, high=10_000)
    limit = int_param(request.query_params.get("limit"), 50, high=100)
    page = values[start:start + limit]
    return {"_expands": [], "size": len(page), "start": start, "limit": limit,
            "isLastPage": start + limit >= len(values),
            "_links": {"self": str(request.url), "base": str(request.base_url).rstrip("/"), "context": ""},
            "values": page}


def _desk_json(site_base: str) -> dict[str, Any]:
    project = next(p for p in store.PROJECTS if p.key == DESK_PROJECT)
    return {"id": DESK_ID, "projectId": project.id, "projectName": project.name, "projectKey": project.key,
            "_links": {"self": f"{site_base}{PREFIX}/servicedesk/{DESK_ID}"}}


def _request_type_json(site_base: str, type_id: str) -> dict[str, Any]:
    name, description, issue_type = REQUEST_TYPES[type_id]
    return {"_expands": ["field"], "id": type_id, "name": name, "description": description, "helpText": "",
            "issueTypeId": issue_type, "serviceDeskId": DESK_ID, "portalId": DESK_ID, "groupIds": ["1"],
            "_links": {"self": f"{site_base}{PREFIX}/servicedesk/{DESK_ID}/requesttype/{type_id}"}}


def _request_json(site_base: str, issue: store.Issue, cloud: bool) -> dict[str, Any]:
    status = store.STATUSES[issue.status_id]
    return {
        "_expands": ["participant", "status", "sla", "requestType", "serviceDesk", "attachment", "action",
                     "comment"],
        "issueId": issue.id, "issueKey": issue.key, "requestTypeId": issue.request_type_id or "",
        "serviceDeskId": DESK_ID, "createdDate": _date(issue.created),
        "reporter": store.user_json(site_base, issue.reporter, cloud),
        "requestFieldValues": [
            {"fieldId": "summary", "label": "Summary", "value": issue.summary},
            {"fieldId": "description", "label": "Description", "value": issue.description or ""},
        ],
        "currentStatus": {"status": status.name, "statusCategory": status.category_key.upper(),
                          "statusDate": _date(issue.updated)},
        "_links": {"jiraRest": f"{site_base}/rest/api/2/issue/{issue.id}",
                   "web": f"{site_base}/servicedesk/customer/portal/{DESK_ID}/{issue.key}",
                   "self": f"{site_base}{PREFIX}/request/{issue.id}"},
    }


def register(router: APIRouter, site: JiraSite) -> None:
    """Add the service desk routes."""

    def check_desk(desk_id: str) -> None:
        if desk_id != DESK_ID:
            raise Reply(sd_error(404, f"The service project with ID {desk_id} does not exist.",
                                 "sd.admin.servicedesk.notfound"))

    @router.get(PREFIX + "/info")
    async def info(request: Request) -> Response:
        # answers anonymously, like serverInfo; credentials, when sent, must still be valid
        caller = await authenticate(site, request) if request.headers.get("authorization") else None
        url = site_url(site, request)
        licensed = caller is None or not caller.expired
        return json_response(200, {"version": "10.4.0", "platformVersion": "1001.0.0",
                                   "buildChangeSet": "f1e2d3c4b5a6", "buildDate": _date(BUILD_DATE),
                                   "isLicensedForUse": licensed,
                                   "_links": {"self": f"{url}{PREFIX}/info"}})

    @router.get(PREFIX + "/servicedesk")
    async def list_desks(request: Request) -> Response:
        caller = await authenticate(site, request)
        desks = [] if caller.noperm else [_desk_json(site_url(site, request))]
        return json_response(200, _paged(request, desks))

    @router.get(PREFIX + "/servicedesk/{desk_id}")
    async def get_desk(request: Request, desk_id: str) -> Response:
        await authenticate(site, request)
        check_desk(desk_id)
        return json_response(200, _desk_json(site_url(site, request)))

    @router.get(PREFIX + "/servicedesk/{desk_id}/requesttype")
    async def list_request_types(request: Request, desk_id: str) -> Response:
        await authenticate(site, request)
        check_desk(desk_id)
        url = site_url(site, request)
        return json_response(200, _paged(request, [_request_type_json(url, t) for t in REQUEST_TYPES]))

    @router.get(PREFIX + "/servicedesk/{desk_id}/requesttype/{type_id}")
    async def get_request_type(request: Request, desk_id: str, type_id: str) -> Response:
        await authenticate(site, request)
        check_desk(desk_id)
        if type_id not in REQUEST_TYPES:
            return sd_error(404, f"The request type with ID {type_id} does not exist.",
                            "sd.requesttype.error.not.found")
        return json_response(200, _request_type_json(site_url(site, request), type_id))

    @router.post(PREFIX + "/request")
    async def create_request(request: Request) -> Response:
        caller = await authenticate(site, request)
        body = await read_json(request, lambda reason: sd_error(400, reason, "sd.request.body.invalid"))
        if not isinstance(body, dict):
            return sd_error(400, "The request body is not valid.", "sd.request.body.invalid")
        check_desk(str(body.get("serviceDeskId", "")))
        type_id = str(body.get("requestTypeId", ""))
        if type_id not in REQUEST_TYPES:
            return sd_error(400, f"The request type with ID {type_id} does not exist.",
                            "sd.requesttype.error.not.found")
        raw_values = body.get("requestFieldValues")
        values: dict[str, Any] = raw_values if isinstance(raw_values, dict) else {}
        summary = values.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            return sd_error(400, "Summary: You must specify a summary of the issue.", "sd.request.field.invalid")
        if caller.noperm:
            return sd_error(403, "You don't have permission to raise requests in this service project.",
                            "sd.request.create.permission.error")
        jira = site_state(site, request)
        project = jira.project(DESK_PROJECT)
        if project is None:  # the desk project is part of the fixed catalogue
            raise RuntimeError(f"the sandbox catalogue lost project {DESK_PROJECT}")
        issue = jira.add_issue(project, type_id=REQUEST_TYPES[type_id][2], summary=summary,
                               description=str(values.get("description") or "") or None, labels=[],
                               priority="Medium", reporter=caller.principal, request_type_id=type_id)
        return json_response(201, _request_json(site_url(site, request), issue, site.cloud))

    @router.get(PREFIX + "/request/{ref}")
    async def get_request(request: Request, ref: str) -> Response:
        await authenticate(site, request)
        issue = site_state(site, request).issue(ref)
        if issue is None or issue.request_type_id is None:
            return sd_error(404, "The request could not be found.", "sd.request.error.not.found")
        return json_response(200, _request_json(site_url(site, request), issue, site.cloud))
