"""Simulated ITSM, ticketing and CI/CD APIs, one router per vendor key.

``SANDBOX_VENDORS[key]["base_path"]`` is what to append to ``http://HOST:PORT`` to get the base URL
a PMAP user would type: the site / instance / server root for Jira, ServiceNow and Jenkins
(``/jira_cloud``; the REST paths ``/rest/api/3/...`` follow), the API root for GitHub
(``/github_issues``, like ``https://api.github.com``) and GitLab (``/gitlab_issues/api/v4``, like
``https://HOST/api/v4``), and the organisation URL for Azure DevOps (``/azure_boards/acme``, like
``https://dev.azure.com/acme``). ``fixtures`` names the objects that exist from the start.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pmap_sandbox import github_app
from pmap_sandbox.work import (
    azure_boards,
    azure_devops,
    azure_hooks,
    azure_pipelines,
    github,
    github_actions,
    github_hooks,
    gitlab,
    gitlab_ci,
    gitlab_hooks,
    jenkins,
    servicenow,
)
from pmap_sandbox.work._base import add_fallback, json_response, make_router
from pmap_sandbox.work.azure_devops import vss_error
from pmap_sandbox.work.github import gh_error
from pmap_sandbox.work.jira import JIRA_CLOUD, JIRA_DATA_CENTER, JIRA_SERVICE_MANAGEMENT
from pmap_sandbox.work.jira_router import build_router as build_jira_router

MARKERS = "bad, echo, expired, expiring, ratelimit, slow, down, noperm, admin (in the secret value)"


def build_github_router(key: str) -> APIRouter:
    """GitHub (issues, Actions and repository hooks) under ``/<key>``."""
    router = make_router(key)
    github.register(router, key)
    github_app.register(router, key)
    github_actions.register(router, key)
    github_hooks.register(router, key)
    add_fallback(router, lambda request: gh_error(404, "Not Found"))
    return router


def build_gitlab_router(key: str) -> APIRouter:
    """GitLab (issues, CI and project hooks) under ``/<key>``."""
    router = make_router(key)
    gitlab.register(router, key)
    gitlab_ci.register(router, key)
    gitlab_hooks.register(router, key)
    gitlab.register_project(router, key)  # greedy path: after every deeper project route
    add_fallback(router, lambda request: json_response(404, {"error": "404 Not Found"}))
    return router


def build_azure_devops_router(key: str) -> APIRouter:
    """Azure DevOps (Boards, Pipelines and service hooks) under ``/<key>``."""
    router = make_router(key)
    azure_devops.register(router, key)
    azure_boards.register(router, key)
    azure_pipelines.register(router, key)
    azure_hooks.register(router, key)
    add_fallback(router, lambda request: vss_error(404, "The controller for path was not found or does not "
                                                        "implement IController.", "HttpException"))
    return router


def build_routers() -> list[APIRouter]:
    """Fresh routers for every vendor key of this part."""
    return [
        build_jira_router(JIRA_CLOUD), build_jira_router(JIRA_DATA_CENTER),
        build_jira_router(JIRA_SERVICE_MANAGEMENT), servicenow.build_router(),
        build_github_router("github_issues"), build_github_router("github_actions"),
        build_gitlab_router("gitlab_issues"), build_gitlab_router("gitlab_ci"),
        build_azure_devops_router("azure_boards"), build_azure_devops_router("azure_pipelines"),
        jenkins.build_router(),
    ]


def _github(category: str) -> dict[str, Any]:
    return {"category": category, "base_path": "/{key}", "auth": "Authorization: Bearer <token>",
            "valid_credentials": {"token": "ghp_sandboxToken0001"},
            "fixtures": {"repositories": ["acme/webapp", "acme/api"]},
            "notes": "X-OAuth-Scopes: repo (default), read:user (noperm: private repos answer 404), admin scopes "
                     "(admin); expiring -> GitHub-Authentication-Token-Expiration header; expired -> 401 Bad "
                     "credentials; artifact zip answers 302 to /<key>/_blobs/... on another host name (localhost "
                     "<-> 127.0.0.1); blobs refuse an Authorization header with Azure Blob Storage's 403 "
                     "AuthenticationFailed XML (as reported in project-chip/connectedhomeip#32656, "
                     "cloudflare/workers-sdk#4816)"}


def _gitlab(category: str) -> dict[str, Any]:
    return {"category": category, "base_path": "/{key}/api/v4", "auth": "PRIVATE-TOKEN: <token>",
            "valid_credentials": {"private_token": "glpat-sandboxToken0001"},
            "fixtures": {"projects": {"1": "acme/webapp", "2": "acme/api"}},
            "notes": "scopes api (default), read_user (noperm: project routes 403 insufficient_scope), "
                     "api+sudo+admin_mode and is_admin (admin); expiring -> expires_at in 10 days; expired -> 401 "
                     "invalid_token"}


def _azure(category: str) -> dict[str, Any]:
    return {"category": category, "base_path": "/{key}/acme", "auth": "Basic base64(':' + PAT)",
            "valid_credentials": {"personal_access_token": "azdoSandboxPat0001"},
            "fixtures": {"organization": "acme (any name works)", "project": "Security", "pipeline": 12,
                         "runs": [345, 346]},
            "notes": "without X-TFS-FedAuthRedirect: Suppress a refused call answers 203 + sign-in HTML (302 for "
                     "browsers); expired -> refused like a bad PAT; noperm may read but not write"}


_DESCRIPTORS: dict[str, dict[str, Any]] = {
    "jira_cloud": {"category": "ticketing", "base_path": "/{key}", "auth": "Basic email:api_token",
                   "valid_credentials": {"email": "pmap@example.com", "api_token": "ATATTsandboxToken0001"},
                   "fixtures": {"projects": ["SEC"]},
                   "notes": "API v3 (ADF rich text) and v2; webhooks need admin; noperm holds BROWSE_PROJECTS only"},
    "jira_data_center": {"category": "ticketing", "base_path": "/{key}", "auth": "Authorization: Bearer <PAT>",
                         "valid_credentials": {"personal_access_token": "NjQ4sandboxPat0001"},
                         "fixtures": {"projects": ["SEC"]},
                         "notes": "API v2 only; Basic username:password is accepted too; deploymentType Server"},
    "jira_service_management": {"category": "ITSM", "base_path": "/{key}",
                                "auth": "Basic email:api_token; or OAuth 2.0 client credentials (POST /oauth/token) "
                                        "-> Bearer through /ex/jira/{cloudId} (GET /_edge/tenant_info)",
                                "valid_credentials": {"email": "pmap@example.com",
                                                      "api_token": "ATATTsandboxToken0002"},
                                "fixtures": {"service_desk": "1 (project ITH)", "request_types": ["10", "11"]},
                                "notes": "Jira Cloud plus /rest/servicedeskapi; expired -> "
                                         "info isLicensedForUse false"},
    "servicenow": {"category": "ITSM", "base_path": "/{key}",
                   "auth": "Basic username:password; or OAuth 2.0 client credentials (POST /oauth_token.do) -> Bearer",
                   "valid_credentials": {"username": "pmap.integration", "password": "snSandboxPass0001"},
                   "fixtures": {"tables": ["incident", "sys_user", "sys_user_role", "sys_user_has_role"]},
                   "notes": "roles: itil (default), admin (admin), none (noperm: incidents hidden, writes 403); "
                            "a password containing 'security' also holds security_admin; "
                            "unknown query fields are ignored, as on a default instance"},
    "github_issues": _github("ticketing"),
    "github_actions": {**_github("CI/CD"), "vendor": "github"},  # PMAP's vendor type for GitHub Actions
    "gitlab_issues": _gitlab("ticketing"),
    "gitlab_ci": _gitlab("CI/CD"),
    "azure_boards": _azure("ticketing"),
    "azure_pipelines": _azure("CI/CD"),
    "jenkins": {"category": "CI/CD", "base_path": "/{key}", "auth": "Basic user:api_token",
                "valid_credentials": {"username": "pmap", "api_token": "11sandboxJenkinsToken0001"},
                "fixtures": {"jobs": ["webapp-security"], "builds": {"7": "SUCCESS", "8": "building"}},
                "notes": "no credentials -> 403 anonymous on the API, while /whoAmI answers 200 naming the "
                         "anonymous user (as Jenkins); noperm sees no jobs; only admin reads /pluginManager"},
}

ROUTERS: list[APIRouter] = build_routers()
SANDBOX_VENDORS: dict[str, dict[str, Any]] = {
    key: {**d, "base_path": d["base_path"].format(key=key), "markers": MARKERS} for key, d in _DESCRIPTORS.items()
}

__all__ = ["ROUTERS", "SANDBOX_VENDORS", "build_routers"]
