"""OWASP Dependency-Track API server: version (anonymous), projects, team/self permissions, findings.

Auth: ``X-Api-Key``. Alpine answers 401/403 with an empty body (the sandbox's ``echo`` scenario
puts the key in a plain-text body, as a misconfigured proxy would). Permissions come from
``GET /api/v1/team/self`` (``{"uuid", "name", "permissions": [{"name", "description"}]}``).

A seeded key's portfolio holds ``count`` generated findings, ``per_project`` (default 100) to a project:
the project list pages by ``pageNumber``/``pageSize`` with ``X-Total-Count``, and a project's findings
come whole (the route is not paged), suppressed ones (every ``suppressed_every``-th) only with
``suppressed=true``; every ``fixed_every``-th finding's analysis is RESOLVED.
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, seeded, vendor_router

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


#: the first generated finding's attribution time; finding ``i`` was attributed ``i`` hours later
SEED_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)
_SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO")


def _project_uuid(p: int) -> str:
    return str(uuidlib.UUID(int=0xB1E2C3D4_0000_4000_8000_000000000000 + p))


def _per_project(data: dict[str, Any]) -> int:
    return max(1, int(data.get("per_project", 100)))


def _project_count(data: dict[str, Any]) -> int:
    return -(-int(data["count"]) // _per_project(data))


def _seeded_project(p: int) -> dict[str, Any]:
    return {"uuid": _project_uuid(p), "name": f"app{p}", "version": "1.0.0", "classifier": "APPLICATION",
            "active": True, "lastBomImport": 1709251200000}


def seeded_finding(i: int, project: str, data: dict[str, Any]) -> dict[str, Any]:
    """Generated finding ``i`` (deterministic) of the project ``project``, in the API's finding shape."""
    fixed_every, suppressed_every = int(data.get("fixed_every", 0)), int(data.get("suppressed_every", 0))
    resolved = fixed_every > 0 and i % fixed_every == fixed_every - 1
    suppressed = suppressed_every > 0 and i % suppressed_every == suppressed_every - 1
    comp, vuln = str(uuidlib.UUID(int=0xC0000000_0000_4000_8000_000000000000 + i)), f"v-{i}"
    return {
        "component": {"uuid": comp, "name": f"pkg{i}", "version": "1.0.0", "purl": f"pkg:npm/pkg{i}@1.0.0",
                      "project": project},
        "vulnerability": {"uuid": str(uuidlib.UUID(int=0xD0000000_0000_4000_8000_000000000000 + i)),
                          "vulnId": f"CVE-2024-{10000 + i}", "source": "NVD",
                          "severity": _SEVERITIES[i % len(_SEVERITIES)], "cwes": []},
        "analysis": {"state": "RESOLVED" if resolved else "NOT_SET", "isSuppressed": suppressed},
        "attribution": {"analyzerIdentity": "INTERNAL_ANALYZER",
                        "attributedOn": (SEED_EPOCH + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "matrix": f"{project}:{comp}:{vuln}",
    }


def _seeded_projects(page_size: int, page_number: int, data: dict[str, Any]) -> Response:
    total = _project_count(data)
    start = (max(page_number, 1) - 1) * max(page_size, 0)
    listed = [_seeded_project(p) for p in range(start, min(start + max(page_size, 0), total))]
    return json_reply(200, listed, headers={"X-Total-Count": str(total)})


def _seeded_findings(project: str, suppressed: bool, data: dict[str, Any]) -> Response:
    found = next((p for p in range(_project_count(data)) if _project_uuid(p) == project), None)
    if found is None:
        raise Reply(_error(404, "The project could not be found."))
    per = _per_project(data)
    items = [seeded_finding(i, project, data) for i in range(found * per, min((found + 1) * per, int(data["count"])))]
    listed = [f for f in items if suppressed or not f["analysis"]["isSuppressed"]]
    return json_reply(200, listed, headers={"X-Total-Count": str(len(listed))})


@router.get("/api/v1/project")
async def projects(request: Request, pageSize: int = 100, pageNumber: int = 1) -> Response:
    """Projects (needs VIEW_PORTFOLIO); total in ``X-Total-Count``."""
    marks = await _auth(request)
    _require(marks, "VIEW_PORTFOLIO")
    data = seeded(request, KEY, request.headers.get("x-api-key"), STYLE)
    if data is not None:
        return _seeded_projects(pageSize, pageNumber, data)
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
async def findings(uuid: str, request: Request, suppressed: bool = False) -> Response:
    """Findings of one project (needs VIEW_VULNERABILITY); suppressed ones only with ``suppressed=true``."""
    marks = await _auth(request)
    _require(marks, "VIEW_VULNERABILITY")
    data = seeded(request, KEY, request.headers.get("x-api-key"), STYLE)
    if data is not None:
        return _seeded_findings(uuid, suppressed, data)
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
