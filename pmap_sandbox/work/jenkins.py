"""Jenkins remote access API: ``/api/json`` (version in ``X-Jenkins``), crumbs, jobs, builds, artifacts.

Authentication is HTTP Basic ``user:api_token``. As Jenkins does, a request without credentials is
anonymous and answers 403 with ``X-You-Are-Authenticated-As: anonymous`` and the permission it
lacks (not 401); refused credentials answer 401 with ``WWW-Authenticate``. ``noperm`` has Overall/Read
but no Job/Read, so it sees no jobs (job URLs answer 404, as Jenkins hides them). Only ``admin``
reads ``/pluginManager/api/json``: its API needs Overall/SystemRead, which Jenkins folds into
Overall/Administer unless SystemRead is enabled (``PluginManager.getApi``, ``ACL.checkPermission`` in
jenkinsci/jenkins). ``/whoAmI`` is an unprotected root action (``hudson.security.WhoAmI``): without
credentials it answers 200 for the anonymous user (``anonymous`` true) instead of the 403. Requests
authenticated with an API token are exempt from CSRF crumbs, so ``POST /job/{name}/build`` needs none.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work._artifacts import sarif_report, zip_of
from pmap_sandbox.work._base import (
    Caller,
    Dialect,
    Reply,
    add_fallback,
    admit,
    base_url,
    json_response,
    make_router,
    now,
    parse_basic,
    state,
    text_response,
)

KEY = "jenkins"
VERSION = "2.479.3"
JOB = "webapp-security"
HEADERS = {"X-Jenkins": VERSION, "X-Hudson": "1.395", "X-Jenkins-Session": "5d1c7a2e",
           "X-Content-Type-Options": "nosniff"}
ARTIFACTS = {"reports/semgrep.sarif": sarif_report("Semgrep OSS", path="src/handler.py", line=7)}
BUILDS = {7: "SUCCESS", 8: None}  # number -> result (None while building)


def _html(status: int, title: str, extra: dict[str, str] | None = None) -> Response:
    body = (f"<html><head><meta http-equiv='Content-Type' content='text/html;charset=utf-8'/><title>Error {status} "
            f"{title}</title></head><body><h2>HTTP ERROR {status} {title}</h2></body></html>")
    return text_response(status, body, media_type="text/html;charset=utf-8", headers={**HEADERS, **(extra or {})})


def _permission_denied(who: str, permission: str) -> Response:
    return _html(403, "Forbidden", {"X-You-Are-Authenticated-As": who, "X-Required-Permission": permission,
                                    "X-Permission-Implied-By": "hudson.model.Hudson.Administer"})


class JenkinsDialect(Dialect):
    def missing(self, request: Request) -> Response:
        response = _permission_denied("anonymous", "hudson.model.Hudson.Read")
        response.headers["X-You-Are-In-Group-Disabled"] = (
            "JENKINS-39402: use -Dhudson.security.AccessDeniedException2.REPORT_GROUP_HEADERS=true "
            "or use /whoAmI to diagnose")
        return response

    def bad(self, request: Request) -> Response:
        basic = parse_basic(request.headers.get("authorization"))
        user = basic[0] if basic else ""
        return _html(401, f"Invalid password/token for user: {user}", {"WWW-Authenticate": 'Basic realm="Jenkins"'})

    def echo(self, request: Request, echoed: str) -> Response:
        return _html(401, f"Invalid password/token: {echoed}", {"WWW-Authenticate": 'Basic realm="Jenkins"'})

    def down(self, request: Request) -> Response:
        return _html(503, "Please wait while Jenkins is getting ready to work")

    def ratelimited(self, request: Request) -> Response:
        return _html(429, "Too Many Requests")


DIALECT = JenkinsDialect()


class Jobs:
    """Queue numbering (per server)."""

    def __init__(self) -> None:
        self.queue_ids = itertools.count(101)


async def authenticate(request: Request) -> Caller:
    """The caller, or raise the 403 (anonymous) / 401 (refused) Jenkins answers."""
    header = request.headers.get("authorization")
    if not header:
        raise Reply(DIALECT.missing(request))
    basic = parse_basic(header)
    if basic is None or not basic[0]:
        raise Reply(DIALECT.bad(request))
    return await admit(KEY, DIALECT, request, basic[0], basic[1], checked=[basic[0]])


def _json(body: Any) -> Response:
    return json_response(200, body, HEADERS)


def _build_ref(root: str, number: int) -> dict[str, Any]:
    return {"_class": "hudson.model.FreeStyleBuild", "number": number, "url": f"{root}/job/{JOB}/{number}/"}


def _build_json(root: str, number: int) -> dict[str, Any]:
    result = BUILDS[number]
    started = int(now().timestamp() * 1000) - (8 - number) * 3_600_000
    return {"_class": "hudson.model.FreeStyleBuild", "actions": [], "building": result is None,
            "artifacts": [{"displayPath": p.rsplit("/", 1)[-1], "fileName": p.rsplit("/", 1)[-1], "relativePath": p}
                          for p in ARTIFACTS] if result == "SUCCESS" else [],
            "description": None, "displayName": f"#{number}", "duration": 61234 if result else 0,
            "estimatedDuration": 60000, "fullDisplayName": f"{JOB} #{number}", "id": str(number),
            "number": number, "result": result, "timestamp": started, "url": f"{root}/job/{JOB}/{number}/"}


def _resolve_build(ref: str) -> int:
    aliases = {"lastBuild": 8, "lastCompletedBuild": 7, "lastSuccessfulBuild": 7, "lastStableBuild": 7}
    number = aliases.get(ref) or (int(ref) if ref.isdigit() else None)
    if number not in BUILDS:
        raise Reply(_html(404, "Not Found"))
    return number


def _visible_job(caller: Caller, name: str) -> None:
    if caller.noperm or name != JOB:  # without Job/Read Jenkins answers 404, hiding the job
        raise Reply(_html(404, "Not Found"))


def build_router() -> APIRouter:
    """The Jenkins router."""
    router = make_router(KEY)

    @router.get("/api/json")
    async def root_api(request: Request) -> Response:
        caller = await authenticate(request)
        root = base_url(request, KEY)
        jobs = [] if caller.noperm else [{"_class": "hudson.model.FreeStyleProject", "name": JOB,
                                          "url": f"{root}/job/{JOB}/", "color": "blue_anime"}]
        return _json({"_class": "hudson.model.Hudson", "assignedLabels": [{"name": "built-in"}], "mode": "NORMAL",
                      "nodeDescription": "the Jenkins controller's built-in node", "nodeName": "",
                      "numExecutors": 2, "description": None, "jobs": jobs, "overallLoad": {},
                      "primaryView": {"_class": "hudson.model.AllView", "name": "all", "url": f"{root}/"},
                      "quietDownReason": None, "quietingDown": False, "slaveAgentPort": 50000,
                      "unlabeledLoad": {"_class": "jenkins.model.UnlabeledLoadStatistics"},
                      "url": f"{root}/", "useCrumbs": True, "useSecurity": True, "views": []})

    @router.get("/crumbIssuer/api/json")
    async def crumb(request: Request) -> Response:
        caller = await authenticate(request)
        value = hashlib.sha256(f"crumb:{caller.principal}".encode()).hexdigest()
        response = _json({"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": value,
                          "crumbRequestField": "Jenkins-Crumb"})
        session_id = hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()
        response.set_cookie("JSESSIONID.5d1c7a2e", session_id, httponly=True)
        return response

    @router.get("/whoAmI/api/json")
    async def who_am_i(request: Request) -> Response:
        if not request.headers.get("authorization"):  # an UnprotectedRootAction: anonymous may read it
            return _json({"_class": "hudson.security.WhoAmI", "anonymous": True, "authenticated": True,
                          "authorities": ["anonymous"], "details": None, "name": "anonymous",
                          "toString": "AnonymousAuthenticationToken [Principal=anonymous, Credentials=[PROTECTED], "
                                      "Authenticated=true, Details=null, Granted Authorities=[anonymous]]"})
        caller = await authenticate(request)
        return _json({"_class": "hudson.security.WhoAmI", "anonymous": False, "authenticated": True,
                      "authorities": ["authenticated"], "details": None, "name": caller.principal,
                      "toString": f"UsernamePasswordAuthenticationToken [Principal={caller.principal}]"})

    @router.get("/pluginManager/api/json")
    async def plugins(request: Request) -> Response:
        caller = await authenticate(request)
        if not caller.admin:
            return _permission_denied(caller.principal, "hudson.model.Hudson.Administer")
        return _json({"_class": "hudson.LocalPluginManager", "plugins": [
            {"active": True, "enabled": True, "shortName": "warnings-ng", "version": "11.4.0"}]})

    @router.get("/job/{name}/api/json")
    async def job(request: Request, name: str) -> Response:
        caller = await authenticate(request)
        _visible_job(caller, name)
        root = base_url(request, KEY)
        return _json({"_class": "hudson.model.FreeStyleProject", "actions": [], "description": "",
                      "displayName": JOB, "fullName": JOB, "name": JOB, "url": f"{root}/job/{JOB}/",
                      "buildable": True, "builds": [_build_ref(root, n) for n in sorted(BUILDS, reverse=True)],
                      "color": "blue_anime", "inQueue": False, "nextBuildNumber": 9,
                      "lastBuild": _build_ref(root, 8), "lastCompletedBuild": _build_ref(root, 7),
                      "lastSuccessfulBuild": _build_ref(root, 7), "lastStableBuild": _build_ref(root, 7),
                      "lastFailedBuild": None})

    @router.post("/job/{name}/build")
    async def trigger(request: Request, name: str) -> Response:
        caller = await authenticate(request)
        _visible_job(caller, name)
        number = next(state(request, KEY, Jobs).queue_ids)
        location = f"{base_url(request, KEY)}/queue/item/{number}/"
        return Response(status_code=201, headers={**HEADERS, "Location": location})

    @router.get("/job/{name}/{build}/api/json")
    async def build(request: Request, name: str, build: str) -> Response:
        caller = await authenticate(request)
        _visible_job(caller, name)
        return _json(_build_json(base_url(request, KEY), _resolve_build(build)))

    @router.get("/job/{name}/{build}/artifact/{path:path}")
    async def artifact(request: Request, name: str, build: str, path: str) -> Response:
        caller = await authenticate(request)
        _visible_job(caller, name)
        if BUILDS[_resolve_build(build)] != "SUCCESS":
            return _html(404, "Not Found")
        if path == "*zip*/archive.zip":
            return Response(zip_of({f"archive/{p}": c for p, c in ARTIFACTS.items()}), media_type="application/zip",
                            headers=HEADERS)
        if path not in ARTIFACTS:
            return _html(404, "Not Found")
        return Response(ARTIFACTS[path], media_type="application/octet-stream", headers=HEADERS)

    add_fallback(router, lambda request: _html(404, "Not Found"))
    return router
