"""Azure DevOps Services (``https://dev.azure.com/{org}``): authentication, errors, connectionData.

A personal access token goes as HTTP Basic password with any (usually empty) user name. A missing
or refused credential answers 401 only when the client sends ``X-TFS-FedAuthRedirect: Suppress``;
otherwise the service answers a sign-in page (203 with HTML for API clients, a 302 to the sign-in
URL for browsers), which naive clients mistake for success. Errors carry the ``VssServiceException``
JSON shape. POST/PATCH/PUT/DELETE need ``api-version``; preview resources (``connectionData``)
refuse a version without ``-preview``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work._base import (
    Caller,
    Dialect,
    Reply,
    admit,
    base_url,
    json_response,
    parse_basic,
    parse_scheme,
    text_response,
)

USER_EMAIL = "pmap-bot@example.com"
USER_ID = "9c1d2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
PROJECT_ID = "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c"
PROJECT_NAME = "Security"
SIGN_IN_HTML = ("<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head>"
                "<body><p>Sign in to your account</p></body></html>")


ASSEMBLIES = {  # exceptions that live outside Microsoft.VisualStudio.Services.WebApi
    "UnauthorizedRequestException": "Microsoft.TeamFoundation.Framework.Server",
    "ProjectDoesNotExistException": "Microsoft.TeamFoundation.Core.WebApi",
    "RuleValidationException": "Microsoft.TeamFoundation.WorkItemTracking.Server",
    "WorkItemUnauthorizedAccessException": "Microsoft.TeamFoundation.WorkItemTracking.Server",
}


def vss_error(status: int, message: str, type_key: str = "VssServiceException",
              headers: dict[str, str] | None = None) -> Response:
    """The ``VssServiceException`` error body (``typeName`` qualified by the exception's assembly)."""
    assembly = ASSEMBLIES.get(type_key, "Microsoft.VisualStudio.Services.WebApi")
    return json_response(status, {"$id": "1", "innerException": None, "message": message,
                                  "typeName": f"{assembly}.{type_key}, {assembly}",
                                  "typeKey": type_key, "errorCode": 0, "eventId": 3000}, headers)


class AzureDevOpsDialect(Dialect):
    def missing(self, request: Request) -> Response:
        return self._refuse(request, "TF400813: Resource not available for anonymous access. Client "
                                     "authentication required.")

    def bad(self, request: Request) -> Response:
        return self._refuse(request, "TF400813: The user is not authorized to access this resource.")

    def expired(self, request: Request) -> Response:
        return self._refuse(request, "Access Denied: The Personal Access Token used has expired.")

    def _refuse(self, request: Request, reason: str) -> Response:
        if request.headers.get("x-tfs-fedauthredirect", "").lower() == "suppress":
            return Response(status_code=401, headers={
                "WWW-Authenticate": f'Bearer authorization_uri=https://login.microsoftonline.com/{TENANT}, '
                                    'Basic realm="https://tfsprodweu5.visualstudio.com/", TFS-Federated',
                "X-TFS-ServiceError": quote(reason), "X-TFS-FedAuthRealm": "https://tfsprodweu5.visualstudio.com/",
                "X-VSS-ResourceTenant": TENANT})
        if "text/html" in request.headers.get("accept", ""):
            vendor_key = request.url.path.split("/")[1]  # the sign-in page lives beside the API
            target = f"{base_url(request, vendor_key)}/_signin?realm=dev.azure.com&reply_to=" + \
                quote(str(request.url), safe="")
            return Response(status_code=302, headers={"Location": target})
        return text_response(203, SIGN_IN_HTML, media_type="text/html; charset=utf-8")

    def echo(self, request: Request, echoed: str) -> Response:
        return vss_error(401, f"TF400813: The user is not authorized to access this resource. Received: {echoed}",
                         "UnauthorizedRequestException")

    def down(self, request: Request) -> Response:
        return vss_error(503, "TF400898: An Internal Error Occurred. The service is unavailable.")

    def ratelimited(self, request: Request) -> Response:
        return vss_error(429, "TF400733: The request has been canceled: Request was blocked due to exceeding "
                              "usage of resource 'Core' in namespace 'User'.", "RequestBlockedException",
                         {"X-RateLimit-Resource": "Core", "X-RateLimit-Delay": "1.0", "X-RateLimit-Limit": "200",
                          "X-RateLimit-Remaining": "0"})


DIALECT = AzureDevOpsDialect()


@dataclass(frozen=True)
class AdoCall:
    """An authenticated Azure DevOps request."""

    caller: Caller
    key: str
    org: str
    root: str  # http://host:port/<key>/<org>

    def project_url(self) -> str:
        return f"{self.root}/{PROJECT_ID}"


async def authenticate(key: str, request: Request, org: str) -> AdoCall:
    """The call context, or raise :class:`Reply` with the sign-in page or 401."""
    header = request.headers.get("authorization")
    if not header:
        raise Reply(DIALECT.missing(request))
    basic = parse_basic(header)
    secret = basic[1] if basic else parse_scheme(header, "bearer")
    if secret is None:
        raise Reply(DIALECT.bad(request))
    user = basic[0] if basic else ""
    caller = await admit(key, DIALECT, request, user or USER_EMAIL, secret, checked=[user])
    if caller.expired:
        raise Reply(DIALECT.expired(request))
    return AdoCall(caller, key, org, f"{base_url(request, key)}/{org}")


def require_version(request: Request, preview: bool = False) -> None:
    """Refuse a write without ``api-version`` and a preview resource without ``-preview``."""
    version = request.query_params.get("api-version")
    if version is None:
        accept = request.headers.get("accept", "")
        version = accept.split("api-version=", 1)[1].split(";")[0].strip() if "api-version=" in accept else None
    if version is None and request.method in ("POST", "PATCH", "PUT", "DELETE"):
        raise Reply(vss_error(400, f'No api-version was supplied for the "{request.method}" request. The version '
                                   'must be supplied either as part of the Accept header (e.g. "application/json; '
                                   'api-version=1.0") or as a query parameter (e.g. \'?api-version=1.0\').',
                              "VssVersionNotSpecifiedException"))
    if preview and version is not None and "-preview" not in version:
        raise Reply(vss_error(400, f'The requested version "{version}" of the resource is under preview. The '
                                   '-preview flag must be supplied in the api-version for such requests. For '
                                   f'example: "{version}-preview"', "VssInvalidPreviewVersionException"))


def check_project(project: str) -> None:
    """Only the ``Security`` project exists (by name or id)."""
    if project not in (PROJECT_NAME, PROJECT_ID) and project.lower() != PROJECT_NAME.lower():
        raise Reply(vss_error(404, f"TF200016: The following project does not exist: {project}. Verify that "
                                   "the name of the project is correct and that the project exists on the "
                                   "specified Azure DevOps Server.", "ProjectDoesNotExistException"))


def identity_ref(call: AdoCall) -> dict[str, Any]:
    """An ``IdentityRef`` for the sandbox user."""
    return {"displayName": "PMAP Bot", "url": f"https://spsprodweu5.vssps.visualstudio.com/_apis/Identities/{USER_ID}",
            "_links": {"avatar": {"href": f"{call.root}/_apis/GraphProfile/MemberAvatars/aad.{USER_ID}"}},
            "id": USER_ID, "uniqueName": USER_EMAIL, "imageUrl": f"{call.root}/_api/_common/identityImage?id={USER_ID}",
            "descriptor": f"aad.{USER_ID}"}


def forbidden(call: AdoCall, action: str) -> Response:
    """The 403 answered to the ``noperm`` scenario."""
    return vss_error(403, f"The user '{USER_EMAIL}' does not have permission to {action}.",
                     "UnauthorizedAccessException")


def register(router: APIRouter, key: str) -> None:
    """Add connectionData, projects and the sign-in page."""

    @router.get("/_signin")
    async def sign_in() -> Response:
        return text_response(200, SIGN_IN_HTML, media_type="text/html; charset=utf-8")

    @router.get("/{org}/_apis/connectionData")
    async def connection_data(request: Request, org: str) -> Response:
        await authenticate(key, request, org)
        require_version(request, preview=True)
        user = {"id": USER_ID, "descriptor": f"Microsoft.IdentityModel.Claims.ClaimsIdentity;{TENANT}\\{USER_EMAIL}",
                "subjectDescriptor": f"aad.{USER_ID}", "providerDisplayName": "PMAP Bot", "isActive": True,
                "properties": {"Account": {"$type": "System.String", "$value": USER_EMAIL}},
                "resourceVersion": 2, "metaTypeId": 0}
        return json_response(200, {
            "authenticatedUser": user, "authorizedUser": user, "instanceId": str(uuid.uuid5(uuid.NAMESPACE_URL, org)),
            "deploymentId": "a4b6c8d0-1e2f-4a5b-9c8d-7e6f5a4b3c2d", "deploymentType": "hosted",
            "locationServiceData": {"serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
                                    "defaultAccessMappingMoniker": "PublicAccessMapping",
                                    "lastChangeId": 321, "lastChangeId64": 321}})

    @router.get("/{org}/_apis/projects")
    async def list_projects(request: Request, org: str) -> Response:
        call = await authenticate(key, request, org)
        require_version(request)
        return json_response(200, {"count": 1, "value": [{
            "id": PROJECT_ID, "name": PROJECT_NAME, "url": f"{call.root}/_apis/projects/{PROJECT_ID}",
            "state": "wellFormed", "revision": 11, "visibility": "private", "lastUpdateTime": "2024-04-01T08:00:00Z"}]})
