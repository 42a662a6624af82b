"""Webhook test deliveries sent by the simulated vendors (GitHub ping, GitLab test, Azure DevOps test).

Signing is :mod:`pmap_sandbox.signing`'s job; this module only sends, times and records the result.
A hook registered without a secret is delivered without the signature header, as the vendors do.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from pmap_sandbox import signing

# headers that carry the secret or a signature made with it, per scheme
_SECRET_HEADERS = {
    "github": ("X-Hub-Signature-256", "X-Hub-Signature"),
    "gitlab": ("X-Gitlab-Token",),
    "jira": ("X-Hub-Signature",),
    "azure_devops": ("Authorization",),
}


@dataclass(frozen=True)
class DeliveryResult:
    """What the receiver answered: status (None when unreachable), an error text and timing."""

    delivery_id: str
    status_code: int | None
    error: str | None
    duration_ms: float
    response_body: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def send(url: str, scheme: str, secret: str, payload: Any, event: str, *,
               delivery_id: str | None = None, verify: bool = True, form: bool = False,
               extra_headers: dict[str, str] | None = None) -> DeliveryResult:
    """POST one delivery of ``payload`` to ``url`` signed per ``scheme`` (unsigned without a secret).

    ``form`` sends GitHub's ``application/x-www-form-urlencoded`` variant (``payload=<json>``); the
    signature always covers the exact bytes sent.
    """
    did = delivery_id or str(uuid.uuid4())
    body = signing.encode_payload(payload)
    ctype = "application/json"
    if form:
        body, ctype = urlencode({"payload": body.decode()}).encode(), "application/x-www-form-urlencoded"
    headers = {"Content-Type": ctype, **signing.sign(scheme, secret or "unset", body, event, did)}
    if not secret:
        for name in _SECRET_HEADERS.get(scheme, ()):
            headers.pop(name, None)
    headers.update(extra_headers or {})
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=signing.DELIVERY_TIMEOUT_SECONDS, verify=verify,
                                     trust_env=False) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return DeliveryResult(did, None, f"{type(exc).__name__}: {exc}",
                              (time.perf_counter() - started) * 1000, "")
    return DeliveryResult(did, response.status_code, None, (time.perf_counter() - started) * 1000,
                          response.text[:2000])
