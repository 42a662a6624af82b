"""Assembles the routers of the three Jira deployments from the Jira modules."""

from __future__ import annotations

from fastapi import APIRouter

from pmap_sandbox.work import jira_issues, jira_service_desk, jira_webhooks
from pmap_sandbox.work._base import add_fallback, make_router
from pmap_sandbox.work.jira import JiraSite, jira_error, register_core


def build_router(site: JiraSite) -> APIRouter:
    """The complete router of one Jira deployment."""
    router = make_router(site.key)
    for version in site.api_versions:
        register_core(router, site, version)
        jira_issues.register(router, site, version)
    jira_webhooks.register(router, site)
    if site.service_desk:
        jira_service_desk.register(router, site)
    # Jira's answer for an unknown REST path
    add_fallback(router, lambda request: jira_error(404, [f"null for uri: {request.url}"]))
    return router
