"""Semgrep AppSec Platform web API (``https://semgrep.dev/api/v1``): deployments and findings.

Auth: ``Authorization: Bearer <token>``; the token needs the "Web API" scope. ``noperm`` is a token
without it (an Agent/CI-only token): the Web API answers it 404, as Semgrep's knowledge base says
("Web API error 404 and token scopes", semgrep.dev/docs/kb/semgrep-appsec-platform/api-404-token-scope),
not 403. Errors are ``{"error": "..."}`` (shape not confirmed against Semgrep's docs).

A seeded token's deployment holds ``count`` generated Code findings, paged by ``page`` (from 0) and
``page_size`` (100 to 3000, as Semgrep documents); every ``fixed_every``-th is fixed, every
``ignored_every``-th ignored (as a false positive when its number is even).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, json_reply, parse_scheme, seeded, vendor_router

KEY = "semgrep"
router = vendor_router(KEY)
_API = "/api/v1"
_SLUG = "example-org"


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"error": message})


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Not authorized"),
        sc.BAD: (401, "Invalid API token"),
        sc.ECHO: (401, "Invalid API token: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Service unavailable"),
    },
)


async def _auth(request: Request) -> set[str]:
    marks = await guard(KEY, STYLE, request, [parse_scheme(request.headers.get("authorization"), "Bearer")])
    if sc.NOPERM in marks:
        # an Agent (CI) token on the Web API: 404, per Semgrep's KB (the deployment is not named)
        raise Reply(_error(404, "Not found"))
    return marks


@router.get(_API + "/deployments")
async def deployments(request: Request) -> Response:
    """The deployment (organization) the token belongs to."""
    await _auth(request)
    base = str(request.base_url).rstrip("/")
    return json_reply(
        200,
        {
            "deployments": [
                {
                    "id": 1,
                    "name": "Example Org",
                    "slug": _SLUG,
                    "findings": {"url": f"{base}/{KEY}{_API}/deployments/{_SLUG}/findings"},
                }
            ]
        },
    )


#: the first generated finding's detection time; finding ``i`` was detected ``i`` hours later
SEED_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)
_SEVERITIES = ("critical", "high", "medium", "low")


def seeded_finding(i: int, data: dict[str, Any]) -> dict[str, Any]:
    """Generated Code finding ``i`` (deterministic), in the web API's finding shape."""
    fixed_every, ignored_every = int(data.get("fixed_every", 0)), int(data.get("ignored_every", 0))
    fixed = fixed_every > 0 and i % fixed_every == fixed_every - 1
    ignored = not fixed and ignored_every > 0 and i % ignored_every == ignored_every - 1
    status = "fixed" if fixed else "ignored" if ignored else "open"
    return {
        "id": 500000 + i, "ref": "main", "first_seen_scan_id": 1, "syntactic_id": f"s{i:08x}",
        "match_based_id": f"m{i:08x}", "status": status,
        "state": "fixed" if fixed else "muted" if ignored else "unresolved",
        "triage_state": "ignored" if ignored else "untriaged",
        "triage_reason": ("false_positive" if i % 2 == 0 else "acceptable_risk") if ignored else None,
        "severity": _SEVERITIES[i % len(_SEVERITIES)], "confidence": "high",
        "repository": {"name": "example/shop", "url": "https://github.com/example/shop"},
        "rule_name": f"generated.rule-{i}", "rule_message": f"Generated finding {i}",
        "location": {"file_path": f"src/file{i}.py", "line": i % 500 + 1, "column": 1, "end_line": i % 500 + 1,
                     "end_column": 10},
        "relevant_since": (SEED_EPOCH + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "categories": ["security"],
    }


@router.get(_API + "/deployments/{slug}/findings")
async def findings(slug: str, request: Request, page: int = 0, page_size: int = 100) -> Response:
    """One page of findings (one sample; a seeded token's generated set, paged)."""
    await _auth(request)
    if slug != _SLUG:
        raise Reply(_error(404, "Deployment not found"))
    data = seeded(request, KEY, parse_scheme(request.headers.get("authorization"), "Bearer"), STYLE)
    if data is not None:
        if not 100 <= page_size <= 3000 or page < 0:
            raise Reply(_error(400, "page_size must be between 100 and 3000 and page at least 0"))
        start = page * page_size
        listed = [seeded_finding(i, data) for i in range(start, min(start + page_size, int(data["count"])))]
        return json_reply(200, {"findings": listed})
    item = {
        "id": 1001,
        "ref": "main",
        "first_seen_scan_id": 1,
        "syntactic_id": "a1b2c3",
        "match_based_id": "d4e5f6",
        "state": "unresolved",
        "triage_state": "untriaged",
        "severity": "high",
        "confidence": "high",
        "repository": {"name": "example/shop", "url": "https://github.com/example/shop"},
        "rule_name": "java.lang.security.audit.sqli.jdbc-sqli",
        "rule_message": "Possible SQL injection",
        "location": {"file_path": "src/Main.java", "line": 42, "column": 5, "end_line": 42, "end_column": 60},
        "relevant_since": "2024-01-02T03:04:05Z",
        "categories": ["security"],
    }
    return json_reply(200, {"findings": [item] if page == 0 else []})


VENDOR = {
    "category": "SAST",
    "base_path": f"/{KEY}/api/v1",
    "auth": "Authorization: Bearer <token>",
    "valid_credentials": {"token": "semgrep-web-api-token-0001"},
    "notes": "noperm -> 404 (token without the Web API scope, as Semgrep's KB documents)",
}
