"""OWASP Dependency-Track API server: version (anonymous), projects, team/self permissions, findings.

Auth: ``X-Api-Key``. Alpine answers 401/403 with an empty body (the sandbox's ``echo`` scenario
puts the key in a plain-text body, as a misconfigured proxy would). Permissions come from
``GET /api/v1/team/self`` (``{"uuid", "name", "permissions": [{"name", "description"}]}``).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, vendor_router

KEY = "dependency_track"
router = vendor_router(KEY)
PROJECT_UUID = "b1e2c3d4-0000-4000-8000-00000000d7a1"
READ = ["VIEW_PORTFOLIO", "VIEW_VULNERABILITY"]
ADMIN = ["ACCESS_MANAGEMENT", "SYSTEM_CONFIGURATION", "PORTFOLIO_MANAGEMENT", "VULNERABILITY_ANALYSIS"]


def _error(status: int, message: str) -> Response:
    return Response(message, status_code=status, media_type="text/plain")


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, ""),
        sc.BAD: (401, ""),
        sc.ECHO: (401, "Invalid API key: {echo}"),
        sc.RATELIMIT: (429, ""),
        sc.DOWN: (503, ""),
    },
)


async def _auth(request: Request) -> set[str]:
    return await guard(KEY, STYLE, request, [request.headers.get("x-api-key")])


def _permissions(marks: set[str]) -> list[str]:
    if sc.NOPERM in marks:
        return ["VIEW_BADGES"]
    return READ + (ADMIN if sc.ADMIN in marks else [])


def _require(marks: set[str], permission: str) -> None:
    if permission not in _permissions(marks):
        raise Reply(_error(403, ""))


@router.get("/api/version")
async def version() -> Response:
    """Application and framework versions (no auth)."""
    return json_reply(
        200,
        {
            "version": "4.11.4",
            "timestamp": "2024-06-19T12:00:00Z",
            "uuid": "a3f1b2c4-sandbox-dt",
            "systemUuid": "5e6f7a8b-sandbox-system",
            "application": "Dependency-Track",
            "framework": {
                "name": "Alpine",
                "version": "2.2.5",
                "timestamp": "2024-05-01T00:00:00Z",
                "uuid": "1a2b3c4d-sandbox-alpine",
            },
        },
    )


@router.get("/api/v1/team/self")
async def team_self(request: Request) -> Response:
    """The API key's team and its permissions."""
    marks = await _auth(request)
    return json_reply(
        200,
        {
            "uuid": "7f00c0de-sandbox-team",
            "name": "PMAP automation",
            "permissions": [{"name": p, "description": p.replace("_", " ").title()} for p in _permissions(marks)],
        },
    )


@router.get("/api/v1/project")
async def projects(request: Request, pageSize: int = 100, pageNumber: int = 1) -> Response:
    """Projects (needs VIEW_PORTFOLIO); total in ``X-Total-Count``."""
    marks = await _auth(request)
    _require(marks, "VIEW_PORTFOLIO")
    project = {
        "uuid": PROJECT_UUID,
        "name": "shop",
        "version": "1.0.0",
        "classifier": "APPLICATION",
        "active": True,
        "lastBomImport": 1704164645000,
    }
    listed = [project][: max(pageSize, 0)] if pageNumber == 1 else []
    return json_reply(200, listed, headers={"X-Total-Count": "1"})


@router.get("/api/v1/finding/project/{uuid}")
async def findings(uuid: str, request: Request) -> Response:
    """Findings of one project (needs VIEW_VULNERABILITY)."""
    marks = await _auth(request)
    _require(marks, "VIEW_VULNERABILITY")
    if uuid != PROJECT_UUID:
        raise Reply(_error(404, "The project could not be found."))
    return json_reply(
        200,
        [
            {
                "component": {
                    "uuid": "c0000000-sandbox",
                    "name": "lodash",
                    "version": "4.17.15",
                    "purl": "pkg:npm/lodash@4.17.15",
                    "project": PROJECT_UUID,
                },
                "vulnerability": {
                    "uuid": "v0000000-sandbox",
                    "vulnId": "CVE-2020-8203",
                    "source": "NVD",
                    "severity": "HIGH",
                    "cvssV3BaseScore": 7.4,
                    "cwes": [{"cweId": 1321, "name": "Prototype Pollution"}],
                },
                "analysis": {"state": "NOT_SET", "isSuppressed": False},
                "attribution": {"analyzerIdentity": "INTERNAL_ANALYZER", "attributedOn": "2024-01-02T03:04:05Z"},
                "matrix": f"{PROJECT_UUID}:c0000000-sandbox:v0000000-sandbox",
            }
        ],
        headers={"X-Total-Count": "1"},
    )


VENDOR = {
    "category": "SCA",
    "base_path": f"/{KEY}",
    "auth": "X-Api-Key",
    "valid_credentials": {"api_key": "odt_sandbox0001"},
    "notes": "401/403 bodies are empty as Alpine sends them; noperm -> team has only VIEW_BADGES",
}
