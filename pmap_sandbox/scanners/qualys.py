"""Qualys VMDR: ``/msp/about.php`` (API v1) and a one-host VM detection list (API v2), all XML.

Auth: HTTP Basic, and ``X-Requested-With`` on every call. Errors are ``SIMPLE_RETURN`` XML.
Qualys signals rate limits with HTTP 409 + CODE 1965 + ``X-RateLimit-ToWait-Sec`` (not 429).
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape

from fastapi import Request
from fastapi.responses import Response

from pmap_sandbox import scenarios as sc
from pmap_sandbox.scanners._common import ErrorStyle, Reply, guard, parse_basic, vendor_router

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


@router.api_route("/api/2.0/fo/asset/host/vm/detection/", methods=["GET", "POST"])
async def detections(request: Request) -> Response:
    """``action=list``: one host with one confirmed detection."""
    await _auth(request)
    form = dict(request.query_params)
    if request.method == "POST":
        form.update({k: str(v) for k, v in (await request.form()).items()})
    if form.get("action") != "list":
        raise Reply(simple_return(400, "Missing required parameter: action", 1903))
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


VENDOR = {
    "category": "VM",
    "base_path": f"/{KEY}",
    "auth": "HTTP Basic + X-Requested-With",
    "valid_credentials": {"username": "pmap_qa", "password": "qualys-pass-0001"},
    "notes": "ratelimit -> 409 CODE 1965 with X-RateLimit-ToWait-Sec (Qualys's documented signal, no Retry-After); "
    "missing X-Requested-With -> 400 SIMPLE_RETURN; no license report, so expired/expiring/noperm/admin "
    "change nothing; CODE 1903 (400) and 1965 (409) as in Qualys' API guide Appendix D; the 401 CODE 2000 and "
    "503 CODE 999 are not confirmed",
}
