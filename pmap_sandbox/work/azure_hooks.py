"""Azure DevOps service hooks: Web Hooks subscriptions and test notifications.

A subscription (``consumerId`` ``webHooks``, action ``httpRequest``) keeps ``consumerInputs.url``,
``basicAuthUsername``, ``basicAuthPassword`` and optional ``httpHeaders`` (``Name:Value`` lines).
``POST _apis/hooks/testnotifications`` really POSTs a sample event to the URL with those Basic
credentials (nothing is signed: that is the vendor's scheme) and answers the ``Notification`` with
the receiver's status. Notifications (the test one and ``GET .../subscriptions/{id}/notifications/{n}``)
are a preview resource in Microsoft's specs (vsts-rest-api-specs hooks 7.1/7.2, ``x-ms-preview``), so
they refuse an ``api-version`` without ``-preview``; subscriptions are released (``7.1``). Whether the
service answers the test synchronously is not documented (its ``result`` may be ``pending``): here
it is always completed. The password is shown masked. ``noperm`` may not manage subscriptions.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work._base import Reply, iso_z, json_response, now, read_json, state
from pmap_sandbox.work._delivery import send
from pmap_sandbox.work.azure_devops import (
    PROJECT_ID,
    AdoCall,
    authenticate,
    forbidden,
    identity_ref,
    require_version,
    vss_error,
)

PUBLISHERS: dict[str, frozenset[str]] = {
    "tfs": frozenset({"workitem.created", "workitem.updated", "workitem.deleted", "workitem.restored",
                      "workitem.commented", "build.complete", "git.push", "git.pullrequest.created",
                      "git.pullrequest.updated", "git.pullrequest.merged", "tfvc.checkin"}),
    "pipelines": frozenset({"ms.vss-pipelines.run-state-changed-event", "ms.vss-pipelines.stage-state-changed-event",
                            "ms.vss-pipelines.job-state-changed-event"}),
}
MASK = "********"


class Hooks:
    """Subscriptions and notifications (per server, per vendor key)."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.notifications: dict[int, dict[str, Any]] = {}
        self.ids: itertools.count[int] = itertools.count(1)


def _masked(inputs: dict[str, str]) -> dict[str, str]:
    return {k: (MASK if k == "basicAuthPassword" and v else v) for k, v in inputs.items()}


def _validate(body: Any) -> dict[str, Any]:
    """The subscription fields, or the service's 400."""
    if not isinstance(body, dict):
        raise Reply(vss_error(400, "Value cannot be null.\r\nParameter name: subscription", "ArgumentNullException"))
    publisher, event = str(body.get("publisherId", "")), str(body.get("eventType", ""))
    if publisher not in PUBLISHERS:
        raise Reply(vss_error(400, f"Publisher '{publisher}' was not found.", "PublisherNotFoundException"))
    if event not in PUBLISHERS[publisher]:
        raise Reply(vss_error(400, f"Event type '{event}' is not supported by publisher '{publisher}'.",
                              "EventTypeNotFoundException"))
    if body.get("consumerId", "webHooks") != "webHooks" or body.get("consumerActionId", "httpRequest") != "httpRequest":
        raise Reply(vss_error(400, "Only the webHooks consumer with the httpRequest action is simulated.",
                              "ConsumerNotFoundException"))
    raw_inputs = body.get("consumerInputs")
    inputs: dict[str, Any] = raw_inputs if isinstance(raw_inputs, dict) else {}
    raw_publisher = body.get("publisherInputs")
    publisher_inputs: dict[str, Any] = raw_publisher if isinstance(raw_publisher, dict) else {}
    url = str(inputs.get("url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Reply(vss_error(400, "The input value for 'url' is required and must be an absolute URL.",
                              "InputValidationException"))
    return {"publisherId": publisher, "eventType": event, "resourceVersion": str(body.get("resourceVersion") or "1.0"),
            "consumerId": "webHooks", "consumerActionId": "httpRequest",
            "publisherInputs": {str(k): str(v) for k, v in publisher_inputs.items()},
            "consumerInputs": {str(k): str(v) for k, v in inputs.items()}}


def _subscription_json(call: AdoCall, sub: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in sub.items() if k != "consumerInputs"},
            "consumerInputs": _masked(sub["consumerInputs"]),
            "url": f"{call.root}/_apis/hooks/subscriptions/{sub['id']}",
            "_links": {"self": {"href": f"{call.root}/_apis/hooks/subscriptions/{sub['id']}"}}}


def _event(call: AdoCall, details: dict[str, Any], notification_id: int, subscription_id: str | None) -> dict[str, Any]:
    """A sample event payload of the subscribed type."""
    event_type = details["eventType"]
    resource: dict[str, Any] = {"id": 1, "url": f"{call.project_url()}/_apis/wit/workItems/1"}
    if event_type == "build.complete":
        resource = {"id": 345, "buildNumber": "20240501.1", "status": "completed", "result": "succeeded",
                    "url": f"{call.project_url()}/_apis/build/Builds/345"}
    elif event_type.startswith("ms.vss-pipelines"):
        resource = {"run": {"id": 345, "name": "20240501.1", "state": "completed", "result": "succeeded"},
                    "pipeline": {"id": 12, "name": "security-scan"}}
    text = f"Test notification of {event_type} from the Azure DevOps sandbox."
    return {"subscriptionId": subscription_id or "00000000-0000-0000-0000-000000000000",
            "notificationId": notification_id, "id": str(uuid.uuid4()), "eventType": event_type,
            "publisherId": details["publisherId"], "message": {"text": text, "html": text, "markdown": text},
            "detailedMessage": {"text": text, "html": text, "markdown": text}, "resource": resource,
            "resourceVersion": details["resourceVersion"],
            "resourceContainers": {"collection": {"id": "c3d4e5f6-0000-4000-8000-000000000001"},
                                   "account": {"id": "c3d4e5f6-0000-4000-8000-000000000002"},
                                   "project": {"id": PROJECT_ID}},
            "createdDate": iso_z(now())}


def _headers(inputs: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in inputs.get("httpHeaders", "").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            out[name.strip()] = value.strip()
    return out


def register(router: APIRouter, key: str) -> None:
    """Add the service hook routes."""
    root = "/{org}/_apis/hooks"

    def hooks(request: Request) -> Hooks:
        return state(request, key, Hooks)

    async def enter(request: Request, org: str, write: bool = False, preview: bool = False) -> AdoCall:
        call = await authenticate(key, request, org)
        require_version(request, preview=preview)
        if write and call.caller.noperm:
            raise Reply(forbidden(call, "edit service hook subscriptions"))
        return call

    def find(request: Request, sub_id: str) -> dict[str, Any]:
        sub = hooks(request).subscriptions.get(sub_id)
        if sub is None:
            raise Reply(vss_error(404, f"VS1050001: Subscription {sub_id} could not be found.",
                                  "SubscriptionNotFoundException"))
        return sub

    @router.post(root + "/subscriptions")
    async def create_subscription(request: Request, org: str) -> Response:
        call = await enter(request, org, write=True)
        fields = _validate(await read_json(request, lambda r: vss_error(400, r, "VssPropertyValidationException")))
        stamp, who = iso_z(now()), identity_ref(call)
        sub = {"id": str(uuid.uuid4()), "status": "enabled", **fields, "createdBy": who, "createdDate": stamp,
               "modifiedBy": who, "modifiedDate": stamp, "eventDescription": "Any work item",
               "actionDescription": f"To host {urlsplit(fields['consumerInputs']['url']).hostname}"}
        hooks(request).subscriptions[sub["id"]] = sub
        return json_response(200, _subscription_json(call, sub))

    @router.get(root + "/subscriptions")
    async def list_subscriptions(request: Request, org: str) -> Response:
        call = await enter(request, org)
        subs = [_subscription_json(call, s) for s in hooks(request).subscriptions.values()]
        return json_response(200, {"count": len(subs), "value": subs})

    @router.get(root + "/subscriptions/{sub_id}")
    async def get_subscription(request: Request, org: str, sub_id: str) -> Response:
        call = await enter(request, org)
        return json_response(200, _subscription_json(call, find(request, sub_id)))

    @router.put(root + "/subscriptions/{sub_id}")
    async def replace_subscription(request: Request, org: str, sub_id: str) -> Response:
        call = await enter(request, org, write=True)
        sub = find(request, sub_id)
        fields = _validate(await read_json(request, lambda r: vss_error(400, r, "VssPropertyValidationException")))
        if fields["consumerInputs"].get("basicAuthPassword") == MASK:  # the UI sends the mask back unchanged
            fields["consumerInputs"]["basicAuthPassword"] = sub["consumerInputs"].get("basicAuthPassword", "")
        sub.update(fields, modifiedDate=iso_z(now()), modifiedBy=identity_ref(call))
        return json_response(200, _subscription_json(call, sub))

    @router.delete(root + "/subscriptions/{sub_id}")
    async def delete_subscription(request: Request, org: str, sub_id: str) -> Response:
        await enter(request, org, write=True)
        find(request, sub_id)
        del hooks(request).subscriptions[sub_id]
        return Response(status_code=204)

    @router.post(root + "/testnotifications")
    async def test_notification(request: Request, org: str) -> Response:
        call = await enter(request, org, write=True, preview=True)
        body = await read_json(request, lambda r: vss_error(400, r, "VssPropertyValidationException"))
        body = body if isinstance(body, dict) else {}
        sub_id = body.get("subscriptionId")
        if sub_id:
            details = {k: v for k, v in find(request, str(sub_id)).items()
                       if k in ("publisherId", "eventType", "resourceVersion", "consumerId", "consumerActionId",
                                "publisherInputs", "consumerInputs")}
        else:  # the portal's form: the subscription fields in "details" (or at the top level)
            details = _validate(body.get("details") if isinstance(body.get("details"), dict) else body)
        inputs = details["consumerInputs"]
        nid = next(hooks(request).ids)
        event = _event(call, details, nid, str(sub_id) if sub_id else None)
        user, password = inputs.get("basicAuthUsername", ""), inputs.get("basicAuthPassword", "")
        secret = f"{user}:{password}" if (user or password) else ""
        started = iso_z(now())
        result = await send(inputs["url"], "azure_devops", secret, event, details["eventType"],
                            extra_headers=_headers(inputs))
        notification = {
            "id": nid, "subscriptionId": str(sub_id) if sub_id else None, "eventId": event["id"],
            "status": "completed", "result": "succeeded" if result.ok else "failed",
            "createdDate": started, "modifiedDate": iso_z(now()),
            "details": {**details, "consumerInputs": _masked(inputs), "event": event, "queuedDate": started,
                        "dequeuedDate": started, "processedDate": iso_z(now()), "completedDate": iso_z(now()),
                        "requestAttempts": 1, "requestDuration": round(result.duration_ms / 1000, 3),
                        "response": (f"Status Code: {result.status_code}\n\n{result.response_body[:500]}"
                                     if result.status_code is not None else None),
                        "errorMessage": None if result.ok else (result.error or f"HTTP {result.status_code}")},
        }
        hooks(request).notifications[nid] = notification
        return json_response(200, notification)

    @router.get(root + "/subscriptions/{sub_id}/notifications/{notification_id:int}")
    async def get_notification(request: Request, org: str, sub_id: str, notification_id: int) -> Response:
        await enter(request, org, preview=True)
        notification = hooks(request).notifications.get(notification_id)
        if notification is None or notification["subscriptionId"] != sub_id:
            return vss_error(404, f"Notification {notification_id} could not be found.",
                             "NotificationNotFoundException")
        return json_response(200, notification)
