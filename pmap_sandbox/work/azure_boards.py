"""Azure Boards work items: create (``$Bug`` etc.) and update with JSON Patch, read by id.

Create and update take ``Content-Type: application/json-patch+json`` (415 otherwise) and a list of
``add``/``replace``/``remove`` operations on ``/fields/<reference name>``. States follow the Agile
process (Bug: New, Active, Resolved, Closed); a value outside the allowed list fails with the
``TF401320`` rule error, as does a missing title. ``noperm`` may read but not save work items.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work._base import Reply, iso_z, json_response, now, state
from pmap_sandbox.work.azure_devops import (
    PROJECT_NAME,
    AdoCall,
    authenticate,
    check_project,
    identity_ref,
    require_version,
    vss_error,
)

STATES: dict[str, tuple[str, ...]] = {  # Agile process: type -> allowed states, first is initial
    "Bug": ("New", "Active", "Resolved", "Closed"),
    "Task": ("New", "Active", "Closed", "Removed"),
    "User Story": ("New", "Active", "Resolved", "Closed", "Removed"),
    "Feature": ("New", "Active", "Resolved", "Closed", "Removed"),
    "Epic": ("New", "Active", "Resolved", "Closed", "Removed"),
    "Issue": ("Active", "Closed"),
}
WRITABLE = frozenset({
    "System.Title", "System.Description", "System.State", "System.Reason", "System.Tags", "System.AssignedTo",
    "System.AreaPath", "System.IterationPath", "System.History", "Microsoft.VSTS.Common.Priority",
    "Microsoft.VSTS.Common.Severity", "Microsoft.VSTS.TCM.ReproSteps", "Microsoft.VSTS.Common.ResolvedReason",
    "Microsoft.VSTS.Common.AcceptanceCriteria",
})
PATCH_TYPE = "application/json-patch+json"


class Boards:
    """Work items of one organisation set (per server, per vendor key)."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.ids: itertools.count[int] = itertools.count(1)


def _rule_error(field: str) -> Response:
    return vss_error(400, f"TF401320: Rule Error for field {field}. Error code: Required, HasValues, "
                          "LimitedToValues, AllowsOldValue, InvalidEmpty.", "RuleValidationException")


async def _patch_document(request: Request) -> list[dict[str, Any]]:
    """The JSON Patch body, or the vendor's 415/400."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype != PATCH_TYPE:
        raise Reply(vss_error(415, f'The request indicated a Content-Type of "{ctype}" for method type '
                                   f'"{request.method}" which is not supported. Valid content types for this '
                                   f'method are: {PATCH_TYPE}.', "VssRequestContentTypeNotSupportedException"))
    try:
        ops = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        ops = None
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise Reply(vss_error(400, "You must pass a valid patch document in the body of the request.",
                              "VssPropertyValidationException"))
    return ops


def _apply(fields: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    """Apply field operations in order; unknown fields and operations fail like the service."""
    for op in ops:
        path = str(op.get("path", ""))
        if not path.startswith("/fields/"):
            raise Reply(vss_error(400, f"The path '{path}' is not supported by this operation.",
                                  "VssPropertyValidationException"))
        name = path[len("/fields/"):]
        if name not in WRITABLE:
            raise Reply(vss_error(400, f"TF51535: Cannot find field {name}.", "WorkItemFieldInvalidException"))
        kind = op.get("op")
        if kind in ("add", "replace"):
            fields[name] = op.get("value")
        elif kind == "remove":
            fields.pop(name, None)
        else:
            raise Reply(vss_error(400, f"The JSON Patch operation '{kind}' is not supported here.",
                                  "VssPropertyValidationException"))


def _validate(fields: dict[str, Any]) -> None:
    if not str(fields.get("System.Title") or "").strip():
        raise Reply(_rule_error("Title"))
    if fields.get("System.State") not in STATES[fields["System.WorkItemType"]]:
        raise Reply(_rule_error("State"))


def _item_json(call: AdoCall, item: dict[str, Any]) -> dict[str, Any]:
    url = f"{call.project_url()}/_apis/wit/workItems/{item['id']}"
    fields = {k: v for k, v in item["fields"].items() if k != "System.History"}
    return {"id": item["id"], "rev": item["rev"], "fields": fields, "url": url, "_links": {
        "self": {"href": url}, "workItemUpdates": {"href": f"{url}/updates"},
        "workItemRevisions": {"href": f"{url}/revisions"}, "workItemComments": {"href": f"{url}/comments"},
        "html": {"href": f"{call.root}/{PROJECT_NAME}/_workitems/edit/{item['id']}"},
        "workItemType": {"href": f"{call.project_url()}/_apis/wit/workItemTypes/"
                                 f"{item['fields']['System.WorkItemType']}"},
        "fields": {"href": f"{call.project_url()}/_apis/wit/fields"}}}


def _stamp_state(fields: dict[str, Any], before: str | None) -> None:
    stamp = iso_z(now())
    if fields["System.State"] != before:
        fields["Microsoft.VSTS.Common.StateChangeDate"] = stamp
        if before is not None:  # the Agile process's default reason for each transition
            reasons = {"Resolved": "Fixed", "Closed": "Verified" if before == "Resolved" else "Fixed",
                       "Active": "Reactivated" if before in ("Resolved", "Closed") else "Approved"}
            fields["System.Reason"] = reasons.get(fields["System.State"], "New")
        if fields["System.State"] == "Closed":
            fields["Microsoft.VSTS.Common.ClosedDate"] = stamp


def register(router: APIRouter, key: str) -> None:
    """Add the work item routes."""

    def boards(request: Request) -> Boards:
        return state(request, key, Boards)

    def find(call: AdoCall, request: Request, item_id: int) -> dict[str, Any]:
        item = boards(request).items.get(item_id)
        if item is None:
            raise Reply(vss_error(404, f"TF401232: Work item {item_id} does not exist, or you do not have "
                                       "permissions to read it.", "WorkItemUnauthorizedAccessException"))
        return item

    @router.post("/{org}/{project}/_apis/wit/workitems/${work_item_type}")
    async def create_item(request: Request, org: str, project: str, work_item_type: str) -> Response:
        call = await authenticate(key, request, org)
        check_project(project)
        require_version(request)
        type_name = next((t for t in STATES if t.lower() == work_item_type.lower()), None)
        if type_name is None:
            return vss_error(404, f"VS402323: Work item type {work_item_type} does not exist in project "
                                  f"{project} or you do not have permission to access it.",
                             "WorkItemTypeNotFoundException")
        ops = await _patch_document(request)
        stamp, who = iso_z(now()), identity_ref(call)
        fields: dict[str, Any] = {
            "System.AreaPath": PROJECT_NAME, "System.TeamProject": PROJECT_NAME,
            "System.IterationPath": PROJECT_NAME, "System.WorkItemType": type_name,
            "System.State": STATES[type_name][0], "System.Reason": "New", "System.CreatedDate": stamp,
            "System.CreatedBy": who, "System.ChangedDate": stamp, "System.ChangedBy": who,
            "System.CommentCount": 0, "Microsoft.VSTS.Common.Priority": 2,
        }
        if type_name == "Bug":
            fields["Microsoft.VSTS.Common.Severity"] = "3 - Medium"
        _apply(fields, ops)
        _validate(fields)
        _stamp_state(fields, None)
        if call.caller.noperm:
            return vss_error(403, "TF237111: The current user does not have permissions to save work items "
                                  "under the specified area path.", "WorkItemUnauthorizedAccessException")
        item_id = next(boards(request).ids)
        item: dict[str, Any] = {"id": item_id, "rev": 1, "fields": fields}
        boards(request).items[item_id] = item
        return json_response(200, _item_json(call, item))

    async def read(request: Request, org: str, item_id: int, project: str | None) -> Response:
        call = await authenticate(key, request, org)
        if project is not None:
            check_project(project)
        require_version(request)
        return json_response(200, _item_json(call, find(call, request, item_id)))

    async def write(request: Request, org: str, item_id: int, project: str | None) -> Response:
        call = await authenticate(key, request, org)
        if project is not None:
            check_project(project)
        require_version(request)
        item = find(call, request, item_id)
        ops = await _patch_document(request)
        fields = dict(item["fields"])
        before = fields["System.State"]
        _apply(fields, ops)
        _validate(fields)
        _stamp_state(fields, before)
        if call.caller.noperm:
            return vss_error(403, "TF237111: The current user does not have permissions to save work items "
                                  "under the specified area path.", "WorkItemUnauthorizedAccessException")
        fields["System.ChangedDate"], fields["System.ChangedBy"] = iso_z(now()), identity_ref(call)
        item["fields"], item["rev"] = fields, item["rev"] + 1
        return json_response(200, _item_json(call, item))

    in_project = "/{org}/{project}/_apis/wit/workitems/{item_id:int}"
    in_org = "/{org}/_apis/wit/workitems/{item_id:int}"

    @router.get(in_project)
    async def get_project_item(request: Request, org: str, project: str, item_id: int) -> Response:
        return await read(request, org, item_id, project)

    @router.get(in_org)
    async def get_item(request: Request, org: str, item_id: int) -> Response:
        return await read(request, org, item_id, None)

    @router.patch(in_project)
    async def update_project_item(request: Request, org: str, project: str, item_id: int) -> Response:
        return await write(request, org, item_id, project)

    @router.patch(in_org)
    async def update_item(request: Request, org: str, item_id: int) -> Response:
        return await write(request, org, item_id, None)
