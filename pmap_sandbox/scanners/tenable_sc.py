"""Tenable Security Center (``https://HOST/rest``): system, status, currentUser, analysis, scan launch.

Auth: ``x-apikey: accesskey=A; secretkey=S;``. Every answer, errors included, uses SC's envelope
``{"type", "response", "error_code", "error_msg", "warnings", "timestamp"}``. ``/system`` answers
without auth (pyTenable reads it before sending keys).
"""

from __future__ import annotations

import io
import time
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

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
    seeded,
    store,
    vendor_router,
)

KEY = "tenable_sc"
router = vendor_router(KEY)
_PREFIX = "/rest"


def envelope(response: Any, error_code: int = 0, error_msg: str = "") -> dict[str, Any]:
    """SC's JSON envelope."""
    return {
        "type": "regular",
        "response": response,
        "error_code": error_code,
        "error_msg": error_msg,
        "warnings": [],
        "timestamp": int(time.time()),
    }


_CODES = {401: 74, 403: 146, 429: 429, 503: 503}  # SC error codes for the sandbox's failures


def _error(status: int, message: str) -> Response:
    return json_reply(status, envelope("", _CODES.get(status, status), message + "\n"))


STYLE = ErrorStyle(
    make=_error,
    messages={
        "missing": (401, "Invalid login session"),
        sc.BAD: (401, "Invalid login session"),
        sc.ECHO: (401, "Invalid API key: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Tenable Security Center is unavailable"),
    },
)


async def _auth(request: Request) -> set[str]:
    keys = parse_x_apikeys(request.headers.get("x-apikey"), "accesskey", "secretkey")
    return await guard(KEY, STYLE, request, list(keys) if keys else [None])


@router.get(_PREFIX + "/system")
async def system(request: Request) -> Response:
    """Version and build (no auth needed)."""
    return json_reply(
        200,
        envelope(
            {
                "version": "6.3.0",
                "buildID": "202401010000",
                "releaseID": "202401010000",
                "banner": "",
                "uuid": "a1b2c3d4-sandbox-tsc",
                "serverAuth": "any",
                "serverClassification": "None",
                "sessionTimeout": "60",
                "freshInstall": "no",
                "PasswordComplexity": "false",
            }
        ),
    )


@router.get(_PREFIX + "/status")
async def status(request: Request) -> Response:
    """License and feed status (``licenseStatus``, ``activeIPs``, ``licensedIPs``)."""
    marks = await _auth(request)
    expired = sc.license_expired(marks)
    return json_reply(
        200,
        envelope(
            {
                "jobd": "Running",
                "licenseStatus": "Expired" if expired else "Valid",
                "PluginSubscriptionStatus": "Expired" if expired else "Valid",
                "LCEPluginSubscriptionStatus": "Unlicensed",
                "PassivePluginSubscriptionStatus": "Unlicensed",
                "activeIPs": "120",
                "licensedIPs": "512",
            }
        ),
    )


_ROLES = {"admin": ("2", "Security Manager"), "noperm": ("7", "Auditor"), "default": ("3", "Security Analyst")}


@router.get(_PREFIX + "/currentUser")
async def current_user(request: Request) -> Response:
    """The key's user and role (Security Analyst; Auditor for ``noperm``; Security Manager for ``admin``).

    Honours ``?fields=``: ``id`` and ``uuid`` always come back, other fields only when asked for
    (docs.tenable.com/security-center/api/Current-User.htm); without ``fields``, the full record.
    """
    marks = await _auth(request)
    rid, rname = _ROLES[sc.ADMIN if sc.ADMIN in marks else sc.NOPERM if sc.NOPERM in marks else "default"]
    user = {
        "id": "3",
        "uuid": "6B1B4C2E-0000-4000-8000-SANDBOX00003",
        "status": "0",
        "username": "pmap",
        "firstname": "PMAP",
        "lastname": "Integration",
        "role": {"id": rid, "name": rname, "description": ""},
        "organization": {"id": "1", "name": "Sandbox Org", "description": ""},
    }
    asked = {f.strip() for f in request.query_params.get("fields", "").split(",") if f.strip()}
    if asked:
        user = {k: v for k, v in user.items() if k in asked | {"id", "uuid"}}
    return json_reply(200, envelope(user))


@router.post(_PREFIX + "/analysis")
async def analysis(request: Request) -> Response:
    """Vulnerability analysis (one sample record, or a seeded account's records paged); 403 for ``noperm``."""
    marks = await _auth(request)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "Insufficient permissions to perform analysis"))
    keys = parse_x_apikeys(request.headers.get("x-apikey"), "accesskey", "secretkey")
    data = seeded(request, KEY, keys[0] if keys else None, STYLE)
    if data is not None:
        return _seeded_analysis(await request.json(), data)
    rows = [
        {
            "pluginID": "148125",
            "severity": {"id": "3", "name": "High", "description": "High Severity"},
            "ip": "10.0.0.11",
            "port": "443",
            "protocol": "TCP",
            "dnsName": "web01.example.test",
            "pluginName": "OpenSSL 1.1.1 < 1.1.1k Multiple Vulnerabilities",
            "cve": "CVE-2021-3449,CVE-2021-3450",
            "firstSeen": "1704164645",
            "lastSeen": "1704769445",
            "vprScore": "6.7",
        }
    ]
    return json_reply(
        200,
        envelope({"totalRecords": "1", "returnedRecords": 1, "startOffset": "0", "endOffset": "1", "results": rows}),
    )


#: seeded record ``i`` was last seen (or mitigated) ``i`` hours after this (``recent``: ``count - 1 - i`` days
#: and an hour before now)
SEED_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)


def seeded_record(i: int, when: datetime) -> dict[str, Any]:
    """Generated analysis record ``i`` (tool vulndetails fields)."""
    stamp = str(int(when.timestamp()))
    return {"pluginID": str(20000 + i), "pluginName": f"Generated plugin {i}",
            "severity": {"id": str(i % 5), "name": ("Info", "Low", "Medium", "High", "Critical")[i % 5],
                         "description": ""},
            "ip": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "dnsName": f"host{i}.example.test",
            "port": "443", "protocol": "TCP", "family": {"id": "1", "name": "General", "type": "active"},
            "cve": f"CVE-2024-{1000 + i}", "synopsis": f"generated {i}", "description": f"generated finding {i}",
            "solution": "Upgrade.", "pluginText": f"<plugin_output>output {i}</plugin_output>",
            "firstSeen": str(int(SEED_EPOCH.timestamp())), "lastSeen": stamp, "lastMitigated": stamp,
            "vprScore": "5.0"}


def _seeded_analysis(body: Any, data: dict[str, Any]) -> Response:
    """``type`` vuln, ``tool`` vulndetails; ``sourceType`` cumulative (open records) or patched (every
    ``fixed_every``-th); ``startOffset``/``endOffset``; the ``lastSeen``/``lastMitigated`` filter ``0:N`` days."""
    query = body.get("query") if isinstance(body, dict) else None
    if not isinstance(query, dict) or query.get("tool") != "vulndetails" or body.get("type") != "vuln":
        raise Reply(_error(400, "Invalid analysis query"))
    start, end = query.get("startOffset"), query.get("endOffset")
    if not isinstance(start, int) or not isinstance(end, int) or end < start:
        raise Reply(_error(400, "Invalid startOffset or endOffset"))
    source, count, every = body.get("sourceType"), int(data["count"]), int(data.get("fixed_every", 0))
    if source not in {"cumulative", "patched"}:
        raise Reply(_error(400, "Invalid sourceType"))
    now = datetime.now(UTC)
    def when(i: int) -> datetime:
        return now - timedelta(days=count - 1 - i, hours=1) if data.get("recent") else SEED_EPOCH + timedelta(hours=i)
    cutoff = None
    for f in query.get("filters") or []:
        wanted = "lastSeen" if source == "cumulative" else "lastMitigated"
        if isinstance(f, dict) and f.get("filterName") == wanted:
            near, _, far = str(f.get("value")).partition(":")
            if not (near.isdigit() and far.isdigit() and int(near) <= int(far)):
                raise Reply(_error(400, f"Filter '{wanted}' must be in the following format: <end day>:<start day>"))
            cutoff = now - timedelta(days=int(far))
    fixed = {i for i in range(count) if every and i % every == every - 1}
    ids = [i for i in range(count) if (i in fixed) == (source == "patched") and (cutoff is None or when(i) >= cutoff)]
    rows = [seeded_record(i, when(i)) for i in ids[start:end]]
    return json_reply(200, envelope({"totalRecords": str(len(ids)), "returnedRecords": len(rows),
                                     "startOffset": str(start), "endOffset": str(end), "results": rows}))


# --- scans (Scan API "launch", Scan Result API GET and "download"): a launched scan's result reads Queued,
# Running, then Completed; its download (downloadType v2) is a zip holding the .nessus file

SCAN_ID = 4  # the sandbox's one configured scan
_RESULT_STATES = ("Queued", "Running")
POLL_FAILS = "pollfail"  # vendor-specific marker: the 2nd scan result read answers 401 echoing the keys


def _results(request: Request) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = store(request, KEY).setdefault("results", {})
    return found


@router.post(_PREFIX + "/scan/{scan_id}/launch")
async def scan_launch(scan_id: str, request: Request) -> Response:
    """Launch the scan -> ``{"scanID", "scanResult": {"id", "status": "Queued", ...}}``."""
    marks = await _auth(request)
    if scan_id != str(SCAN_ID):
        raise Reply(_error(403, f"Scan #{scan_id} not found"))
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to launch this scan"))
    results = _results(request)
    result_id = str(300 + len(results) + 1)
    keys = parse_x_apikeys(request.headers.get("x-apikey"), "accesskey", "secretkey")
    results[result_id] = {"reads": 0, "account": keys[0] if keys else ""}
    return json_reply(200, envelope({"scanID": scan_id, "scanResult": {
        "id": result_id, "name": "Sandbox scan", "status": "Queued", "initiatorID": "2", "ownerID": "2"}}))


def _result(request: Request, result_id: str) -> dict[str, Any]:
    found = _results(request).get(result_id)
    if found is None:
        raise Reply(_error(403, f"Scan Result #{result_id} not found"))
    return found


@router.get(_PREFIX + "/scanResult/{result_id}")
async def scan_result(result_id: str, request: Request) -> Response:
    """The run's status: Queued, Running, then Completed."""
    await _auth(request)
    found = _result(request, result_id)
    found["reads"] += 1
    if POLL_FAILS in found["account"].lower() and found["reads"] == 2:
        raise Reply(STYLE.reply(sc.ECHO, echo_text(request, [])))
    reads = found["reads"]
    status = _RESULT_STATES[reads - 1] if reads <= len(_RESULT_STATES) else "Completed"
    return json_reply(200, envelope({"id": result_id, "status": status}))


@router.post(_PREFIX + "/scanResult/{result_id}/download")
async def scan_result_download(result_id: str, request: Request) -> Response:
    """The run's results: a zip holding its .nessus file (``downloadType`` v2)."""
    await _auth(request)
    _result(request, result_id)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{result_id}.nessus", SCAN_XML)
    return Response(archive.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{result_id}.zip"'})


SCAN_XML = b"""<?xml version="1.0" ?>
<NessusClientData_v2>
<Report name="Sandbox SC scan" xmlns:cm="http://www.nessus.org/cm">
<ReportHost name="10.2.0.9"><HostProperties><tag name="host-ip">10.2.0.9</tag></HostProperties>
<ReportItem port="3389" svc_name="msrdp" protocol="tcp" severity="3" pluginID="18405"
 pluginName="Microsoft Windows Remote Desktop Protocol Server Man-in-the-Middle Weakness" pluginFamily="Windows">
<risk_factor>Medium</risk_factor><synopsis>RDP MitM.</synopsis><description>RDP weakness.</description>
<solution>Force the use of SSL as a transport layer for this service.</solution></ReportItem>
<ReportItem port="445" svc_name="cifs" protocol="tcp" severity="4" pluginID="97833"
 pluginName="MS17-010: Security Update for Microsoft Windows SMB Server" pluginFamily="Windows">
<cve>CVE-2017-0144</cve><risk_factor>Critical</risk_factor><synopsis>SMB RCE.</synopsis>
<description>EternalBlue.</description><solution>Apply MS17-010.</solution></ReportItem>
</ReportHost>
</Report>
</NessusClientData_v2>
"""


VENDOR = {
    "category": "VM",
    "base_path": f"/{KEY}/rest",
    "auth": "x-apikey: accesskey=A; secretkey=S;",
    "valid_credentials": {"access_key": "tsc-access-0001", "secret_key": "tsc-secret-0001"},
    "notes": "base_path includes /rest (SC's API base); licenseStatus 'Expired' for 'expired' "
    "(SC reports no expiry date here, so 'expiring' changes nothing); error_code values are sandbox choices; "
    "scan 4 launches (result Queued, Running, Completed; download a zip of its .nessus); 'pollfail' -> the 2nd "
    "scan result read is a 401 echoing the keys",
}
