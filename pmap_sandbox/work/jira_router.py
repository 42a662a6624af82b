"""Assembles the routers of the three Jira deployments from the Jira modules."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import _oauth, jira_issues, jira_service_desk, jira_webhooks
from pmap_sandbox.work._base import VendorRoute, add_fallback, json_response, make_router
from pmap_sandbox.work.jira import CLOUD_ID, GATEWAY, TOKEN_TTL, JiraSite, jira_error, register_core, token_error


def _register_api(router: APIRouter, site: JiraSite) -> None:
    for version in site.api_versions:
        register_core(router, site, version)
        jira_issues.register(router, site, version)
    jira_webhooks.register(router, site)
    if site.service_desk:
        jira_service_desk.register(router, site)


def _register_oauth(router: APIRouter, site: JiraSite) -> None:
    """The client-credentials token endpoint, the site's cloudId and the API gateway's copy of the API."""

    @router.post("/oauth/token")
    async def oauth_token(request: Request) -> Response:
        return await _oauth.issue(request, site.key, token_error,
                                  lambda client_id: f"{client_id}@serviceaccount.atlassian.com", TOKEN_TTL)

    @router.get("/_edge/tenant_info")
    async def tenant_info(request: Request) -> Response:
        return json_response(200, {"cloudId": CLOUD_ID})

    gateway = APIRouter(prefix=GATEWAY, route_class=VendorRoute)
    _register_api(gateway, site)
    router.include_router(gateway)


def build_router(site: JiraSite) -> APIRouter:
    """The complete router of one Jira deployment."""
    router = make_router(site.key)
    _register_api(router, site)
    if site.cloud:
        _register_oauth(router, site)
    # Jira's answer for an unknown REST path
    add_fallback(router, lambda request: jira_error(404, [f"null for uri: {request.url}"]))
    return router
