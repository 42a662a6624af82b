"""Tenable Vulnerability Management (cloud.tenable.com): session, server properties, vulns export, scans.

Auth: ``X-ApiKeys: accessKey=A; secretKey=S;``. Errors: ``{"statusCode", "error", "message"}``
(as in pyTenable's recorded cassettes). Export status moves PROCESSING -> FINISHED on the second poll.

The export (developer.tenable.com "Export vulnerabilities"; pyTenable ``tenable/io/exports/api.py``) honours
``filters.state`` (default OPEN and REOPENED), ``filters.since`` (unix seconds: findings seen or changed in
any state since) and ``num_assets`` (findings are grouped by asset, that many assets per chunk). It serves
the built-in examples, or the findings seeded with ``POST /_sandbox/seed/tenable_vm``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import (
    ErrorStyle,
    Reply,
    echo_text,
    guard,
    json_reply,
    parse_x_apikeys,
    store,
    vendor_router,
)
from pmap_sandbox.scanners._seeded import Seeded, seeded

KEY = "tenable_vm"
T = TypeVar("T")
router = vendor_router(KEY)

_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
# Tenable VM user roles (permissions bitmask values)
BASIC, STANDARD, ADMINISTRATOR = 16, 32, 64


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"statusCode": status, "error": _REASONS.get(status, "Error"), "message": message})


STYLE = ErrorStyle(
    make=_error,
    messages={
        sc.BAD: (401, "Invalid Credentials"),
        sc.ECHO: (401, "Invalid Credentials for X-ApiKeys: {echo}"),
        sc.RATELIMIT: (429, "You have exceeded the rate limit. Please retry later."),
        sc.DOWN: (503, "Service is temporarily unavailable"),
    },
)


async def _auth(request: Request) -> set[str]:
    keys = parse_x_apikeys(request.headers.get("x-apikeys"))
    return await guard(KEY, STYLE, request, list(keys) if keys else [None])


def _role(marks: set[str]) -> int:
    return ADMINISTRATOR if sc.ADMIN in marks else BASIC if sc.NOPERM in marks else STANDARD


@router.get("/session")
async def session(request: Request) -> Response:
    """The user behind the API keys."""
    marks = await _auth(request)
    return json_reply(
        200,
        {
            "id": 2,
            "uuid": "6e7a9f1e-1f3a-4b1c-9d0e-sandbox00002",
            "username": "pmap@example.com",
            "email": "pmap@example.com",
            "name": "PMAP integration",
            "type": "local",
            "permissions": _role(marks),
            "enabled": True,
            "lockout": 0,
            "container_id": 1,
            "container_uuid": "0f0e2c5e-sandbox-container",
            "lastlogin": 1700000000,
        },
    )


@router.get("/server/properties")
async def server_properties(request: Request) -> Response:
    """Container properties, license expiration included (unix seconds)."""
    marks = await _auth(request)
    exp = int(sc.license_expiry(marks).timestamp())
    return json_reply(
        200,
        {
            "server_version": "6.9.1",
            "nessus_type": "Nessus Cloud",
            "nessus_ui_version": "11.0.46",
            "enterprise": True,
            "expiration": exp,
            "expiration_time": max(0, (exp - int(datetime.now(UTC).timestamp())) // 86400),
            "license": {
                "expiration_date": exp,
                "ips": -1,
                "agents": -1,
                "users": -1,
                "scanners": -1,
                "evaluation": False,
                "apps": {"vm": {"mode": "standard", "expiration_date": exp}},
            },
            "capabilities": {"multi_user": "full", "multi_scanner": True, "report_email_config": True},
            "loaded_plugin_set": "202401010000",
            "plugin_set": "202401010000",
            "idle_timeout": "30",
        },
    )


def _vulns() -> list[dict[str, Any]]:
    asset = {
        "uuid": "4d8f2b9a-0000-4000-8000-00000000a001",
        "hostname": "web01.example.test",
        "fqdn": "web01.example.test",
        "ipv4": "10.0.0.11",
        "operating_system": ["Linux Kernel 5.15"],
        "device_type": "general-purpose",
        "network_id": "00000000-0000-0000-0000-000000000000",
    }
    base = {
        "asset": asset,
        "scan": {"uuid": "scan-0001", "started_at": "2024-01-02T03:04:05Z"},
        "first_found": "2024-01-02T03:04:05Z",
        "last_found": "2024-01-09T03:04:05Z",
        "severity_modification_type": "NONE",
        "indexed": "2024-01-09T03:10:00Z",
    }
    return [
        {
            **base,
            "output": "OpenSSL 1.1.1k detected",
            "state": "OPEN",
            "severity": "high",
            "severity_id": 3,
            "severity_default_id": 3,
            "port": {"port": 443, "protocol": "TCP", "service": "www"},
            "plugin": {
                "id": 148125,
                "name": "OpenSSL 1.1.1 < 1.1.1k Multiple Vulnerabilities",
                "family": "Web Servers",
                "cve": ["CVE-2021-3449", "CVE-2021-3450"],
                "cvss3_base_score": 7.4,
                "risk_factor": "High",
                "solution": "Upgrade to OpenSSL version 1.1.1k or later.",
                "synopsis": "The remote service is affected by multiple vulnerabilities.",
            },
        },
        {
            **base,
            "output": "TLSv1.0 is enabled",
            "state": "FIXED",
            "severity": "medium",
            "severity_id": 2,
            "severity_default_id": 2,
            "port": {"port": 443, "protocol": "TCP", "service": "www"},
            "plugin": {
                "id": 104743,
                "name": "TLS Version 1.0 Protocol Detection",
                "family": "Service detection",
                "cve": [],
                "cvss3_base_score": 6.5,
                "risk_factor": "Medium",
                "solution": "Enable support for TLS 1.2 and 1.3, and disable support for TLS 1.0.",
                "synopsis": "The remote service encrypts traffic using an older version of TLS.",
            },
        },
    ]


FINDINGS_PER_ASSET = 4  # seeded findings n..n+3 share one asset
_SEVERITIES = ("info", "low", "medium", "high", "critical")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seeded_record(item: Seeded) -> dict[str, Any]:
    """Seeded finding ``n`` as an export record: plugin 200000+n on asset n // 4."""
    a, n = item.n // FINDINGS_PER_ASSET, item.n
    severity = _SEVERITIES[n % len(_SEVERITIES)]
    record: dict[str, Any] = {
        "asset": {"uuid": f"4d8f2b9a-0000-4000-8000-{a:012d}", "hostname": f"host{a:05d}.example.test",
                  "fqdn": f"host{a:05d}.example.test", "ipv4": f"10.{a // 65536 % 256}.{a // 256 % 256}.{a % 256}"},
        "output": f"seeded finding {n}",
        "state": "FIXED" if item.fixed else "OPEN",
        "severity": severity,
        "severity_id": n % len(_SEVERITIES),
        "port": {"port": 443, "protocol": "TCP", "service": "www"},
        "plugin": {"id": 200000 + n, "name": f"Seeded vulnerability {n}", "family": "General",
                   "risk_factor": severity.capitalize() if severity != "info" else "None",
                   "synopsis": "A seeded finding of the sandbox."},
        "first_found": _iso(item.created),
        "last_found": _iso(item.changed),
        "indexed": _iso(item.changed),
    }
    if item.fixed:
        record["last_fixed"] = _iso(item.changed)
    return record


def _rendered(request: Request, item: Seeded) -> bytes:
    """Seeded finding ``item`` as the JSON bytes of its export record, rendered once per state and kept: a real
    vendor serves chunks it has already built, so the sandbox's own JSON work should not weigh on a client
    measured beside it (the first export of a seeded set renders every record, later ones join bytes)."""
    cache: dict[Seeded, bytes] = store(request, KEY).setdefault("rendered", {})
    found = cache.get(item)
    if found is None:
        found = cache[item] = orjson.dumps(_seeded_record(item))
    return found


def _chunks(request: Request, states: set[str], since: int | None, num_assets: int) -> dict[int, bytes]:
    """The export's chunks as JSON array bytes, numbered from 1: ``num_assets`` assets' findings each."""
    items = seeded(request, KEY)
    if items is None:
        examples = [v for v in _vulns() if v["state"] in states and since is None]
        return {n: orjson.dumps(chunk) for n, chunk in
                _chunked(examples, lambda r: r["asset"]["uuid"], num_assets).items()}
    chosen = [i for i in items if ("FIXED" if i.fixed else "OPEN") in states and (since is None or i.changed >= since)]
    return {n: b"[" + b",".join(_rendered(request, i) for i in chunk) + b"]" for n, chunk in
            _chunked(chosen, lambda i: i.n // FINDINGS_PER_ASSET, num_assets).items()}


def _chunked(records: Iterable[T], asset: Callable[[T], object], num_assets: int) -> dict[int, list[T]]:
    """Chunks of ``num_assets`` assets' findings each, numbered from 1."""
    chunks: dict[int, list[T]] = {}
    for i, (_asset, group) in enumerate(groupby(records, key=asset)):
        chunks.setdefault(i // num_assets + 1, []).extend(group)
    return chunks


@router.post("/vulns/export")
async def vulns_export(request: Request) -> Response:
    """Start an export job; honours ``filters.state`` (OPEN, REOPENED, FIXED), ``filters.since`` and ``num_assets``."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to export vulnerabilities"))
    try:
        body = await request.json()
    except ValueError:
        body = {}
    filters = (body or {}).get("filters") or {}
    states = {s.upper() for s in filters.get("state") or ["OPEN", "REOPENED"]}
    since = filters.get("since")
    if since is not None and not isinstance(since, int):
        raise Reply(_error(400, "filters.since must be an integer unix timestamp"))
    num_assets = (body or {}).get("num_assets") or 50
    if not isinstance(num_assets, int) or not 50 <= num_assets <= 5000:
        raise Reply(_error(400, "num_assets must be an integer between 50 and 5000"))
    export_id = str(uuid.uuid4())
    store(request, KEY)[export_id] = {"polls": 0, "chunks": _chunks(request, states, since, num_assets)}
    return json_reply(200, {"export_uuid": export_id})


def _export(request: Request, export_uuid: str) -> dict[str, Any]:
    job: dict[str, Any] | None = store(request, KEY).get(export_uuid)
    if job is None:
        raise Reply(_error(404, "Export not found"))
    return job


@router.get("/vulns/export/{export_uuid}/status")
async def vulns_export_status(export_uuid: str, request: Request) -> Response:
    """PROCESSING on the first poll, FINISHED with its chunk list afterwards."""
    await _auth(request)
    job = _export(request, export_uuid)
    job["polls"] += 1
    done = job["polls"] > 1
    chunks = sorted(job["chunks"]) if done else []
    return json_reply(
        200,
        {
            "status": "FINISHED" if done else "PROCESSING",
            "chunks_available": chunks,
            "chunks_failed": [],
            "chunks_cancelled": [],
            "total_chunks": len(job["chunks"]),
            "chunks_available_count": len(chunks),
            "empty_chunks_count": 0,
            "finished_chunks": len(chunks),
            "num_assets_per_chunk": 50,
            "created": 1700000000000,
        },
    )


@router.get("/vulns/export/{export_uuid}/chunks/{chunk_id}")
async def vulns_export_chunk(export_uuid: str, chunk_id: int, request: Request) -> Response:
    """One chunk: a JSON array of vulnerability records."""
    await _auth(request)
    job = _export(request, export_uuid)
    if job["polls"] < 2 or chunk_id not in job["chunks"]:
        raise Reply(_error(404, "Chunk not found"))
    return Response(job["chunks"][chunk_id], media_type="application/json")


# --- scans: launch, latest status, per-scan export (developer.tenable.com "Launch a scan", "Get latest scan
# status", "Export a scan"): a launched scan reads "pending", "running" and then "completed"

SCAN_ID = 17  # the sandbox's one configured scan
SCAN_STATES = ("pending", "running")  # the latest-status answers after a launch, before "completed"
POLL_FAILS = "pollfail"  # vendor-specific marker: the 2nd status read after a launch answers 401 echoing the keys


def _account(request: Request) -> str:
    keys = parse_x_apikeys(request.headers.get("x-apikeys"))
    return keys[0] if keys else ""


def _scan_known(scan_id: str) -> None:
    if scan_id != str(SCAN_ID):
        raise Reply(_error(404, "Scan does not exist."))


@router.post("/scans/{scan_id}/launch")
async def scan_launch(scan_id: str, request: Request) -> Response:
    """Launch the configured scan -> ``{"scan_uuid"}``; 403 without the Can Execute permission."""
    marks = await _auth(request)
    _scan_known(scan_id)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to launch this scan"))
    scan_uuid = str(uuid.uuid4())
    store(request, KEY).setdefault("runs", {})[_account(request)] = {"scan_uuid": scan_uuid, "reads": 0}
    return json_reply(200, {"scan_uuid": scan_uuid})


@router.get("/scans/{scan_id}/latest-status")
async def scan_latest_status(scan_id: str, request: Request) -> Response:
    """``{"status": ...}`` of the scan's latest run: pending, running, then completed."""
    await _auth(request)
    _scan_known(scan_id)
    account = _account(request)
    run = store(request, KEY).setdefault("runs", {}).get(account)
    if run is None:
        return json_reply(200, {"status": "completed"})
    run["reads"] += 1
    if POLL_FAILS in account.lower() and run["reads"] == 2:
        raise Reply(STYLE.reply(sc.ECHO, echo_text(request, [])))
    reads = run["reads"]
    return json_reply(200, {"status": SCAN_STATES[reads - 1] if reads <= len(SCAN_STATES) else "completed"})


@router.post("/scans/{scan_id}/export")
async def scan_export(scan_id: str, request: Request) -> Response:
    """Request an export of the scan's latest results (``{"format": "nessus"}``) -> ``{file, temp_token}``."""
    marks = await _auth(request)
    _scan_known(scan_id)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to export this scan"))
    try:
        fmt = str(((await request.json()) or {}).get("format", "")).lower()
    except ValueError:
        fmt = ""
    if fmt != "nessus":
        raise Reply(_error(400, "Invalid 'format' field"))
    file_id = f"{uuid.uuid4().int % 10**9}-nessus"
    store(request, KEY).setdefault("files", {})[file_id] = {"reads": 0}
    return json_reply(200, {"file": file_id, "temp_token": uuid.uuid4().hex})


def _file(request: Request, file_id: str) -> dict[str, Any]:
    found: dict[str, Any] | None = store(request, KEY).setdefault("files", {}).get(file_id)
    if found is None:
        raise Reply(_error(404, "File not found"))
    return found


@router.get("/scans/{scan_id}/export/{file_id}/status")
async def scan_export_status(scan_id: str, file_id: str, request: Request) -> Response:
    """``loading`` on the first read, then ``ready``."""
    await _auth(request)
    _scan_known(scan_id)
    found = _file(request, file_id)
    found["reads"] += 1
    return json_reply(200, {"status": "ready" if found["reads"] > 1 else "loading"})


@router.get("/scans/{scan_id}/export/{file_id}/download")
async def scan_export_download(scan_id: str, file_id: str, request: Request) -> Response:
    """The ``.nessus`` file once ready."""
    await _auth(request)
    _scan_known(scan_id)
    if _file(request, file_id)["reads"] < 2:
        raise Reply(_error(409, "Report is still being generated"))
    return Response(SCAN_XML, media_type="application/octet-stream",
                    headers={"Content-Disposition": 'attachment; filename="scan_17.nessus"'})


SCAN_XML = b"""<?xml version="1.0" ?>
<NessusClientData_v2>
<Report name="Sandbox scan 17" xmlns:cm="http://www.nessus.org/cm">
<ReportHost name="10.1.0.5"><HostProperties><tag name="host-ip">10.1.0.5</tag></HostProperties>
<ReportItem port="22" svc_name="ssh" protocol="tcp" severity="2" pluginID="70658"
 pluginName="SSH Server CBC Mode Ciphers Enabled" pluginFamily="Misc.">
<risk_factor>Low</risk_factor><synopsis>CBC ciphers are enabled.</synopsis>
<description>The SSH server is configured to support Cipher Block Chaining (CBC) encryption.</description>
<solution>Disable CBC mode cipher encryption.</solution></ReportItem>
<ReportItem port="443" svc_name="www" protocol="tcp" severity="4" pluginID="156032"
 pluginName="Apache Log4j Remote Code Execution (Log4Shell)" pluginFamily="Misc.">
<cve>CVE-2021-44228</cve><cvss3_base_score>10.0</cvss3_base_score><risk_factor>Critical</risk_factor>
<synopsis>The remote host runs a vulnerable Log4j.</synopsis><description>Log4Shell.</description>
<solution>Upgrade Log4j.</solution></ReportItem>
</ReportHost>
<ReportHost name="10.1.0.6"><HostProperties><tag name="host-ip">10.1.0.6</tag></HostProperties>
<ReportItem port="443" svc_name="www" protocol="tcp" severity="3" pluginID="148125"
 pluginName="OpenSSL 1.1.1 &lt; 1.1.1k Multiple Vulnerabilities" pluginFamily="Web Servers">
<cve>CVE-2021-3449</cve><risk_factor>High</risk_factor><synopsis>Old OpenSSL.</synopsis>
<description>OpenSSL before 1.1.1k.</description><solution>Upgrade OpenSSL.</solution></ReportItem>
</ReportHost>
</Report>
</NessusClientData_v2>
"""


VENDOR = {
    "category": "VM",
    "base_path": f"/{KEY}",
    "auth": "X-ApiKeys: accessKey=A; secretKey=S;",
    "valid_credentials": {"access_key": "tvm-access-0001", "secret_key": "tvm-secret-0001"},
    "notes": "markers read from either key; roles: 16 noperm, 32 default, 64 admin; scan 17 launches (pending, "
    "running, completed) and exports as .nessus; 'pollfail' -> the 2nd latest-status read is a 401 echoing the keys",
}
