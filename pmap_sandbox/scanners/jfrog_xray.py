"""JFrog Xray REST API (``https://HOST/xray/api/v1``): system version and ping, vulnerability reports.

Auth: ``Authorization: Bearer <access token>``. Errors: ``{"errors": [{"status", "message"}]}``
(JFrog platform shape; Xray's own error body is not confirmed). ``/system/ping`` answers without auth, so it
never proves credentials; that ``/system/version`` refuses a missing token is not confirmed (JFrog's Xray REST
introduction: "A few calls (such as SYSTEM calls) do not require authentication"). ``xray_version`` and
``xray_revision``: public clients (jfrog/jfrog-client-go, jfrog/xray-client-java).

A seeded token's vulnerabilities report (``POST /reports/vulnerabilities``) holds ``count`` generated rows; its
status (``GET /reports/{id}``) is ``running`` for the first ``pending_polls`` reads, then ``completed`` (or the
seeded ``end_status``, such as ``failed``); its content
pages by ``page_num`` (from 1) and ``num_of_rows`` (``total_rows``); ``DELETE /reports/{id}`` removes it (not a
counted request; the deleted ids are kept for tests). The row shape is the unified report's, as exported.
"""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import (
    ErrorStyle,
    Reply,
    guard,
    json_reply,
    parse_scheme,
    seeded,
    store,
    vendor_router,
)

KEY = "jfrog_xray"
router = vendor_router(KEY)
_API = "/xray/api/v1"
_report_ids = itertools.count(1)


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"errors": [{"status": status, "message": message}]})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Unauthorized"),
        sc.BAD: (401, "Bad credentials"),
        sc.ECHO: (401, "Bad credentials: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Service unavailable"),
    },
)


async def _auth(request: Request) -> set[str]:
    return await guard(KEY, STYLE, request, [parse_scheme(request.headers.get("authorization"), "Bearer")])


@router.get(_API + "/system/ping")
async def ping() -> Response:
    """Liveness (no auth)."""
    return json_reply(200, {"status": "pong"})


@router.get(_API + "/system/version")
async def version(request: Request) -> Response:
    """Xray version and revision."""
    await _auth(request)
    return json_reply(200, {"xray_version": "3.92.7", "xray_revision": "5b1e2a9"})


def _token(request: Request) -> str | None:
    return parse_scheme(request.headers.get("authorization"), "Bearer")


_SEVERITIES = ("Critical", "High", "Medium", "Low")


def seeded_row(i: int, repository: str) -> dict[str, Any]:
    """Generated report row ``i`` (deterministic), in the unified vulnerabilities report's shape."""
    return {
        "cves": [{"cve": f"CVE-2024-{50000 + i}", "cvss_v3_score": 7.5,
                  "cvss_v3_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
        "cvss3_max_score": 7.5, "summary": f"Generated vulnerability {i}",
        "description": f"Generated vulnerability {i}",
        "severity": _SEVERITIES[i % len(_SEVERITIES)], "severity_source": "CVSS V3 from Vendor",
        "vulnerable_component": f"npm://pkg{i}:1.0.{i}", "component_physical_path": f"node_modules/pkg{i}",
        "impacted_artifact": f"default/{repository}/app-{i % 3}.tgz", "impact_path": [f"default/{repository}/app"],
        "path": f"{repository}/app-{i % 3}.tgz", "fixed_versions": [f"1.1.{i}"], "published": "2024-03-01T00:00:00Z",
        "artifact_scan_time": "2024-03-02T00:00:00Z", "issue_id": f"XRAY-{100000 + i}", "package_type": "npm",
        "provider": "JFrog", "references": [f"https://nvd.nist.gov/vuln/detail/CVE-2024-{50000 + i}"],
    }


@router.post(_API + "/reports/vulnerabilities")
async def vulnerability_report(request: Request) -> Response:
    """Start a vulnerabilities report (needs the Reports/Manage Reports permission)."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Forbidden"))
    report = next(_report_ids)
    data = seeded(request, KEY, _token(request), STYLE)
    if data is not None:
        body = await request.json()
        repos = [str(r.get("name")) for r in (body.get("resources") or {}).get("repositories") or []
                 if isinstance(r, dict) and r.get("name")]
        if not body.get("name") or not repos:
            raise Reply(_error(400, "a report needs a name and resources"))
        store(request, KEY).setdefault("reports", {})[report] = {
            "credential": _token(request), "polls": int(data.get("pending_polls", 0)), "repository": repos[0]}
    return json_reply(200, {"report_id": report, "status": "pending"})


def _seeded_report(request: Request, report: int) -> tuple[dict[str, Any], dict[str, Any]]:
    data = seeded(request, KEY, _token(request), STYLE)
    found = store(request, KEY).get("reports", {}).get(report)
    if data is None or found is None or found["credential"] != _token(request):
        raise Reply(_error(404, "Report not found"))
    return data, found


@router.get(_API + "/reports/{report}")
async def report_status(report: int, request: Request) -> Response:
    """A report's details: ``running`` while it is generated, then ``completed``."""
    await _auth(request)
    data, found = _seeded_report(request, report)
    running = found["polls"] > 0
    found["polls"] -= 1
    return json_reply(200, {"id": report, "name": f"report-{report}", "report_type": "vulnerability",
                            "status": "running" if running else str(data.get("end_status") or "completed"),
                            "total_artifacts": 3,
                            "num_of_processed_artifacts": 1 if running else 3, "progress": 33 if running else 100,
                            "number_of_rows": int(data["count"]), "start_time": "2024-03-02T00:00:00Z"})


@router.post(_API + "/reports/vulnerabilities/{report}")
async def report_content(report: int, request: Request, page_num: int = 1, num_of_rows: int = 10) -> Response:
    """One page of a completed report's rows (``page_num`` from 1, ``num_of_rows``)."""
    await _auth(request)
    data, found = _seeded_report(request, report)
    if found["polls"] >= 0:
        raise Reply(_error(400, "the report is not completed"))
    if page_num < 1 or num_of_rows < 1:
        raise Reply(_error(400, "page_num and num_of_rows must be at least 1"))
    start, count = (page_num - 1) * num_of_rows, int(data["count"])
    rows = [seeded_row(i, found["repository"]) for i in range(start, min(start + num_of_rows, count))]
    return json_reply(200, {"total_rows": count, "rows": rows})


@router.delete(_API + "/reports/{report}")
async def delete_report(report: int, request: Request) -> Response:
    """Delete a report (not counted; the id is remembered for tests)."""
    await _auth(request)
    reports = store(request, KEY).setdefault("reports", {})
    if reports.pop(report, None) is None:
        raise Reply(_error(404, "Report not found"))
    store(request, KEY).setdefault("deleted", []).append(report)
    return json_reply(200, {"info": "Report deleted successfully"})


VENDOR = {
    "category": "SCA",
    "base_path": f"/{KEY}/xray/api/v1",
    "auth": "Authorization: Bearer <access token>",
    "valid_credentials": {"access_token": "jfrog-access-token-0001"},
    "connection": {"repositories": ["libs-release-local"]},
    "notes": "/system/ping is anonymous; noperm -> 403 on report creation",
}
