"""Webhook registrations kept in memory per app, and vendor-signed deliveries to them."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import httpx
from fastapi import Request

from pmap_sandbox import signing
from pmap_sandbox.scanners._common import store

log = logging.getLogger(__name__)
_ids = itertools.count(1)


def register(request: Request, vendor_key: str, hook: dict[str, Any]) -> dict[str, Any]:
    """Store ``hook`` (must carry ``url`` and ``secret``) under a new integer ``id``; return it."""
    hook = {"id": next(_ids), "last_response": {"code": None, "status": "unused", "message": None}, **hook}
    store(request, vendor_key).setdefault("hooks", {})[hook["id"]] = hook
    return hook


def hooks(request: Request, vendor_key: str) -> dict[int, dict[str, Any]]:
    """All registrations of one vendor on this app."""
    registered: dict[int, dict[str, Any]] = store(request, vendor_key).setdefault("hooks", {})
    return registered


async def deliver(
    hook: dict[str, Any], scheme: str, event: str, payload: Any, content_type: str = "json"
) -> int | None:
    """Send one signed delivery to the hook's URL; record and return the receiver's status (None on failure)."""
    try:
        response = await signing.deliver(
            hook["url"], scheme, hook.get("secret") or "", payload, event, content_type=content_type
        )
    except httpx.HTTPError as exc:
        log.info("sandbox webhook delivery to %s failed: %s", hook["url"], type(exc).__name__)
        hook["last_response"] = {"code": None, "status": "failed", "message": type(exc).__name__}
        return None
    ok = 200 <= response.status_code < 300
    hook["last_response"] = {
        "code": response.status_code,
        "status": "active" if ok else "failed",
        "message": "OK" if ok else response.reason_phrase,
    }
    return response.status_code
