"""Rapid7 InsightVM console API v3 (``https://HOST:3780/api/3``): info, license, assets.

Shapes follow the console's OpenAPI 2 spec (``/api/3/json``), as generated into Rapid7's own
rapid7/vm-console-client-ruby (models ``Info``, ``VersionInfo``, ``License``, ``UnauthorizedError``).
Auth: HTTP Basic. Errors: ``{"status", "message", "links"}``. ``info.superuser`` and ``info.user`` describe
the OS account running the console service ("Whether the service is running a super-user", "The user
running the service"), not the API caller. ``GET /administration/license`` is marked Global Administrator
and declares no 403: other users get the 401 UnauthorizedError (the spec's 401 also covers "does not
maintain permissions to perform the operation"). ``GET /assets`` returns the assets the user has access to,
so a user without site access gets an empty page, not an error. Global Administrator here: ``admin`` (or a
license marker, so the license scenario is observable).
"""

from __future__ import annotations

import gzip
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
    parse_basic,
    seeded,
    store,
    vendor_router,
)

KEY = "rapid7_insightvm"
router = vendor_router(KEY)
_API = "/api/3"


def _error(status: int, message: str) -> Response:
    # the console's error schema carries the status as a string (its Swagger examples show "401")
    return json_reply(
        status,
        {
            "status": str(status),
            "message": message,
            "links": [{"href": "https://help.rapid7.com/insightvm/en-us/api/index.html", "rel": "self"}],
        },
    )


STYLE = ErrorStyle(
    make=_error,
    messages={
        sc.BAD: (401, "The user name or password is incorrect."),
        sc.ECHO: (401, "Authentication failed for {echo}"),
        sc.RATELIMIT: (429, "Too many requests."),
        sc.DOWN: (503, "The security console is unavailable."),
    },
)


async def _auth(request: Request) -> set[str]:
    creds = parse_basic(request.headers.get("authorization"))
    return await guard(KEY, STYLE, request, list(creds) if creds else [None])


def _global_admin(marks: set[str]) -> bool:
    return bool(marks & {sc.ADMIN, sc.EXPIRED, sc.EXPIRING}) and sc.NOPERM not in marks


@router.get(_API + "/administration/info")
async def info(request: Request) -> Response:
    """Console version and host information."""
    await _auth(request)
    return json_reply(
        200,
        {
            "version": {
                "semantic": "6.6.230",
                "build": "6.6.230-1",
                "changeset": "a1b2c3d",
                "platform": "Linux64",
                "update": {"content": "3192129162", "id": {"productId": "281474976711146", "versionId": "490"}},
            },
            "distinguishedName": "CN=Rapid7 Security Console/ O=Rapid7",
            "fqdn": "insightvm.example.test",
            "host": "insightvm",
            "ip": "10.0.0.5",
            "operatingSystem": "Ubuntu Linux 22.04",
            "serial": "SANDBOX-0001",
            # the OS account of the console service, whoever calls the API
            "superuser": True,
            "user": "root",
            "links": [{"href": "/api/3/administration/info", "rel": "self"}],
        },
    )


@router.get(_API + "/administration/license")
async def license_(request: Request) -> Response:
    """Edition, expiry and limits (Global Administrator only)."""
    marks = await _auth(request)
    if not _global_admin(marks):
        raise Reply(_error(401, "You do not have permission to access the license."))
    expires = sc.license_expiry(marks)
    return json_reply(
        200,
        {
            "edition": "InsightVM",
            "evaluation": False,
            "perpetual": False,
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "status": "Expired" if sc.license_expired(marks) else "Activated",
            "limits": {"assets": 1000, "assetsWithHostedEngine": 100, "scanEngines": 5, "users": 50},
            "features": {"adaptiveSecurity": True, "agents": True, "dynamicDiscovery": True},
            "links": [{"href": "/api/3/administration/license", "rel": "self"}],
        },
    )


@router.get(_API + "/assets")
async def assets(request: Request, page: int = 0, size: int = 10) -> Response:
    """One page of the assets the user has access to (none for ``noperm``: no site or asset group granted)."""
    marks = await _auth(request)
    data = _seed(request)
    if data is not None:
        return _paged([seeded_asset(i) for i in range(int(data["count"]))], page, size, "/assets")
    resources = [
        {
            "id": 1,
            "ip": "10.0.0.11",
            "hostName": "web01.example.test",
            "os": "Ubuntu Linux 22.04",
            "vulnerabilities": {"critical": 0, "severe": 1, "moderate": 1, "total": 2},
        }
    ]
    if sc.NOPERM in marks:
        resources = []
    return json_reply(
        200,
        {
            "resources": resources[: max(size, 0)],
            "page": {"number": page, "size": size, "totalResources": len(resources),
                     "totalPages": min(len(resources), 1)},
            "links": [{"href": "/api/3/assets", "rel": "self"}],
        },
    )


# --- a seeded account's findings: ``count`` assets with ``per_asset`` vulnerabilities each, among ``kinds``
# definitions; every ``fixed_every``-th asset vulnerability is not-vulnerable, every ``excepted_every``-th excepted


def _seed(request: Request) -> dict[str, Any] | None:
    creds = parse_basic(request.headers.get("authorization"))
    return seeded(request, KEY, creds[0] if creds else None, STYLE)


def _paged(resources: list[Any], page: int, size: int, path: str) -> Response:
    """The console's page envelope (``resources``, ``page``, ``links``); ``size`` 1-500 as the API allows."""
    if not 0 < size <= 500 or page < 0:
        raise Reply(_error(400, "The page size must be between 1 and 500."))
    total = len(resources)
    return json_reply(200, {"resources": resources[page * size:(page + 1) * size],
                            "page": {"number": page, "size": size, "totalResources": total,
                                     "totalPages": (total + size - 1) // size},
                            "links": [{"href": f"{_API}{path}?page={page}&size={size}", "rel": "self"}]})


def seeded_asset(i: int) -> dict[str, Any]:
    """Generated asset ``i`` (id ``100 + i``)."""
    return {"id": 100 + i, "ip": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "hostName": f"host{i}.example.test",
            "os": "Ubuntu Linux 22.04"}


def _status(n: int, data: dict[str, Any]) -> str:
    fixed, excepted = int(data.get("fixed_every", 0)), int(data.get("excepted_every", 0))
    if fixed and n % fixed == fixed - 1:
        return "not-vulnerable"
    if excepted and n % excepted == excepted - 1:
        return "vulnerable-with-exception-applied"
    return "vulnerable"


@router.get(_API + "/assets/{asset_id}/vulnerabilities")
async def asset_vulnerabilities(asset_id: int, request: Request, page: int = 0, size: int = 10) -> Response:
    """One page of the asset's vulnerability findings (VulnerabilityFinding: id, results, since, status)."""
    await _auth(request)
    seed = _seed(request)
    data = seed or {"count": 1, "per_asset": 2}  # the sample asset (id 1) has two
    i, per = asset_id - (100 if seed is not None else 1), int(data.get("per_asset", 1))
    if not 0 <= i < int(data["count"]):
        raise Reply(_error(404, f"The asset {asset_id} does not exist."))
    kinds = int(data.get("kinds", 10))
    found = []
    for j in range(per):
        n = i * per + j
        status = _status(n, data)
        found.append({"id": f"generated-vuln-{(i + j) % kinds}", "instances": 1, "since": "2024-03-01T00:00:00Z",
                      "status": status, "results": [{"checkId": f"generated-check-{(i + j) % kinds}",
                                                     "port": 443, "protocol": "tcp", "proof": f"proof {n}",
                                                     "since": "2024-03-01T00:00:00Z", "status": status}]})
    return _paged(found, page, size, f"/assets/{asset_id}/vulnerabilities")


@router.get(_API + "/vulnerabilities/{vuln_id}")
async def vulnerability(vuln_id: str, request: Request) -> Response:
    """A vulnerability definition (title, severity, severityScore 1-10, cvss, cves, description)."""
    await _auth(request)
    _seed(request)
    k = vuln_id.removeprefix("generated-vuln-")
    if not k.isdigit():
        raise Reply(_error(404, f"The vulnerability {vuln_id} does not exist."))
    n = int(k)
    return json_reply(200, {
        "id": vuln_id, "title": f"Generated vulnerability {n}", "severity": "Severe", "severityScore": n % 10 + 1,
        "cvss": {"v3": {"score": 6.5, "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:N"}},
        "cves": [f"CVE-2024-{2000 + n}"], "description": {"text": f"generated vulnerability {n}"},
        "riskScore": 500.0, "links": [{"href": f"{_API}/vulnerabilities/{vuln_id}", "rel": "self"}]})


# --- scans and reports (console API v3: POST /sites/{id}/scans, GET /scans/{id}, POST /reports, POST
# /reports/{id}/generate, GET /reports/{id}/history/{instance}[/output], DELETE /reports/{id}): a scan reads
# "dispatched", "running", then "finished"; a report instance "running", then "complete"; its output is gzipped

SITE_ID = 3  # the sandbox's one site
_SCAN_STATES = ("dispatched", "running")
POLL_FAILS = "pollfail"  # vendor-specific marker (in the user name): the 2nd scan read answers 401 echoing the creds


def _r7(request: Request) -> dict[str, Any]:
    state: dict[str, Any] = store(request, KEY)
    state.setdefault("scans", {})
    state.setdefault("reports", {})
    return state


@router.post(_API + "/sites/{site_id}/scans")
async def start_scan(site_id: int, request: Request) -> Response:
    """Start an unscheduled scan of the site -> 201 ``{"id", "links"}``."""
    marks = await _auth(request)
    if site_id != SITE_ID:
        raise Reply(_error(404, f"The site {site_id} does not exist."))
    if sc.NOPERM in marks:
        raise Reply(_error(403, "The user does not have the Start Unscheduled Scans permission."))
    scans = _r7(request)["scans"]
    scan_id = 9000 + len(scans) + 1
    creds = parse_basic(request.headers.get("authorization"))
    scans[scan_id] = {"reads": 0, "user": creds[0] if creds else ""}
    return json_reply(201, {"id": scan_id, "links": [{"href": f"/api/3/scans/{scan_id}", "rel": "Scan"}]})


@router.get(_API + "/scans/{scan_id}")
async def scan(scan_id: int, request: Request) -> Response:
    """The scan's status."""
    await _auth(request)
    found = _r7(request)["scans"].get(scan_id)
    if found is None:
        raise Reply(_error(404, f"The scan {scan_id} does not exist."))
    found["reads"] += 1
    if POLL_FAILS in found["user"].lower() and found["reads"] == 2:
        creds = parse_basic(request.headers.get("authorization"))
        raise Reply(STYLE.reply(sc.ECHO, echo_text(request, list(creds or ()))))
    reads = found["reads"]
    status = _SCAN_STATES[reads - 1] if reads <= len(_SCAN_STATES) else "finished"
    return json_reply(200, {"id": scan_id, "status": status, "scanType": "Manual", "siteId": SITE_ID})


@router.post(_API + "/reports")
async def create_report(request: Request) -> Response:
    """Create a report configuration (``format`` xml-export-v2, ``scope.scan``) -> 201 ``{"id"}``."""
    await _auth(request)
    body = await request.json()
    scope = (body or {}).get("scope") or {}
    if (body or {}).get("format") != "xml-export-v2" or scope.get("scan") not in _r7(request)["scans"]:
        raise Reply(_error(400, "The report format or scope is not valid."))
    reports = _r7(request)["reports"]
    report_id = 40 + len(reports) + 1
    reports[report_id] = {"instances": {}}
    return json_reply(201, {"id": report_id, "links": []})


def _report(request: Request, report_id: int) -> dict[str, Any]:
    found: dict[str, Any] | None = _r7(request)["reports"].get(report_id)
    if found is None:
        raise Reply(_error(404, f"The report {report_id} does not exist."))
    return found


@router.post(_API + "/reports/{report_id}/generate")
async def generate_report(report_id: int, request: Request) -> Response:
    """Generate the report -> ``{"id": <instance>}``."""
    await _auth(request)
    instances = _report(request, report_id)["instances"]
    instance = str(len(instances) + 1)
    instances[instance] = {"reads": 0}
    return json_reply(200, {"id": instance, "links": []})


@router.get(_API + "/reports/{report_id}/history/{instance}")
async def report_instance(report_id: int, instance: str, request: Request) -> Response:
    """The generation's status: running, then complete."""
    await _auth(request)
    found = _report(request, report_id)["instances"].get(instance)
    if found is None:
        raise Reply(_error(404, "The report instance does not exist."))
    found["reads"] += 1
    return json_reply(200, {"id": instance, "status": "complete" if found["reads"] > 1 else "running"})


@router.get(_API + "/reports/{report_id}/history/{instance}/output")
async def report_output(report_id: int, instance: str, request: Request) -> Response:
    """The generated report, gzipped as the console usually answers it."""
    await _auth(request)
    found = _report(request, report_id)["instances"].get(instance)
    if found is None or found["reads"] < 2:
        raise Reply(_error(404, "The report has not been generated."))
    return Response(gzip.compress(REPORT_XML), media_type="application/octet-stream")


@router.delete(_API + "/reports/{report_id}")
async def delete_report(report_id: int, request: Request) -> Response:
    """Delete a report configuration."""
    await _auth(request)
    _report(request, report_id)
    del _r7(request)["reports"][report_id]
    return json_reply(200, {"links": []})


REPORT_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<NexposeReport version="2.0">
<scans><scan id="9001" name="Sandbox site" startTime="20240102T030405000" endTime="20240102T040405000"
 status="finished"/></scans>
<nodes>
<node address="10.3.0.7" status="alive" device-id="11" site-name="Sandbox site">
<endpoints><endpoint protocol="tcp" port="22" status="open"><services><service name="SSH"><tests>
<test id="ssh-cbc-ciphers" key="" status="vulnerable-version" scan-id="9001" vulnerable-since="20240102T030405000">
<Paragraph>CBC ciphers offered.</Paragraph></test>
</tests></service></services></endpoint></endpoints>
<tests><test id="tlsv1_0-enabled" key="" status="vulnerable-exploited" scan-id="9001"
 vulnerable-since="20240102T030405000"><Paragraph>TLS 1.0 is enabled.</Paragraph></test></tests>
</node>
</nodes>
<VulnerabilityDefinitions>
<vulnerability id="ssh-cbc-ciphers" title="SSH CBC vulnerability" severity="3" pciSeverity="2" cvssScore="2.6"
 cvssVector="(AV:N/AC:H/Au:N/C:P/I:N/A:N)" published="20081114T000000000" added="20090101T000000000"
 modified="20200101T000000000"><description><ContainerBlockElement><Paragraph>CBC mode ciphers.</Paragraph>
</ContainerBlockElement></description><references></references><tags><tag>SSH</tag></tags><solution>
<ContainerBlockElement><Paragraph>Disable CBC ciphers.</Paragraph></ContainerBlockElement></solution></vulnerability>
<vulnerability id="tlsv1_0-enabled" title="TLS Server Supports TLS version 1.0" severity="4" pciSeverity="3"
 cvssScore="4.3" cvssVector="(AV:N/AC:M/Au:N/C:P/I:N/A:N)" published="20140101T000000000"
 added="20140101T000000000" modified="20200101T000000000"><description><ContainerBlockElement>
<Paragraph>TLS 1.0.</Paragraph></ContainerBlockElement></description><references></references><tags>
<tag>TLS</tag></tags><solution><ContainerBlockElement><Paragraph>Disable TLS 1.0.</Paragraph>
</ContainerBlockElement></solution></vulnerability>
</VulnerabilityDefinitions>
</NexposeReport>
"""


VENDOR = {
    "category": "VM",
    "base_path": f"/{KEY}/api/3",
    "auth": "HTTP Basic",
    "valid_credentials": {"username": "pmap", "password": "r7-pass-0001"},
    "notes": "license answers 401 unless Global Administrator ('admin', or an 'expired'/'expiring' credential); "
    "'noperm' sees no assets (empty page); info.superuser/user describe the console service, not the caller; "
    "site 3 scans (dispatched, running, finished) and reports (xml-export-v2 scoped to the scan, gzipped); "
    "'pollfail' in the user name -> the 2nd scan read is a 401 echoing the credentials",
}
