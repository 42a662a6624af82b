"""GitHub repository webhooks: create, list, read, update, delete, ping, test and deliveries.

A ping (``POST .../hooks/{id}/pings``, answered 204) really POSTs a ``ping`` event to the hook's
URL, signed ``X-Hub-Signature-256: sha256=<hex>`` with the hook secret, before the 204 is sent; the
result shows in ``last_response`` and ``GET .../hooks/{id}/deliveries``. ``config.content_type``
defaults to ``form`` as on GitHub (``payload=<json>`` bodies).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import github_store as store
from pmap_sandbox.work._base import Reply, iso_z, now
from pmap_sandbox.work._delivery import send
from pmap_sandbox.work.github import GhCall, authenticate, find_repo, gh_error, gh_state, json_object

ACCEPTED = "admin:repo_hook, read:repo_hook, repo, write:repo_hook"
ZEN = "Design for failure."


def _hook(call: GhCall, request: Request, repo: store.Repo, hook_id: int) -> store.Hook:
    hook = gh_state(call, request).hooks.get(hook_id)
    if hook is None or hook.repo != repo:
        raise Reply(gh_error(404, "Not Found", call.headers(ACCEPTED)))
    return hook


def _custom_error(call: GhCall, message: str) -> Response:
    return gh_error(422, "Validation Failed", call.headers(ACCEPTED),
                    errors=[{"resource": "Hook", "code": "custom", "message": message}])


def _apply_config(call: GhCall, hook_config: Any, hook: store.Hook | None) -> dict[str, str]:
    """Validated ``config`` fields (url, content_type, secret, insecure_ssl)."""
    config = hook_config if isinstance(hook_config, dict) else {}
    url = str(config.get("url") or (hook.url if hook else ""))
    parts = urlsplit(url)
    if not url or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Reply(_custom_error(call, "Config must contain a valid url for webhook hook"))
    content_type = str(config.get("content_type") or (hook.content_type if hook else "form"))
    if content_type not in ("json", "form"):
        raise Reply(_custom_error(call, "Config content_type must be json or form"))
    return {"url": url, "content_type": content_type,
            "secret": str(config["secret"]) if "secret" in config else (hook.secret if hook else ""),
            "insecure_ssl": str(config.get("insecure_ssl", hook.insecure_ssl if hook else "0"))}


async def _deliver(call: GhCall, hook: store.Hook, event: str, payload: dict[str, Any]) -> None:
    """Send one delivery and record it on the hook."""
    result = await send(hook.url, "github", hook.secret, payload, event, verify=hook.insecure_ssl == "0",
                        form=hook.content_type == "form",
                        extra_headers={"X-GitHub-Hook-ID": str(hook.id),
                                       "X-GitHub-Hook-Installation-Target-Type": "repository",
                                       "X-GitHub-Hook-Installation-Target-ID": str(hook.repo.id)})
    message = "OK" if result.ok else (result.error or f"Invalid HTTP Response: {result.status_code}")
    hook.last_response = {"code": result.status_code, "status": "active" if result.ok else "failed",
                          "message": message}
    hook.deliveries.insert(0, {
        "id": len(hook.deliveries) + 1, "guid": result.delivery_id, "delivered_at": iso_z(now()),
        "redelivery": False, "duration": round(result.duration_ms / 1000, 3), "status": message,
        "status_code": result.status_code or 0, "event": event, "action": None, "installation_id": None,
        "repository_id": hook.repo.id, "throttled_at": None,
    })


def register(router: APIRouter, key: str) -> None:
    """Add the repository webhook routes."""
    prefix = "/repos/{owner}/{name}/hooks"

    @router.post(prefix)
    async def create_hook(request: Request, owner: str, name: str) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name, ACCEPTED)
        body = await json_object(call, request)
        config = _apply_config(call, body.get("config"), None)
        github = gh_state(call, request)
        if any(h.repo == repo and h.url == config["url"] for h in github.hooks.values()):
            return _custom_error(call, "Hook already exists on this repository")
        events = body.get("events", ["push"])
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return _custom_error(call, "Events must be a list of event names")
        stamp = now()
        hook = store.Hook(id=github.next_hook_id(), repo=repo, events=events,
                          active=body.get("active", True) is not False, url=config["url"],
                          content_type=config["content_type"], secret=config["secret"],
                          insecure_ssl=config["insecure_ssl"], created=stamp, updated=stamp)
        github.hooks[hook.id] = hook
        location = f"{call.api}/repos/{repo.full_name}/hooks/{hook.id}"
        return call.reply(201, store.hook_json(call.api, hook), ACCEPTED, {"Location": location})

    @router.get(prefix)
    async def list_hooks(request: Request, owner: str, name: str) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name, ACCEPTED)
        hooks = [store.hook_json(call.api, h) for h in gh_state(call, request).hooks.values() if h.repo == repo]
        return call.reply(200, hooks, ACCEPTED)

    @router.get(prefix + "/{hook_id}")
    async def get_hook(request: Request, owner: str, name: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        hook = _hook(call, request, find_repo(call, request, owner, name, ACCEPTED), hook_id)
        return call.reply(200, store.hook_json(call.api, hook), ACCEPTED)

    @router.patch(prefix + "/{hook_id}")
    async def update_hook(request: Request, owner: str, name: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        hook = _hook(call, request, find_repo(call, request, owner, name, ACCEPTED), hook_id)
        body = await json_object(call, request)
        config = _apply_config(call, body.get("config"), hook)
        hook.url, hook.content_type = config["url"], config["content_type"]
        hook.secret, hook.insecure_ssl = config["secret"], config["insecure_ssl"]
        if isinstance(body.get("events"), list):
            hook.events = [str(e) for e in body["events"]]
        if isinstance(body.get("active"), bool):
            hook.active = body["active"]
        hook.updated = now()
        return call.reply(200, store.hook_json(call.api, hook), ACCEPTED)

    @router.delete(prefix + "/{hook_id}")
    async def delete_hook(request: Request, owner: str, name: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        hook = _hook(call, request, find_repo(call, request, owner, name, ACCEPTED), hook_id)
        del gh_state(call, request).hooks[hook.id]
        return Response(status_code=204, headers=call.headers(ACCEPTED))

    @router.post(prefix + "/{hook_id}/pings")
    async def ping_hook(request: Request, owner: str, name: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name, ACCEPTED)
        hook = _hook(call, request, repo, hook_id)
        payload = {"zen": ZEN, "hook_id": hook.id, "hook": store.hook_json(call.api, hook),
                   "repository": store.repo_json(call.api, repo), "sender": store.user_json(call.api)}
        await _deliver(call, hook, "ping", payload)
        return Response(status_code=204, headers=call.headers(ACCEPTED))

    @router.post(prefix + "/{hook_id}/tests")
    async def test_hook(request: Request, owner: str, name: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        repo = find_repo(call, request, owner, name, ACCEPTED)
        hook = _hook(call, request, repo, hook_id)
        if "push" in hook.events and hook.active:  # GitHub sends nothing, yet answers 204, otherwise
            payload = {"ref": "refs/heads/main", "before": "0" * 40, "after": store.SHA, "created": False,
                       "deleted": False, "forced": False, "commits": [], "head_commit": None,
                       "repository": store.repo_json(call.api, repo),
                       "pusher": {"name": store.LOGIN, "email": None}, "sender": store.user_json(call.api)}
            await _deliver(call, hook, "push", payload)
        return Response(status_code=204, headers=call.headers(ACCEPTED))

    @router.get(prefix + "/{hook_id}/deliveries")
    async def list_deliveries(request: Request, owner: str, name: str, hook_id: int) -> Response:
        call = await authenticate(key, request)
        hook = _hook(call, request, find_repo(call, request, owner, name, ACCEPTED), hook_id)
        return call.reply(200, hook.deliveries, ACCEPTED)
