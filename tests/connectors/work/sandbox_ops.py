"""Direct calls to the sandbox for test set-up: moving a ticket to its vendor's done state and
reading what the vendor stored, as a person would in the vendor's UI."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from pmap.connectors.base import TicketRef

_JIRA_DONE_TRANSITION = "31"


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def auth_headers(vendor: str, credentials: dict[str, str]) -> dict[str, str]:
    """The vendor's Authorization header for ``credentials``."""
    if vendor in ("jira_cloud", "jira_service_management"):
        return {"Authorization": _basic(credentials["email"], credentials["api_token"])}
    if vendor == "jira_data_center":
        return {"Authorization": f"Bearer {credentials['personal_access_token']}"}
    if vendor == "servicenow":
        return {"Authorization": _basic(credentials["username"], credentials["password"])}
    if vendor in ("github_issues", "github"):
        return {"Authorization": f"Bearer {credentials['token']}"}
    if vendor.startswith("gitlab"):
        return {"PRIVATE-TOKEN": credentials["private_token"]}
    if vendor.startswith("azure"):
        return {"Authorization": _basic("", credentials["personal_access_token"]), "X-TFS-FedAuthRedirect": "Suppress"}
    raise ValueError(vendor)


def stored_ticket(vendor: str, base_url: str, credentials: dict[str, str], ref: TicketRef) -> dict[str, Any]:
    """The ticket as the vendor stores it."""
    h = auth_headers(vendor, credentials)
    with httpx.Client(base_url=base_url, headers=h, timeout=10, trust_env=False) as c:
        if vendor.startswith("jira"):
            version = "2" if vendor == "jira_data_center" else "3"
            return c.get(f"/rest/api/{version}/issue/{ref.key}").raise_for_status().json()
        if vendor == "servicenow":
            rows = c.get("/api/now/table/incident", params={"sysparm_query": f"number={ref.key}"}).json()["result"]
            return next(r for r in rows if r["number"] == ref.key)
        if vendor == "github_issues":
            repo, number = ref.key.split("#")
            return c.get(f"/repos/{repo}/issues/{number}").raise_for_status().json()
        if vendor == "gitlab_issues":
            project, iid = ref.key.split("#")
            return c.get(f"/projects/{project.replace('/', '%2F')}/issues/{iid}").raise_for_status().json()
        if vendor == "azure_boards":
            return c.get(f"/_apis/wit/workitems/{ref.key}", params={"api-version": "7.1"}).raise_for_status().json()
    raise ValueError(vendor)


def close_ticket(vendor: str, base_url: str, credentials: dict[str, str], ref: TicketRef) -> None:
    """Move the ticket to its vendor's done state."""
    h = auth_headers(vendor, credentials)
    with httpx.Client(base_url=base_url, headers=h, timeout=10, trust_env=False) as c:
        if vendor.startswith("jira"):
            version = "2" if vendor == "jira_data_center" else "3"
            resp = c.post(f"/rest/api/{version}/issue/{ref.key}/transitions",
                          json={"transition": {"id": _JIRA_DONE_TRANSITION}})
        elif vendor == "servicenow":
            sys_id = stored_ticket(vendor, base_url, credentials, ref)["sys_id"]
            resp = c.patch(f"/api/now/table/incident/{sys_id}",
                           json={"state": "6", "close_code": "Solved (Permanently)", "close_notes": "patched"})
        elif vendor == "github_issues":
            repo, number = ref.key.split("#")
            resp = c.patch(f"/repos/{repo}/issues/{number}", json={"state": "closed"})
        elif vendor == "gitlab_issues":
            project, iid = ref.key.split("#")
            resp = c.put(f"/projects/{project.replace('/', '%2F')}/issues/{iid}", json={"state_event": "close"})
        elif vendor == "azure_boards":
            resp = c.patch(f"/_apis/wit/workitems/{ref.key}", params={"api-version": "7.1"},
                           headers={"Content-Type": "application/json-patch+json"},
                           content=b'[{"op": "add", "path": "/fields/System.State", "value": "Closed"}]')
        else:
            raise ValueError(vendor)
    resp.raise_for_status()
