"""Atlassian Cloud service accounts with OAuth 2.0 client credentials (Jira Service Management).

A service account's OAuth 2.0 credential is exchanged at ``https://auth.atlassian.com/oauth/token``
(``grant_type=client_credentials``; the token lives 60 minutes) and the token is accepted only through
the API gateway ``https://api.atlassian.com/ex/jira/{cloudId}``, not on the site URL. The ``cloudId``
comes from the site's anonymous ``/_edge/tenant_info``. Both hosts are fixed, never configured: an edit
of a setting cannot send the stored secret elsewhere. A site that is not ``*.atlassian.net`` (the
sandbox, a test double) serves the token endpoint and the gateway paths on its own host.
"""

from __future__ import annotations

import re
import threading

import httpx

from pmap.connectors.base import OperationContext
from pmap.connectors.vendors._oauth import TokenEndpoint, access_token, uses_oauth
from pmap.connectors.vendors._support import check, fail, json_of, text

AUTH_HOST = "https://auth.atlassian.com"
GATEWAY_HOST = "https://api.atlassian.com"
HINT = ("check the service account's OAuth 2.0 client id and secret (Atlassian Administration > Directory > "
        "Service accounts) and that the credential has not expired or been revoked")
_CLOUD_ID = re.compile(r"^[0-9A-Za-z-]{8,64}$")
_MAX_SITES = 256
_lock = threading.Lock()
_cloud_ids: dict[str, str] = {}  # site URL -> cloudId (public, not a secret)


def _site(ctx: OperationContext) -> str:
    return str(ctx.connection.base_url).rstrip("/")


def atlassian_hosted(site: str) -> bool:
    """Whether ``site`` is an Atlassian Cloud site (``*.atlassian.net``)."""
    host = (httpx.URL(site).host or "").lower()
    return host.endswith(".atlassian.net")


def token_endpoint(site: str) -> TokenEndpoint:
    """Atlassian's token endpoint for a site."""
    return TokenEndpoint(AUTH_HOST if atlassian_hosted(site) else site, "/oauth/token", "Atlassian", HINT)


def gateway_base(site: str, cloud_id: str) -> str:
    """The API gateway base URL of a site's Jira."""
    return f"{GATEWAY_HOST if atlassian_hosted(site) else site}/ex/jira/{cloud_id}"


def cloud_id(ctx: OperationContext) -> str:
    """The site's ``cloudId`` (read once per process from ``/_edge/tenant_info``)."""
    site = _site(ctx)
    with _lock:
        known = _cloud_ids.get(site)
    if known:
        return known
    with ctx.client(site) as c:
        resp = check(ctx, c.get("/_edge/tenant_info", headers={"Accept": "application/json"}),
                     "reading the site's cloudId (/_edge/tenant_info)")
    found = text(json_of(ctx, resp, "the site's tenant information").get("cloudId"))
    if not found or not _CLOUD_ID.match(found):
        raise fail(ctx, "the site's /_edge/tenant_info answered no usable cloudId: is the base URL a Jira Cloud "
                        "site (https://<name>.atlassian.net)?", step="response")
    with _lock:
        if len(_cloud_ids) >= _MAX_SITES:
            _cloud_ids.pop(next(iter(_cloud_ids)))
        _cloud_ids[site] = found
    return found


def api_base(ctx: OperationContext) -> str:
    """Where the operation's REST calls go: the gateway with OAuth, the site otherwise."""
    return gateway_base(_site(ctx), cloud_id(ctx)) if uses_oauth(ctx) else _site(ctx)


def bearer(ctx: OperationContext) -> dict[str, str]:
    """The ``Authorization`` header of the service account's access token."""
    return {"Authorization": f"Bearer {access_token(ctx, token_endpoint(_site(ctx)))}"}
