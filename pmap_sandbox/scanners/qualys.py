"""Qualys VMDR: ``/msp/about.php`` (API v1) and the VM detection list (API v2), all XML: one sample host,
or a seeded user's generated hosts in truncated batches (``truncation_limit``, ``id_min``, ``vm_processed_after``).

VM scans (``/api/2.0/fo/scan/``): ``action=launch`` with option profile ``OPTION_ID`` on ``ip`` or
``asset_group_ids`` answers ``SIMPLE_RETURN`` (ITEM ``ID`` and ``REFERENCE``); ``action=list&scan_ref=`` reads
Running, then Finished with ``PROCESSED`` 0, then Finished and processed. The detection list filtered by ``ips``
or ``ag_ids`` shows the scanned network's hosts (``SCAN_HOSTS``). Markers in the user name: ``pollfail`` (the 2nd
scan list read is a 401 echoing the credentials), ``nolaunch`` (the launch is refused, 400 CODE 1901) and
``scanlimit`` (the launch answers 409 CODE 1960, the concurrency limit).

Auth: HTTP Basic, and ``X-Requested-With`` on every call. Errors are ``SIMPLE_RETURN`` XML.
Qualys signals rate limits with HTTP 409 + CODE 1965 + ``X-RateLimit-ToWait-Sec`` (not 429).
"""

from __future__ import annotations

import ipaddress
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import (
    ErrorStyle,
    Reply,
    echo_text,
    guard,
    parse_basic,
    seeded,
    store,
    vendor_router,
)

KEY = "qualys_vmdr"
router = vendor_router(KEY)
_XML = "application/xml"

# 1903 (400 "Missing required parameter(s)") and 1965 (409 rate limit) as in Qualys' API user guide, Appendix D
# "Error Codes/Descriptions" (docs.qualys.com/en/vm/qweb-all-api/appendix/appendix_d.htm); the 401 text
# "Bad Login/Password" as in Qualys' "Troubleshooting Qualys API" (discussions.qualys.com DOC-7025). The 401
# CODE 2000 and the 503 CODE 999 are not confirmed (no Qualys source found), nor the CODE of the answer to a
# missing X-Requested-With header.
_CODES = {400: 1903, 401: 2000, 409: 1965, 503: 999}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def simple_return(status: int, text: str, code: int | None = None) -> Response:
    """Qualys's ``SIMPLE_RETURN`` error document."""
    body = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        '<!DOCTYPE SIMPLE_RETURN SYSTEM "https://qualysapi.qualys.com/api/2.0/simple_return.dtd">\n'
        f"<SIMPLE_RETURN>\n  <RESPONSE>\n    <DATETIME>{_now()}</DATETIME>\n"
        f"    <CODE>{code or _CODES.get(status, status)}</CODE>\n    <TEXT>{escape(text)}</TEXT>\n"
        "  </RESPONSE>\n</SIMPLE_RETURN>\n"
    )
    return Response(body, status_code=status, media_type=_XML)


STYLE = ErrorStyle(
    make=simple_return,
    messages={
        "missing": (401, "Bad Login/Password"),
        sc.BAD: (401, "Bad Login/Password"),
        sc.ECHO: (401, "Bad Login/Password for {echo}"),
        sc.RATELIMIT: (409, "This API cannot be run again for another 1 seconds."),
        sc.DOWN: (503, "The service is temporarily unavailable. Please try again later."),
    },
    retry_headers={"X-RateLimit-ToWait-Sec": str(sc.RETRY_AFTER_SECONDS), "X-RateLimit-Remaining": "0"},
    retry_after=False,
)


async def _auth(request: Request) -> set[str]:
    if not request.headers.get("x-requested-with"):
        raise Reply(simple_return(400, "X-Requested-With header is required for API access."))
    creds = parse_basic(request.headers.get("authorization"))
    return await guard(KEY, STYLE, request, list(creds) if creds else [None])


@router.get("/msp/about.php")
async def about(request: Request) -> Response:
    """API, web, scanner and signature versions."""
    await _auth(request)
    body = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        '<!DOCTYPE ABOUT SYSTEM "https://qualysapi.qualys.com/about.dtd">\n<ABOUT>\n'
        '  <API-VERSION MAJOR="1" MINOR="4" />\n  <WEB-VERSION>10.28.1.0-1</WEB-VERSION>\n'
        "  <SCANNER-VERSION>13.5.43-1</SCANNER-VERSION>\n  <VULNSIGS-VERSION>2.6.32-3</VULNSIGS-VERSION>\n"
        "</ABOUT>\n"
    )
    return Response(body, media_type=_XML)


#: generated host ``i`` (ID ``1000 + i``) had its VM scan data processed ``i`` hours after this
SEED_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)
_DETECTION_DTD = (
    '<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM '
    '"https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/host_list_vm_detection_output.dtd">\n'
)


def seeded_host(i: int, fixed_every: int = 0) -> str:
    """Generated host ``i`` with one detection (deterministic): every ``fixed_every``-th one Fixed."""
    processed = (SEED_EPOCH + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = "Fixed" if fixed_every and i % fixed_every == fixed_every - 1 else "Active"
    return (
        f"<HOST><ID>{1000 + i}</ID><IP>10.{i // 65536}.{i // 256 % 256}.{i % 256}</IP>"
        f"<TRACKING_METHOD>IP</TRACKING_METHOD><DNS><![CDATA[host{i}.example.test]]></DNS>"
        f"<LAST_SCAN_DATETIME>{processed}</LAST_SCAN_DATETIME><LAST_VM_SCANNED_DATE>{processed}"
        "</LAST_VM_SCANNED_DATE><DETECTION_LIST><DETECTION>"
        f"<UNIQUE_VULN_ID>{5000 + i}</UNIQUE_VULN_ID><QID>{38000 + i}</QID><TYPE>Confirmed</TYPE>"
        f"<SEVERITY>{i % 5 + 1}</SEVERITY><PORT>443</PORT><PROTOCOL>tcp</PROTOCOL><SSL>1</SSL>"
        f"<RESULTS><![CDATA[generated result {i}]]></RESULTS><STATUS>{status}</STATUS>"
        f"<FIRST_FOUND_DATETIME>{SEED_EPOCH.strftime('%Y-%m-%dT%H:%M:%SZ')}</FIRST_FOUND_DATETIME>"
        f"<LAST_FOUND_DATETIME>{processed}</LAST_FOUND_DATETIME>"
        f"<LAST_PROCESSED_DATETIME>{processed}</LAST_PROCESSED_DATETIME>"
        "</DETECTION></DETECTION_LIST></HOST>"
    )


def _number(form: dict[str, str], name: str, default: int) -> int:
    # CODE 1905 for an invalid parameter value is not confirmed by a Qualys source
    raw = form.get(name, str(default))
    if not raw.isdigit():
        raise Reply(simple_return(400, f"Invalid value for parameter {name}", 1905))
    return int(raw)


def _seeded_list(request: Request, form: dict[str, str], data: dict[str, Any]) -> Response:
    """A seeded subscription's detection list: hosts by ascending ID from ``id_min``, ``vm_processed_after``,
    ``truncation_limit`` hosts (default 1000, 0: all) and the ``WARNING`` (CODE 1980) with the next batch's URL."""
    limit, id_min = _number(form, "truncation_limit", 1000), _number(form, "id_min", 0)
    after = None
    if form.get("vm_processed_after"):
        try:
            after = datetime.fromisoformat(form["vm_processed_after"].replace("Z", "+00:00"))
        except ValueError:
            raise Reply(simple_return(400, "Invalid value for parameter vm_processed_after", 1905)) from None
        after = after if after.tzinfo else after.replace(tzinfo=UTC)
    wanted = [i for i in range(max(0, id_min - 1000), int(data["count"]))
              if after is None or SEED_EPOCH + timedelta(hours=i) > after]
    shown, rest = (wanted[:limit], wanted[limit:]) if limit else (wanted, [])
    hosts = "".join(seeded_host(i, int(data.get("fixed_every", 0))) for i in shown)
    warning = ""
    if rest:
        # Qualys names the next batch by the next host ID; the foreign_next option makes a hostile URL
        root = data.get("foreign_next") or str(request.base_url).rstrip("/")
        url = f"{root}/{KEY}/api/2.0/fo/asset/host/vm/detection/?{urlencode({**form, 'id_min': 1000 + rest[0]})}"
        warning = (f"<WARNING><CODE>1980</CODE><TEXT>{limit} record limit exceeded. Use URL to get next batch of "
                   f"results.</TEXT><URL><![CDATA[{url}]]></URL></WARNING>")
    # the hostile option: a batch whose document type declares entities (the billion laughs' opening)
    prolog = _DETECTION_DTD if not data.get("entities") else (
        '<?xml version="1.0"?>\n<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n')
    bomb = "&b;" if data.get("entities") else ""
    body = (f"{prolog}<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><DATETIME>{_now()}</DATETIME>"
            f"<HOST_LIST>{hosts}{bomb}</HOST_LIST>{warning}</RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>\n")
    return Response(body, media_type=_XML)


@router.api_route("/api/2.0/fo/asset/host/vm/detection/", methods=["GET", "POST"])
async def detections(request: Request) -> Response:
    """``action=list``: one host with one confirmed detection; a seeded user's generated hosts in batches."""
    await _auth(request)
    form = dict(request.query_params)
    if request.method == "POST":
        form.update({k: str(v) for k, v in (await request.form()).items()})
    if form.get("action") != "list":
        raise Reply(simple_return(400, "Missing required parameter: action", 1903))
    creds = parse_basic(request.headers.get("authorization"))
    data = seeded(request, KEY, creds[0] if creds else None, STYLE)
    if data is not None:
        return _seeded_list(request, form, data)
    if form.get("ips") or form.get("ag_ids"):
        return _scanned_list(form)
    body = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        "<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM "
        '"https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/host_list_vm_detection_output.dtd">\n'
        f"<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><DATETIME>{_now()}</DATETIME><HOST_LIST><HOST>"
        "<ID>1001</ID><IP>10.0.0.11</IP><TRACKING_METHOD>IP</TRACKING_METHOD>"
        "<OS><![CDATA[Linux 5.15]]></OS><DNS><![CDATA[web01.example.test]]></DNS>"
        "<DETECTION_LIST><DETECTION><UNIQUE_VULN_ID>5001</UNIQUE_VULN_ID><QID>38863</QID>"
        "<TYPE>Confirmed</TYPE><SEVERITY>4</SEVERITY><PORT>443</PORT><PROTOCOL>tcp</PROTOCOL>"
        "<SSL>1</SSL><RESULTS><![CDATA[OpenSSL 1.1.1j detected]]></RESULTS><STATUS>Active</STATUS>"
        "<FIRST_FOUND_DATETIME>2024-01-02T03:04:05Z</FIRST_FOUND_DATETIME>"
        "<LAST_FOUND_DATETIME>2024-01-09T03:04:05Z</LAST_FOUND_DATETIME>"
        "</DETECTION></DETECTION_LIST></HOST></HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>\n"
    )
    return Response(body, media_type=_XML)


# --- VM scans (launch, list, and the detection list of the scanned hosts) ----------------------------------------

OPTION_ID = 1234  # the sandbox's one option profile
ASSET_GROUP_ID = 77  # the sandbox's one asset group: both SCAN_HOSTS
POLL_FAILS = "pollfail"  # vendor-specific markers (in the user name), see the module's docstring
NO_LAUNCH = "nolaunch"
SCAN_LIMIT = "scanlimit"
#: the scanned network: (host id, IP, QID, severity, result)
SCAN_HOSTS = ((1001, "10.0.0.11", 38863, 4, "OpenSSL 1.1.1j detected"),
              (1002, "10.0.0.12", 38739, 3, "SSH server offers CBC mode ciphers"))


def _in_targets(ip: str, targets: str) -> bool:
    """Whether ``ip`` is among Qualys-style targets (IPs, ``a-b`` ranges, CIDR blocks), comma separated."""
    addr = ipaddress.ip_address(ip)
    for item in (t.strip() for t in targets.split(",") if t.strip()):
        try:
            if "-" in item:
                low, high = (ipaddress.ip_address(x) for x in item.split("-", 1))
                if low <= addr <= high:  # type: ignore[operator]
                    return True
            elif addr in ipaddress.ip_network(item, strict=False):
                return True
        except (ValueError, TypeError):  # not an address, or a range mixing IPv4 and IPv6
            raise Reply(simple_return(400, f"parameter ips has invalid value: {item}", 1905)) from None
    return False


def _scanned_list(form: dict[str, str]) -> Response:
    """The detection list of the scanned network's hosts named by ``ips`` or ``ag_ids``."""
    hosts: tuple[tuple[int, str, int, int, str], ...]
    if form.get("ag_ids"):
        hosts = SCAN_HOSTS if str(ASSET_GROUP_ID) in form["ag_ids"].split(",") else ()
    else:
        hosts = tuple(h for h in SCAN_HOSTS if _in_targets(h[1], form["ips"]))
    listed = "".join(
        f"<HOST><ID>{hid}</ID><IP>{ip}</IP><TRACKING_METHOD>IP</TRACKING_METHOD>"
        f"<DNS><![CDATA[host{hid}.example.test]]></DNS><DETECTION_LIST><DETECTION>"
        f"<UNIQUE_VULN_ID>{hid + 4000}</UNIQUE_VULN_ID><QID>{qid}</QID><TYPE>Confirmed</TYPE>"
        f"<SEVERITY>{sev}</SEVERITY><PORT>22</PORT><PROTOCOL>tcp</PROTOCOL><SSL>0</SSL>"
        f"<RESULTS><![CDATA[{result}]]></RESULTS><STATUS>New</STATUS>"
        "<FIRST_FOUND_DATETIME>2024-01-02T03:04:05Z</FIRST_FOUND_DATETIME>"
        "<LAST_FOUND_DATETIME>2024-01-09T03:04:05Z</LAST_FOUND_DATETIME>"
        "</DETECTION></DETECTION_LIST></HOST>"
        for hid, ip, qid, sev, result in hosts)
    body = (f"{_DETECTION_DTD}<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><DATETIME>{_now()}</DATETIME>"
            f"<HOST_LIST>{listed}</HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>\n")
    return Response(body, media_type=_XML)


def _scans(request: Request) -> dict[str, dict[str, Any]]:
    state = store(request, KEY)
    scans: dict[str, dict[str, Any]] = state.setdefault("scans", {})
    return scans


def _launch(request: Request, form: dict[str, str], user: str) -> Response:
    """``action=launch`` -> ``SIMPLE_RETURN`` "New vm scan launched" with ITEMs ``ID`` and ``REFERENCE``."""
    if NO_LAUNCH in user.lower():
        raise Reply(simple_return(400, "Unrecognized parameter(s): option_id, ip (not available to this user)", 1901))
    if SCAN_LIMIT in user.lower():
        reply = simple_return(409, "You have reached the maximum number of concurrent scans.", 1960)
        reply.headers["X-Concurrency-Limit-Limit"] = "2"
        reply.headers["X-Concurrency-Limit-Running"] = "2"
        raise Reply(reply)
    if not form.get("option_id") and not form.get("option_title"):
        raise Reply(simple_return(400, "Missing required parameter(s): option_id or option_title", 1903))
    if not (form.get("ip") or form.get("asset_group_ids") or form.get("asset_groups")):
        raise Reply(simple_return(400, "Missing required parameter(s): ip, asset_groups or asset_group_ids", 1903))
    if form.get("option_id") != str(OPTION_ID):
        raise Reply(simple_return(400, f"parameter option_id has invalid value: {form.get('option_id')}", 1905))
    scans = _scans(request)
    scan_id = 1781000 + len(scans) + 1
    ref = f"scan/{int(time.time())}.{scan_id % 100000:05d}"
    scans[ref] = {"reads": 0, "user": user, "title": form.get("scan_title", "")}
    body = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        '<!DOCTYPE SIMPLE_RETURN SYSTEM "https://qualysapi.qualys.com/api/2.0/fo/scan/dtd/launch_output.dtd">\n'
        f"<SIMPLE_RETURN><RESPONSE><DATETIME>{_now()}</DATETIME><TEXT>New vm scan launched</TEXT><ITEM_LIST>"
        f"<ITEM><KEY>ID</KEY><VALUE>{scan_id}</VALUE></ITEM><ITEM><KEY>REFERENCE</KEY><VALUE>{ref}</VALUE></ITEM>"
        "</ITEM_LIST></RESPONSE></SIMPLE_RETURN>\n"
    )
    return Response(body, media_type=_XML)


def _list(request: Request, form: dict[str, str]) -> Response:
    """``action=list``: the launched scan named by ``scan_ref`` (Running, Finished unprocessed, Finished)."""
    ref = form.get("scan_ref", "")
    found = _scans(request).get(ref)
    scans = ""
    if found is not None:
        found["reads"] += 1
        if POLL_FAILS in found["user"].lower() and found["reads"] == 2:
            creds = parse_basic(request.headers.get("authorization"))
            raise Reply(STYLE.reply(sc.ECHO, echo_text(request, list(creds or ()))))
        state, processed = ("Running", 0) if found["reads"] == 1 else ("Finished", 0 if found["reads"] == 2 else 1)
        scans = (f"<SCAN><REF>{ref}</REF><TYPE>API</TYPE><TITLE><![CDATA[{escape(found['title'])}]]></TITLE>"
                 f"<USER_LOGIN>pmap_qa</USER_LOGIN><LAUNCH_DATETIME>{_now()}</LAUNCH_DATETIME>"
                 f"<PROCESSED>{processed}</PROCESSED><STATUS><STATE>{state}</STATE></STATUS>"
                 "<TARGET><![CDATA[10.0.0.11-10.0.0.12]]></TARGET></SCAN>")
    body = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        '<!DOCTYPE SCAN_LIST_OUTPUT SYSTEM "https://qualysapi.qualys.com/api/2.0/fo/scan/scan_list_output.dtd">\n'
        f"<SCAN_LIST_OUTPUT><RESPONSE><DATETIME>{_now()}</DATETIME>"
        + (f"<SCAN_LIST>{scans}</SCAN_LIST>" if scans else "") + "</RESPONSE></SCAN_LIST_OUTPUT>\n"
    )
    return Response(body, media_type=_XML)


@router.api_route("/api/2.0/fo/scan/", methods=["GET", "POST"])
async def vm_scans(request: Request) -> Response:
    """``action=launch`` (POST) and ``action=list``."""
    await _auth(request)
    form = dict(request.query_params)
    if request.method == "POST":
        form.update({k: str(v) for k, v in (await request.form()).items()})
    creds = parse_basic(request.headers.get("authorization"))
    action = form.get("action")
    if action == "launch" and request.method == "POST":
        return _launch(request, form, creds[0] if creds else "")
    if action == "list":
        return _list(request, form)
    raise Reply(simple_return(400, "Missing required parameter(s): action", 1903))


VENDOR = {
    "category": "VM",
    "base_path": f"/{KEY}",
    "auth": "HTTP Basic + X-Requested-With",
    "valid_credentials": {"username": "pmap_qa", "password": "qualys-pass-0001"},
    "notes": "ratelimit -> 409 CODE 1965 with X-RateLimit-ToWait-Sec (Qualys's documented signal, no Retry-After); "
    "missing X-Requested-With -> 400 SIMPLE_RETURN; no license report, so expired/expiring/noperm/admin "
    "change nothing; CODE 1903 (400) and 1965 (409) as in Qualys' API guide Appendix D; the 401 CODE 2000 and "
    "503 CODE 999 are not confirmed; VM scans: option profile 1234 on ip or asset_group_ids (group 77) launch "
    "(Running, Finished unprocessed, Finished), the detection list by ips/ag_ids shows 2 scanned hosts; 'pollfail' "
    "-> the 2nd scan list read is a 401 echoing the credentials; 'nolaunch' -> the launch is a 400 CODE 1901; "
    "'scanlimit' -> the launch is a 409 CODE 1960",
}
