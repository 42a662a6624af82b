"""Nessus (Professional / Manager / managed scanner) on :8834: properties, scans, launch, export flow.

Auth: ``X-ApiKeys``; errors are ``{"error": "..."}``. Editions by credential: default Professional
(``scan_api: false`` -> launch answers 412 "API is not available"); a key containing ``manager``
is Nessus Manager (scan API on); ``managed`` is a scanner linked to a manager. A launched scan shows
``running`` in the scan list for two reads, then ``completed``; ``pollfail`` in the access key makes
the second read answer 401 echoing the key (revoked mid-scan).
"""

from __future__ import annotations

import secrets
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

KEY = "nessus"
router = vendor_router(KEY)
MANAGER = "manager"  # vendor-specific marker: Nessus Manager edition
POLL_FAILS = "pollfail"  # vendor-specific marker: the second status read after a launch answers 401, echoing the key
RUNNING_READS = 2  # reads of the scan list that show a launched scan "running" before it is "completed"
SCAN_ID = 5
# Nessus user permission levels
BASIC, STANDARD, ADMINISTRATOR, SYSADMIN = 16, 32, 64, 128


def _error(status: int, message: str) -> Response:
    return json_reply(status, {"error": message})


STYLE = ErrorStyle(
    make=_error,
    messages={
        sc.BAD: (401, "Invalid Credentials"),
        sc.ECHO: (401, "Invalid Credentials: {echo}"),
        sc.RATELIMIT: (429, "Too many requests"),
        sc.DOWN: (503, "Nessus is not ready"),
    },
)


async def _auth(request: Request) -> tuple[set[str], bool]:
    keys = parse_x_apikeys(request.headers.get("x-apikeys"))
    marks = await guard(KEY, STYLE, request, list(keys) if keys else [None])
    manager = bool(keys) and any(MANAGER in k.lower() for k in keys)  # type: ignore[union-attr]
    return marks, manager


def _account(request: Request) -> str:
    keys = parse_x_apikeys(request.headers.get("x-apikeys"))
    return keys[0] if keys else ""


def _runs(request: Request) -> dict[str, dict[str, Any]]:
    """Launched runs by account (access key): each scan's run and how often its status was read."""
    runs: dict[str, dict[str, Any]] = store(request, KEY).setdefault("runs", {})
    return runs


@router.get("/server/properties")
async def server_properties(request: Request) -> Response:
    """Edition, versions and license (type, expiration_date, features.scan_api)."""
    marks, manager = await _auth(request)
    exp = int(sc.license_expiry(marks).timestamp())
    if manager:
        nessus_type, lic_type, name = "Nessus Manager", "manager", "Nessus Manager"
    elif sc.MANAGED in marks:
        nessus_type, lic_type, name = "Nessus Scanner", "pro", "Nessus Scanner"
    else:
        nessus_type, lic_type, name = "Nessus", "pro", "Nessus Professional"
    body: dict[str, Any] = {
        "nessus_type": nessus_type,
        "server_version": "10.7.2",
        "server_build": "20095",
        "nessus_ui_version": "10.7.2",
        "nessus_ui_build": "117",
        "platform": "LINUX",
        "server_uuid": "5b2f5d5e-sandbox-nessus",
        "plugin_set": "202401010000",
        "idle_timeout": "30",
        "license": {
            "type": lic_type,
            "name": name,
            "expiration_date": exp,
            "restricted": False,
            "ips": -1,
            "evaluation": False,
            "features": {
                "api": True,
                "scan_api": manager,
                "policies": True,
                "report": True,
                "users": manager,
                "vpr": True,
            },
        },
        "capabilities": {"multi_user": "full" if manager else "single", "multi_scanner": manager},
    }
    if sc.MANAGED in marks and not manager:
        body["managed"] = True  # linked scanner: scans belong to the manager
    return json_reply(200, body)


@router.get("/session")
async def session(request: Request) -> Response:
    """The user behind the keys, with its permission level."""
    marks, _ = await _auth(request)
    perms = SYSADMIN if sc.ADMIN in marks else BASIC if sc.NOPERM in marks else STANDARD
    return json_reply(
        200,
        {
            "id": 2,
            "username": "pmap",
            "name": "PMAP integration",
            "email": "",
            "type": "local",
            "permissions": perms,
            "lastlogin": 1700000000,
            "container_id": 0,
            "groups": None,
        },
    )


def _scan(status: str = "completed") -> dict[str, Any]:
    return {
        "id": SCAN_ID,
        "uuid": "template-sandbox-0005",
        "name": "Weekly network scan",
        "status": status,
        "folder_id": 3,
        "owner": "pmap",
        "type": "local",
        "creation_date": 1700000000,
        "last_modification_date": 1700003600,
        "enabled": False,
        "read": True,
        "shared": False,
        "user_permissions": 128,
        "control": True,
        "rrules": None,
        "starttime": None,
        "timezone": None,
    }


@router.get("/scans")
async def scans(request: Request) -> Response:
    """Folders and scans visible to the user (none for ``noperm``)."""
    marks, _ = await _auth(request)
    account = _account(request)
    run = _runs(request).get(account)
    status = "completed"
    if run is not None:  # a launched scan runs for RUNNING_READS reads of the list, then completes
        run["reads"] += 1
        if POLL_FAILS in account.lower() and run["reads"] == 2:  # the key revoked while the scan ran
            raise Reply(STYLE.reply(sc.ECHO, echo_text(request, [])))
        status = "running" if run["reads"] <= RUNNING_READS else "completed"
    listed = [] if sc.NOPERM in marks or sc.MANAGED in marks else [_scan(status)]
    return json_reply(
        200,
        {
            "folders": [
                {"id": 3, "name": "My Scans", "type": "main", "default_tag": 1, "custom": 0, "unread_count": 0}
            ],
            "scans": listed or None,
            "timestamp": 1700003600,
        },
    )


#: seeded scan ``k`` (its position in ``scans``) last completed ``k + 1`` hours after this
SEED_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)


def _seed(request: Request) -> dict[str, Any] | None:
    """The seeded data set of the caller's account (counted; ``limit_at`` answers 429 there)."""
    return seeded(request, KEY, _account(request), STYLE)


def _seeded_scans(data: dict[str, Any]) -> list[int]:
    return [int(s) for s in data.get("scans") or [SCAN_ID]]


def _known(scan_id: int, data: dict[str, Any] | None = None) -> None:
    if scan_id not in (_seeded_scans(data) if data is not None else [SCAN_ID]):
        raise Reply(_error(404, "The requested file was not found."))


def _history(scan_id: int, data: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The scan's runs, oldest first: an older and a latest completed run (seeded: ``never`` scans have none
    completed; ``running`` scans have a newer run still under way)."""
    k = _seeded_scans(data).index(scan_id) if data is not None else 0
    done = int((SEED_EPOCH + timedelta(hours=k + 1)).timestamp())
    def run(n: int, status: str, when: int) -> dict[str, Any]:
        return {"history_id": scan_id * 100 + n, "uuid": f"sandbox-run-{scan_id}-{n}", "owner_id": 2,
                "status": status, "creation_date": when - 1800, "last_modification_date": when,
                "type": "local", "scheduler": 0, "alt_targets_used": False}
    if data is not None and scan_id in (data.get("never") or []):
        return [run(1, "aborted", done - 86400), run(2, "running", done)]
    runs = [run(1, "completed", done - 86400), run(2, "completed", done)]
    if data is not None and scan_id in (data.get("running") or []):
        runs.append(run(3, "running", done + 3600))
    return runs


@router.get("/scans/{scan_id}")
async def scan_details(scan_id: int, request: Request) -> Response:
    """The scan's ``info`` and ``history`` (its runs), as ``GET /scans/{scan_id}`` answers."""
    await _auth(request)
    data = _seed(request)
    _known(scan_id, data)
    history = _history(scan_id, data)
    info = {"object_id": scan_id, "name": f"Scan {scan_id}", "status": history[-1]["status"],
            "scan_start": history[-1]["creation_date"], "scan_end": history[-1]["last_modification_date"],
            "policy": "Basic Network Scan", "hostcount": int(data["count"]) if data else 1}
    return json_reply(200, {"info": info, "history": history, "hosts": [], "vulnerabilities": []})


@router.post("/scans/{scan_id}/launch")
async def launch(scan_id: int, request: Request) -> Response:
    """412 "API is not available" unless the edition has the scan API (Nessus Manager)."""
    marks, manager = await _auth(request)
    if not manager:
        raise Reply(_error(412, "API is not available"))
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to launch this scan"))
    _known(scan_id)
    scan_uuid = "sandbox-launch-" + secrets.token_hex(8)
    _runs(request)[_account(request)] = {"scan_uuid": scan_uuid, "reads": 0}
    return json_reply(200, {"scan_uuid": scan_uuid})


@router.post("/scans/{scan_id}/export")
async def export(scan_id: int, request: Request) -> Response:
    """Start an export (``{"format": "nessus"|"csv"}``) -> ``{file, token}``."""
    marks, _ = await _auth(request)
    data = _seed(request)
    _known(scan_id, data)
    if sc.NOPERM in marks:
        raise Reply(_error(403, "You do not have permission to export this scan"))
    history = request.query_params.get("history_id")
    runs = {str(r["history_id"]): r for r in _history(scan_id, data)}
    if history is not None and (history not in runs or runs[history]["status"] != "completed"):
        raise Reply(_error(404, "The requested file was not found."))
    try:
        fmt = str(((await request.json()) or {}).get("format", "nessus")).lower()
    except ValueError:
        fmt = "nessus"
    if fmt not in {"nessus", "csv"}:
        raise Reply(_error(400, "Invalid format"))
    file_id, token = secrets.randbelow(10**9) + 1, secrets.token_hex(32)
    store(request, KEY)[str(file_id)] = {"token": token, "format": fmt, "polls": 0, "scan": scan_id,
                                         "history": history, "seed": data}
    return json_reply(200, {"file": file_id, "token": token})


def _job_by_file(request: Request, file_id: str) -> dict[str, Any]:
    job: dict[str, Any] | None = store(request, KEY).get(file_id)
    if job is None:
        raise Reply(_error(404, "The requested file was not found."))
    return job


def _job_by_token(request: Request, token: str) -> dict[str, Any]:
    jobs: dict[str, dict[str, Any]] = store(request, KEY)
    for job in jobs.values():
        if "token" in job and secrets.compare_digest(job["token"], token):  # exports, not the launched runs
            return job
    raise Reply(_error(404, "The requested file was not found."))


def _status(job: dict[str, Any]) -> Response:
    job["polls"] += 1
    return json_reply(200, {"status": "ready" if job["polls"] > 1 else "loading"})


def _download(job: dict[str, Any]) -> Response:
    if job["polls"] < 2:
        raise Reply(_error(409, "Report is not ready"))
    if job.get("seed") is not None:
        content = seeded_nessus(job["scan"], job["history"], int(job["seed"]["count"]))
        if job["seed"].get("entities"):  # the hostile option: an export declaring entities (billion laughs' opening)
            content = content.replace(b"<NessusClientData_v2>", b'<!DOCTYPE NessusClientData_v2 [<!ENTITY a "aaaa">'
                                      b'<!ENTITY b "&a;&a;&a;&a;">]><NessusClientData_v2>&b;', 1)
        return Response(content, media_type="application/octet-stream")
    if job["format"] == "csv":
        return Response(
            CSV,
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="Weekly_network_scan.csv"'},
        )
    return Response(
        NESSUS_XML,
        media_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="Weekly_network_scan.nessus"'},
    )


@router.get("/scans/{scan_id}/export/{file_id}/status")
async def export_status(scan_id: int, file_id: str, request: Request) -> Response:
    """``loading`` on the first poll, then ``ready``."""
    await _auth(request)
    _known(scan_id, _seed(request))
    return _status(_job_by_file(request, file_id))


@router.get("/scans/{scan_id}/export/{file_id}/download")
async def export_download(scan_id: int, file_id: str, request: Request) -> Response:
    """The exported file once ready."""
    await _auth(request)
    _known(scan_id, _seed(request))
    return _download(_job_by_file(request, file_id))


@router.get("/tokens/{token}/status")
async def token_status(token: str, request: Request) -> Response:
    """Token form of the status poll (the token itself authorizes)."""
    return _status(_job_by_token(request, token))


@router.get("/tokens/{token}/download")
async def token_download(token: str, request: Request) -> Response:
    """Token form of the download (the token itself authorizes)."""
    return _download(_job_by_token(request, token))


def seeded_nessus(scan_id: int, history_id: str | None, count: int) -> bytes:
    """A generated ``.nessus`` export of one run: ``count`` hosts of scan ``scan_id``, one finding each."""
    hosts = "".join(
        f'<ReportHost name="10.{scan_id % 256}.{i // 256 % 256}.{i % 256}"><HostProperties>'
        f'<tag name="host-ip">10.{scan_id % 256}.{i // 256 % 256}.{i % 256}</tag></HostProperties>'
        f'<ReportItem port="443" svc_name="www" protocol="tcp" severity="{i % 5}" pluginID="{10000 + i}" '
        f'pluginName="Generated plugin {i}" pluginFamily="General"><risk_factor>Medium</risk_factor>'
        f"<synopsis>generated {i}</synopsis><description>generated finding {i}</description>"
        "<solution>n/a</solution></ReportItem></ReportHost>"
        for i in range(count))
    return (f'<?xml version="1.0" ?>\n<NessusClientData_v2><Report name="Scan {scan_id} run {history_id}">'
            f"{hosts}</Report></NessusClientData_v2>\n").encode()


NESSUS_XML = b"""<?xml version="1.0" ?>
<NessusClientData_v2>
<Policy><policyName>Basic Network Scan</policyName></Policy>
<Report name="Weekly network scan" xmlns:cm="http://www.nessus.org/cm">
<ReportHost name="10.0.0.11"><HostProperties>
<tag name="host-ip">10.0.0.11</tag><tag name="host-fqdn">web01.example.test</tag>
<tag name="operating-system">Linux Kernel 5.15</tag>
<tag name="HOST_START">Tue Jan  2 03:04:05 2024</tag><tag name="HOST_END">Tue Jan  2 03:20:00 2024</tag>
</HostProperties>
<ReportItem port="443" svc_name="www" protocol="tcp" severity="3" pluginID="148125"
 pluginName="OpenSSL 1.1.1 &lt; 1.1.1k Multiple Vulnerabilities" pluginFamily="Web Servers">
<cve>CVE-2021-3449</cve><cve>CVE-2021-3450</cve><cvss3_base_score>7.4</cvss3_base_score><risk_factor>High</risk_factor>
<synopsis>The remote service is affected by multiple vulnerabilities.</synopsis>
<description>The version of OpenSSL installed on the remote host is prior to 1.1.1k.</description>
<solution>Upgrade to OpenSSL version 1.1.1k or later.</solution>
<plugin_output>Installed version : 1.1.1j</plugin_output>
</ReportItem>
<ReportItem port="0" svc_name="general" protocol="tcp" severity="0" pluginID="19506"
 pluginName="Nessus Scan Information" pluginFamily="Settings">
<risk_factor>None</risk_factor><synopsis>This plugin displays information about the Nessus scan.</synopsis>
<description>Information about this scan.</description><solution>n/a</solution>
</ReportItem>
</ReportHost>
</Report>
</NessusClientData_v2>
"""

CSV = (
    b"Plugin ID,CVE,CVSS v3.0 Base Score,Risk,Host,Protocol,Port,Name,Synopsis,Description,Solution,Plugin Output\n"
    b"148125,CVE-2021-3449,7.4,High,10.0.0.11,tcp,443,OpenSSL 1.1.1 < 1.1.1k Multiple Vulnerabilities,"
    b"The remote service is affected by multiple vulnerabilities.,The version of OpenSSL is prior to 1.1.1k.,"
    b"Upgrade to OpenSSL version 1.1.1k or later.,Installed version : 1.1.1j\n"
)

VENDOR = {
    "category": "VM",
    "base_path": f"/{KEY}",
    "auth": "X-ApiKeys: accessKey=A; secretKey=S;",
    "valid_credentials": {"access_key": "nessus-access-0001", "secret_key": "nessus-secret-0001"},
    "notes": "default edition Nessus Professional (scan_api false); a key containing 'manager' -> Nessus "
    "Manager (scan_api true); 'pollfail' -> the 2nd scan-list read after a launch is a 401 echoing the key; "
    "'managed' -> linked scanner (nessus_type 'Nessus Scanner', managed: "
    "true; these two fields are not confirmed against a live linked scanner)",
}
