"""Outbound webhook signing for the sandbox: one function per vendor scheme, and a delivery sender.

Signatures are computed over the exact bytes sent (never a re-serialisation), as each vendor does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_from_bytes

import httpx

DELIVERY_TIMEOUT_SECONDS = 10.0


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` keyed by ``secret`` (UTF-8)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(secret: str, body: bytes, event: str = "ping", delivery_id: str | None = None) -> dict[str, str]:
    """GitHub: ``X-Hub-Signature-256: sha256=<hex>`` plus the SHA-1 legacy header, event and delivery id."""
    return {
        "X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(secret, body),
        # GitHub still sends the legacy SHA-1 header; receivers must not accept it alone
        "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "User-Agent": "GitHub-Hookshot/sandbox",
    }


def gitlab_headers(
    secret: str, body: bytes, event: str = "Push Hook", delivery_id: str | None = None
) -> dict[str, str]:
    """GitLab (token mode): the secret in ``X-Gitlab-Token`` verbatim, plus event and delivery ids."""
    del body  # GitLab's token mode signs nothing; the token itself is the proof
    # Idempotency-Key is the one id GitLab keeps across retries of a delivery; the webhook UUID is
    # not it, so the sandbox makes them differ and a receiver keyed on the wrong one fails the tests
    return {
        "X-Gitlab-Token": secret,
        "X-Gitlab-Event": event,
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": delivery_id or str(uuid.uuid4()),
        "User-Agent": "GitLab/sandbox",
    }


def jira_headers(
    secret: str, body: bytes, event: str = "jira:issue_updated", delivery_id: str | None = None
) -> dict[str, str]:
    """Jira Cloud / Data Center: ``X-Hub-Signature: sha256=<hex>`` (SHA-256 despite the header name)."""
    del event  # Jira carries the event in the body (``webhookEvent``), not in a header
    return {
        "X-Hub-Signature": "sha256=" + hmac_sha256_hex(secret, body),
        "X-Atlassian-Webhook-Identifier": delivery_id or str(uuid.uuid4()),
        "User-Agent": "Atlassian Webhook HTTP Client",
    }


def bitbucket_headers(
    secret: str, body: bytes, event: str = "repo:push", delivery_id: str | None = None
) -> dict[str, str]:
    """Bitbucket Cloud: ``X-Hub-Signature: sha256=<hex>``, ``X-Event-Key``, ``X-Request-UUID``."""
    return {
        "X-Hub-Signature": "sha256=" + hmac_sha256_hex(secret, body),
        "X-Event-Key": event,
        "X-Request-UUID": delivery_id or str(uuid.uuid4()),
        "User-Agent": "Bitbucket-Webhooks/2.0",
    }


def snyk_headers(secret: str, body: bytes, event: str = "ping", delivery_id: str | None = None) -> dict[str, str]:
    """Snyk: ``X-Hub-Signature: sha256=<hex>``, ``X-Snyk-Event``, transport id and an unsigned timestamp."""
    return {
        "X-Hub-Signature": "sha256=" + hmac_sha256_hex(secret, body),
        "X-Snyk-Event": event if "/" in event else f"{event}/v0",  # e.g. ping/v0
        "X-Snyk-Transport-ID": delivery_id or str(uuid.uuid4()),
        "X-Snyk-Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "User-Agent": "Snyk-Webhooks/sandbox",
    }


def sonarqube_headers(
    secret: str, body: bytes, event: str = "analysis", delivery_id: str | None = None
) -> dict[str, str]:
    """SonarQube: ``X-Sonar-Webhook-HMAC-SHA256: <hex>`` with no prefix."""
    del event, delivery_id  # SonarQube sends neither an event header nor a delivery id
    return {
        "X-Sonar-Webhook-HMAC-SHA256": hmac_sha256_hex(secret, body),
        "User-Agent": "SonarQube/sandbox",
    }


def azure_devops_headers(
    secret: str, body: bytes, event: str = "git.push", delivery_id: str | None = None
) -> dict[str, str]:
    """Azure DevOps service hooks: HTTP Basic with the subscription's credentials; nothing is signed.

    ``secret`` is ``"username:password"`` (a bare value is taken as the password with an empty user).
    """
    del body, event, delivery_id  # the event type and notification id travel in the JSON body
    user, sep, password = secret.partition(":")
    if not sep:
        user, password = "", secret
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "User-Agent": "VSServices/sandbox"}


def standard_webhooks_headers(
    secret: str, body: bytes, event: str = "", delivery_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks: ``webhook-signature: v1,<b64 HMAC(id.ts.body)>``; ``whsec_`` secrets are base64."""
    del event
    wid = delivery_id or f"msg_{uuid.uuid4().hex}"
    ts = str(timestamp if timestamp is not None else int(time.time()))
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    mac = hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": wid,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def servicenow_headers(
    secret: str, body: bytes, event: str = "", delivery_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """ServiceNow has no outbound signing: PMAP's own scheme, as a REST message script computes it
    (``X-PMAP-Signature: v1=<b64 HMAC-SHA256(ts.body)>``, ``X-PMAP-Timestamp``, ``X-PMAP-Delivery``;
    pmap.webhooks.schemes documents it)."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).digest()
    return {
        "X-PMAP-Timestamp": ts,
        "X-PMAP-Signature": "v1=" + base64.b64encode(mac).decode(),
        "X-PMAP-Delivery": delivery_id or str(uuid.uuid4()),
        "User-Agent": "ServiceNow/sandbox",
    }


SignFn = Callable[..., dict[str, str]]

SCHEMES: Mapping[str, SignFn] = {
    "github": github_headers,
    "gitlab": gitlab_headers,
    "jira": jira_headers,
    "bitbucket": bitbucket_headers,
    "snyk": snyk_headers,
    "sonarqube": sonarqube_headers,
    "azure_devops": azure_devops_headers,
    "standard": standard_webhooks_headers,
    "servicenow": servicenow_headers,
}

# vendor key -> scheme; a vendor key that is itself a scheme name needs no entry
VENDOR_SCHEMES: Mapping[str, str] = {
    "github_code_scanning": "github",
    "github_issues": "github",
    "github_actions": "github",
    "gitlab_issues": "gitlab",
    "gitlab_ci": "gitlab",
    "jira_cloud": "jira",
    "jira_dc": "jira",
    "jira_data_center": "jira",
    "jira_server": "jira",
    "bitbucket_cloud": "bitbucket",
    "azure_boards": "azure_devops",
    "azure_pipelines": "azure_devops",
}


def scheme_for(vendor_key: str) -> str:
    """The signing scheme a vendor uses; unknown vendors fall back to Standard Webhooks."""
    if vendor_key in SCHEMES:
        return vendor_key
    if vendor_key in VENDOR_SCHEMES:
        return VENDOR_SCHEMES[vendor_key]
    for prefix in ("github", "gitlab", "jira", "bitbucket", "azure", "snyk", "sonarqube"):
        if vendor_key.startswith(prefix):
            return "azure_devops" if prefix == "azure" else prefix
    return "standard"


def sign(scheme: str, secret: str, body: bytes, event: str, delivery_id: str | None = None) -> dict[str, str]:
    """Headers that make ``body`` a delivery signed per ``scheme`` (see :data:`SCHEMES`)."""
    try:
        fn = SCHEMES[scheme]
    except KeyError:
        raise ValueError(f"unknown webhook scheme {scheme!r}") from None
    return fn(secret, body, event, delivery_id)


def encode_payload(payload: Any) -> bytes:
    """The exact JSON bytes a delivery carries (compact, UTF-8)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


async def deliver(
    url: str,
    scheme: str,
    secret: str,
    payload: Any,
    event: str,
    *,
    delivery_id: str | None = None,
    verify: bool | str = True,
    content_type: str = "json",
) -> httpx.Response:
    """POST one signed delivery to ``url`` and return the receiver's response.

    ``content_type="form"`` sends GitHub's ``application/x-www-form-urlencoded`` variant
    (``payload=<json>``); the signature always covers the bytes actually sent.
    """
    body = encode_payload(payload)
    media = "application/json"
    if content_type == "form":
        body, media = b"payload=" + quote_from_bytes(body, safe="").encode(), "application/x-www-form-urlencoded"
    headers = {"Content-Type": media, **sign(scheme, secret, body, event, delivery_id)}
    async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_SECONDS, verify=verify, trust_env=False) as client:
        return await client.post(url, content=body, headers=headers)
