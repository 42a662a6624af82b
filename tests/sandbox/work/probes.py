"""The cheapest authenticated call of each work-tool vendor, and how each refuses."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .conftest import basic, bearer

SUPPRESS = {"X-TFS-FedAuthRedirect": "Suppress"}


def _headers(key: str, secret: str | None) -> dict[str, str]:
    if secret is None:
        return dict(SUPPRESS) if key.startswith("azure") else {}
    return {
        "jira_cloud": lambda s: basic("pmap@example.com", s),
        "jira_service_management": lambda s: basic("pmap@example.com", s),
        "jira_data_center": bearer,
        "servicenow": lambda s: basic("pmap.integration", s),
        "github_issues": bearer,
        "github_actions": bearer,
        "gitlab_issues": lambda s: {"PRIVATE-TOKEN": s},
        "gitlab_ci": lambda s: {"PRIVATE-TOKEN": s},
        "azure_boards": lambda s: {**basic("", s), **SUPPRESS},
        "azure_pipelines": lambda s: {**basic("", s), **SUPPRESS},
        "jenkins": lambda s: basic("pmap", s),
    }[key](secret)


PATHS = {
    "jira_cloud": "/rest/api/3/myself",
    "jira_service_management": "/rest/servicedeskapi/servicedesk",
    "jira_data_center": "/rest/api/2/myself",
    "servicenow": "/api/now/table/sys_user?sysparm_limit=1",
    "github_issues": "/user",
    "github_actions": "/user",
    "gitlab_issues": "/personal_access_tokens/self",
    "gitlab_ci": "/version",
    "azure_boards": "/_apis/connectionData?api-version=7.1-preview",
    "azure_pipelines": "/_apis/connectionData?api-version=7.1-preview",
    "jenkins": "/api/json",
}


def probe(key: str) -> Callable[[httpx.Client, str, str | None], httpx.Response]:
    """A function calling ``key``'s probe with a secret (None: no credentials at all)."""

    def call(client: httpx.Client, base: str, secret: str | None) -> httpx.Response:
        return client.get(base + PATHS[key], headers=_headers(key, secret))

    return call


PROBES = {key: probe(key) for key in PATHS}
HEADERS = _headers
# Jenkins treats a request without credentials as anonymous: 403, not 401
MISSING_STATUS = {"jenkins": 403}


def is_vendor_error(key: str, response: httpx.Response) -> bool:
    """Whether the error body has the vendor's own shape (never FastAPI's ``{"detail": ...}``)."""
    text = response.text
    if key.startswith("jira"):
        return "errorMessages" in text or "Client must be authenticated" in text
    if key == "servicenow":
        body = response.json()
        return body.get("status") == "failure" and {"message", "detail"} <= set(body["error"])
    if key.startswith("github"):
        return {"message", "documentation_url", "status"} <= set(response.json())
    if key.startswith("gitlab"):
        return response.status_code == 429 or "message" in response.json() or "error" in response.json()
    if key.startswith("azure"):
        return response.status_code == 401 or "typeKey" in response.json()
    if key == "jenkins":
        return "HTTP ERROR" in text
    raise AssertionError(key)
