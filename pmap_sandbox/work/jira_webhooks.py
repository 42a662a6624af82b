"""Jira admin webhooks (``/rest/webhooks/1.0/webhook``): register, list, read and delete.

Only Jira administrators may manage these webhooks, so the sandbox grants it to the ``admin``
scenario alone. Jira offers no ping: deliveries come from ``POST /_sandbox/deliver/<vendor_key>``
(signed ``X-Hub-Signature: sha256=<hex>`` by :mod:`pmap_sandbox.signing`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import jira_store as store
from pmap_sandbox.work._base import Caller, Reply, as_bool, json_response, now, read_json
from pmap_sandbox.work.jira import JiraSite, authenticate, jira_error, site_state, site_url

PREFIX = "/rest/webhooks/1.0/webhook"


def _require_admin(caller: Caller) -> None:
    if not caller.admin:
        raise Reply(jira_error(403, ["You are not authorized to perform this action. "
                                     "Administrator privileges are required."]))


def register(router: APIRouter, site: JiraSite) -> None:
    """Add the admin webhook routes."""

    @router.post(PREFIX)
    async def create_webhook(request: Request) -> Response:
        caller = await authenticate(site, request)
        _require_admin(caller)
        body = await read_json(request, lambda reason: jira_error(400, [reason]))
        if not isinstance(body, dict):
            return jira_error(400, ["Can not deserialize the webhook"])
        url = body.get("url")
        if not isinstance(url, str) or not url.strip():
            return jira_error(400, ["The webhook URL must not be empty."])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return jira_error(400, [f"The webhook URL '{url}' is not a valid URL."])
        events = body.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return jira_error(400, ["Webhook events must be a list of event names."])
        unknown = [e for e in events if e not in store.WEBHOOK_EVENTS]
        if unknown:
            return jira_error(400, [f"Invalid webhook event(s): {', '.join(unknown)}"])
        raw_filters = body.get("filters")
        filters: dict[str, object] = raw_filters if isinstance(raw_filters, dict) else {}
        hook = site_state(site, request).add_webhook(
            name=str(body.get("name") or "webhook"), url=url, events=list(events),
            filters={str(k): str(v) for k, v in filters.items()},
            exclude_body=as_bool(body.get("excludeBody")), secret=str(body.get("secret") or ""),
            enabled=as_bool(body.get("enabled"), default=True), updated_by=caller.principal,
            updated_at=now())
        return json_response(201, store.webhook_json(site_url(site, request), hook))

    @router.get(PREFIX)
    async def list_webhooks(request: Request) -> Response:
        caller = await authenticate(site, request)
        _require_admin(caller)
        url = site_url(site, request)
        return json_response(200, [store.webhook_json(url, h) for h in site_state(site, request).webhooks.values()])

    @router.get(PREFIX + "/{hook_id}")
    async def get_webhook(request: Request, hook_id: str) -> Response:
        caller = await authenticate(site, request)
        _require_admin(caller)
        hook = site_state(site, request).webhooks.get(int(hook_id)) if hook_id.isdigit() else None
        if hook is None:
            return jira_error(404, [f"Webhook with id {hook_id} not found."])
        return json_response(200, store.webhook_json(site_url(site, request), hook))

    @router.delete(PREFIX + "/{hook_id}")
    async def delete_webhook(request: Request, hook_id: str) -> Response:
        caller = await authenticate(site, request)
        _require_admin(caller)
        hooks = site_state(site, request).webhooks
        if not hook_id.isdigit() or int(hook_id) not in hooks:
            return jira_error(404, [f"Webhook with id {hook_id} not found."])
        del hooks[int(hook_id)]
        return Response(status_code=204)
