"""Jira Cloud, Jira Data Center and Jira Service Management: site info, identity and permissions.

Cloud authenticates with HTTP Basic ``email:api_token``; Data Center with ``Bearer <personal access
token>`` (Jira 8.14+) or Basic ``username:password``. ``serverInfo`` answers anonymously (so it proves
nothing about credentials); ``myself`` proves them; ``mypermissions`` needs ``permissions`` (400
without it, enforced since February 2019). Issues, webhooks and service desk routes live in the
sibling modules; :mod:`pmap_sandbox.work.jira_router` assembles them.

OAuth 2.0 service accounts (Cloud): a client-credentials token (``POST /oauth/token``, standing in for
``https://auth.atlassian.com/oauth/token``; a refused client gets ``{"error": "access_denied",
"error_description": "Unauthorized"}`` with 401) is accepted only through the API gateway
``/ex/jira/{cloudId}/...`` (standing in for ``https://api.atlassian.com/ex/jira/{cloudId}``); the site
URL refuses Bearer, as Jira Cloud does. ``/_edge/tenant_info`` answers the site's ``cloudId``
anonymously. Requests with the token run as the service account ``<client_id>@serviceaccount.atlassian.com``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import _oauth
from pmap_sandbox.work import jira_store as store
from pmap_sandbox.work._base import (
    Caller,
    Dialect,
    Reply,
    admit,
    base_url,
    iso_ms,
    json_response,
    now,
    parse_basic,
    parse_scheme,
    state,
    text_response,
)


@dataclass(frozen=True)
class JiraSite:
    """One simulated Jira deployment under ``/<key>``."""

    key: str
    cloud: bool
    api_versions: tuple[str, ...]
    service_desk: bool = False


JIRA_CLOUD = JiraSite("jira_cloud", cloud=True, api_versions=("3", "2"))
JIRA_DATA_CENTER = JiraSite("jira_data_center", cloud=False, api_versions=("2",))
JIRA_SERVICE_MANAGEMENT = JiraSite("jira_service_management", cloud=True, api_versions=("3", "2"),
                                   service_desk=True)


def jira_error(status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> Response:
    """Jira's error collection: ``{"errorMessages": [...], "errors": {field: message}}``."""
    return json_response(status, {"errorMessages": messages or [], "errors": errors or {}}, headers)


class JiraCloudDialect(Dialect):
    """Jira Cloud answers a failed or absent login with a plain-text 401."""

    def missing(self, request: Request) -> Response:
        return text_response(401, "Client must be authenticated to access this resource.",
                             headers={"WWW-Authenticate": 'OAuth realm="https%3A%2F%2Fsandbox.atlassian.net"'})

    def bad(self, request: Request) -> Response:
        response = self.missing(request)
        response.headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
        return response

    def echo(self, request: Request, echoed: str) -> Response:
        return jira_error(401, [f"Login failed for the credentials received: {echoed}"],
                          headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"})

    def down(self, request: Request) -> Response:
        return jira_error(503, ["Jira is temporarily unavailable. Please try again later."])

    def ratelimited(self, request: Request) -> Response:
        return jira_error(429, ["Rate limit exceeded."], headers={"X-RateLimit-Reason": "jira-quota-global-based"})


class JiraServerDialect(JiraCloudDialect):
    """Jira Data Center answers an absent or failed login with a JSON error collection."""

    def missing(self, request: Request) -> Response:
        return jira_error(401, ["You are not authenticated. Authentication required to perform this operation."])

    def bad(self, request: Request) -> Response:
        response = self.missing(request)
        response.headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
        return response


def dialect_of(site: JiraSite) -> Dialect:
    """The error dialect of a site."""
    return JiraCloudDialect() if site.cloud else JiraServerDialect()


DC_PAT_USER = "svc-pmap"  # the user a Data Center personal access token belongs to
CLOUD_ID = "0f4c3b8e-5d1a-4b7e-9c2f-6a8d1e3b5c70"  # the cloudId of every simulated Cloud site
GATEWAY = "/ex/jira/{cloud_id}"
TOKEN_TTL = 3600  # Atlassian: a service account's OAuth 2.0 access token lives 60 minutes


def token_error(status: int, error: str, description: str) -> Response:
    """auth.atlassian.com's error body."""
    if status == 401:
        return json_response(401, {"error": "access_denied", "error_description": "Unauthorized"})
    return json_response(status, {"error": error, "error_description": description})


def _through_gateway(request: Request) -> bool:
    return "cloud_id" in request.path_params


async def authenticate(site: JiraSite, request: Request) -> Caller:
    """The caller, or raise :class:`Reply` with the site's 401 (scenarios applied)."""
    dialect = dialect_of(site)
    header = request.headers.get("authorization")
    if not header:
        raise Reply(dialect.missing(request))
    if site.cloud and _through_gateway(request):
        if request.path_params["cloud_id"] != CLOUD_ID:
            raise Reply(json_response(404, {"code": 404, "message": "Not Found - No message available"}))
        caller = _oauth.bearer_caller(request, site.key, dialect.missing)
        if caller is not None:
            return caller
    basic = parse_basic(header)
    if basic is not None:
        user, secret = basic
        if not user:
            raise Reply(dialect.bad(request))
        return await admit(site.key, dialect, request, user, secret, checked=[user])
    token = None if site.cloud else parse_scheme(header, "bearer")
    if token is None:  # Cloud refuses Bearer on the site URL (OAuth goes through api.atlassian.com)
        raise Reply(dialect.bad(request))
    return await admit(site.key, dialect, request, DC_PAT_USER, token)


def site_state(site: JiraSite, request: Request) -> store.JiraState:
    """The site's in-memory issues and webhooks."""
    return state(request, site.key, store.JiraState)


def site_url(site: JiraSite, request: Request) -> str:
    """The site base URL (what a user types), used in ``self`` links."""
    return base_url(request, site.key)


def server_info(site: JiraSite, request: Request) -> dict[str, Any]:
    """``ServerInformation`` for Cloud (``deploymentType`` Cloud) or Data Center (Server)."""
    if site.cloud:
        version, numbers, build = "1001.0.0-SNAPSHOT", [1001, 0, 0], 100285
    else:
        version, numbers, build = "9.12.15", [9, 12, 15], 9120015
    info: dict[str, Any] = {
        "baseUrl": site_url(site, request), "version": version, "versionNumbers": numbers,
        "deploymentType": "Cloud" if site.cloud else "Server", "buildNumber": build,
        "buildDate": "2024-11-04T00:00:00.000+0000", "serverTime": iso_ms(now()),
        "scmInfo": "5d6e3f8b1c2a4e7f9a0b1c2d3e4f5a6b7c8d9e0f", "serverTitle": "Jira",
        "defaultLocale": {"locale": "en_US"}, "serverTimeZone": "Etc/UTC",
    }
    if not site.cloud:
        info["databaseBuildNumber"] = build
    return info


def myself(site: JiraSite, request: Request, caller: Caller) -> dict[str, Any]:
    """The ``User`` behind the credentials."""
    url = site_url(site, request)
    user = store.user_json(url, caller.principal, site.cloud)
    user.update({"locale": "en_US", "groups": {"size": 2, "items": []},
                 "applicationRoles": {"size": 1, "items": []}, "expand": "groups,applicationRoles"})
    return user


def my_permissions(site: JiraSite, request: Request, caller: Caller) -> Response:
    """``GET mypermissions``: the requested keys with ``havePermission`` for this caller."""
    wanted = [p.strip() for p in request.query_params.get("permissions", "").split(",") if p.strip()]
    if not wanted:
        return jira_error(400, ["The 'permissions' query parameter is required."])
    unknown = [p for p in wanted if p not in store.PERMISSIONS]
    if unknown:
        return jira_error(400, [f"Unrecognized permission keys: {', '.join(unknown)}"])
    jira = site_state(site, request)
    project_ref = request.query_params.get("projectKey") or request.query_params.get("projectId")
    if project_ref and jira.project(project_ref) is None:
        return jira_error(404, [f"No project could be found with key '{project_ref}'."])
    issue_ref = request.query_params.get("issueKey") or request.query_params.get("issueId")
    if issue_ref and jira.issue(issue_ref) is None:
        return jira_error(404, ["Issue does not exist or you do not have permission to see it."])
    held = store.held_permissions(caller.noperm, caller.admin)
    body = {key: {"id": store.PERMISSIONS[key][0], "key": key, "name": store.PERMISSIONS[key][1],
                  "type": store.PERMISSIONS[key][2], "description": "", "havePermission": key in held}
            for key in wanted}
    return json_response(200, {"permissions": body})


def register_core(router: APIRouter, site: JiraSite, version: str) -> None:
    """Add serverInfo, myself, mypermissions and project for one API version."""
    prefix = f"/rest/api/{version}"

    @router.get(f"{prefix}/serverInfo")
    async def get_server_info(request: Request) -> Response:
        if request.headers.get("authorization"):  # anonymous works, but a failed login is still a 401
            await authenticate(site, request)
        return json_response(200, server_info(site, request))

    @router.get(f"{prefix}/myself")
    async def get_myself(request: Request) -> Response:
        caller = await authenticate(site, request)
        return json_response(200, myself(site, request, caller))

    @router.get(f"{prefix}/mypermissions")
    async def get_my_permissions(request: Request) -> Response:
        caller = await authenticate(site, request)
        return my_permissions(site, request, caller)

    @router.get(f"{prefix}/project/{{ref}}")
    async def get_project(request: Request, ref: str) -> Response:
        await authenticate(site, request)
        project = site_state(site, request).project(ref)
        if project is None:
            return jira_error(404, [f"No project could be found with key '{ref}'."])
        return json_response(200, store.project_json(site_url(site, request), project))

