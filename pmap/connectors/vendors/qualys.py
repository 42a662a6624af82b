"""Qualys VMDR: HTTP Basic plus ``X-Requested-With`` on every call; answers are XML.

Qualys signals its rate and concurrency limits with HTTP 409 (``CODE`` 1965/1960) and the wait in
``X-RateLimit-ToWait-Sec`` rather than 429 + ``Retry-After``, so those waits are honoured here
(the outbound layer retries only 429 and 5xx). Qualys reports no license through the API.

Scan launch (VM Scan API v2, ``/api/2.0/fo/scan/``): PMAP's ``scan_id`` is ``<option profile id>:<targets>``,
the targets being IPs/ranges (``10.0.0.1,10.0.0.5-10.0.0.20``, Qualys's ``ip``) or ``ag=<id>[,<id>]``
(``asset_group_ids``). ``action=launch`` answers a ``SIMPLE_RETURN`` whose ITEM ``REFERENCE`` is the run
(``scan/1234567890.12345``); ``action=list&scan_ref=`` gives its ``STATUS/STATE``; the results are read from the
host detection list of the scan's targets (``ips`` or ``ag_ids``) as ``qualys_xml``, the format the sync uses
(PMAP has no reader of the scan fetch's own JSON/CSV).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    FetchesFindings,
    FindingsFeed,
    FindingsPull,
    LaunchesScans,
    OperationContext,
    Probe,
    ReportArtifact,
    ReportsScanStatus,
    ScanRef,
    ScanState,
    SyncsFindings,
)
from pmap.connectors.vendors._pull import utc_text
from pmap.connectors.vendors._support import DOWNLOAD_MAX_BYTES, check, fail, xml_of
from pmap.core import clock
from pmap.core.errors import FieldProblem, ScanLaunchUnavailable, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.vm_dast.qualys import FORMAT as DETECTION_FORMAT
from pmap.findings.formats.xml_reader import child, clear_element, iter_xml, text_of

_HEADERS = {"X-Requested-With": "PMAP"}
_LIMIT_RETRIES = 2
_DEFAULT_WAIT = 2.0  # seconds, when a 409 names no wait
_DETECTION_PATH = "/api/2.0/fo/asset/host/vm/detection/"
#: hosts per batch of a pull: a batch is one answer held in memory, so it is kept well under Qualys's
#: default of 1000 (a host may carry hundreds of detections)
BATCH_HOSTS = 100
#: the largest batch answer read (100 hosts of long RESULTS texts stay far below it)
BATCH_MAX_BYTES = 64 * 1024 * 1024


class QualysCredentials(Credentials):
    """A Qualys API user (HTTP Basic)."""

    username: str = Field(min_length=1, description="Qualys user name")
    password: SecretStr = Field(description="Qualys password")


class QualysConnection(ConnectionSettings):
    base_url: str = Field(
        default="https://qualysapi.qualys.com",
        description="Your platform's API server, e.g. https://qualysapi.qg2.apps.qualys.com",
    )


def _wait_of(resp: OutboundResponse) -> float | None:
    """Seconds Qualys asks to wait on a rate/concurrency 409; None when the 409 is something else.

    Qualys's documented limit headers are ``X-RateLimit-{Limit,Window-Sec,Remaining,ToWait-Sec}`` and
    ``X-Concurrency-Limit-{Limit,Running}``: only the rate limit names a wait.
    """
    header = resp.headers.get("x-ratelimit-towait-sec")
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            return _DEFAULT_WAIT
    return _DEFAULT_WAIT if b"<CODE>1965</CODE>" in resp.content or b"<CODE>1960</CODE>" in resp.content else None


def _send(ctx: OperationContext, c: OutboundClient, method: str, path: str, **kw: Any) -> OutboundResponse:
    """One Qualys call with its 409 waits honoured inside the budget (a 409 did nothing: sending again is safe)."""
    auth = (ctx.credentials.username, ctx.secret("password"))
    for attempt in range(_LIMIT_RETRIES + 1):
        resp = c.request(method, path, auth=auth, headers=_HEADERS, **kw)
        wait = _wait_of(resp) if resp.status == 409 else None
        if wait is None or attempt == _LIMIT_RETRIES or wait + 0.1 >= ctx.remaining():
            break
        clock.sleep(wait)
    return resp


def _call(ctx: OperationContext, c: OutboundClient, method: str, path: str, **kw: Any) -> OutboundResponse:
    """One Qualys call with its 409 waits honoured inside the budget, failures mapped to steps."""
    resp = _send(ctx, c, method, path, **kw)
    if resp.status == 409:
        raise fail(ctx, "Qualys's API rate or concurrency limit is reached; try again later", step="http", resp=resp)
    return check(ctx, resp, f"{method} {path}",
                 permission_hint="enable API access for the Qualys user (its role must allow the API)")


_SCAN_PATH = "/api/2.0/fo/scan/"
_REFERENCE = re.compile(r"scan/\d{1,20}\.\d{1,20}")
#: IPv4/IPv6 addresses, ranges (``a-b``) and CIDR blocks, comma separated: what Qualys's ``ip`` takes
_IPS = re.compile(r"[0-9A-Fa-f.:/\-]+(,[0-9A-Fa-f.:/\-]+)*")
_IDS = re.compile(r"\d{1,20}(,\d{1,20})*")
_CODE = re.compile(rb"<CODE>\s*(\d+)\s*</CODE>")
#: SIMPLE_RETURN codes of a launch the account or subscription may not make: 1901 "parameters ... not available to
#: the browsing user" (Appendix D); the 2000s are Qualys's account codes (registration, API access, role)
_NOT_ALLOWED_PREFIX = "20"
_NOT_ALLOWED = {"1901"}
_SCAN_FORMAT = ("a Qualys scan_id is <option profile id>:<targets>, the targets IPs/ranges "
                "(10.0.0.1,10.0.0.5-10.0.0.20) or ag=<asset group id>[,<id>]")
# scan STATUS/STATE (scan list) -> ScanState.status; Finished counts once its results are processed
_STATES = {"submitted": "queued", "queued": "queued", "loading": "queued", "running": "running", "paused": "running",
           "finished": "completed", "error": "failed", "canceled": "canceled", "cancelled": "canceled"}


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """What a Qualys ``scan_id`` names: the option profile and the targets (IPs/ranges, or asset group ids)."""

    option_id: str
    ips: str | None = None
    asset_group_ids: str | None = None

    def launch_form(self) -> dict[str, str]:
        target = {"ip": self.ips} if self.ips else {"asset_group_ids": self.asset_group_ids or ""}
        return {"option_id": self.option_id, **target}

    def detection_filter(self) -> dict[str, str]:
        """The host detection list's filter of the same hosts (``ips`` or ``ag_ids``)."""
        return {"ips": self.ips} if self.ips else {"ag_ids": self.asset_group_ids or ""}


def launch_spec(scan_id: str) -> LaunchSpec:
    """``<option profile id>:<targets>``; anything else is the caller's mistake (nothing is sent)."""
    option, sep, target = scan_id.strip().partition(":")
    target = target.replace(" ", "")
    spec: LaunchSpec | None = None
    if sep and option.isdigit() and len(option) <= 20:
        if target.lower().startswith("ag="):
            spec = LaunchSpec(option, asset_group_ids=target[3:]) if _IDS.fullmatch(target[3:]) else None
        elif _IPS.fullmatch(target) and any(ch.isdigit() for ch in target):
            spec = LaunchSpec(option, ips=target)
    if spec is None:
        raise ValidationFailed(_SCAN_FORMAT, fields=[FieldProblem("scan_id", "must be <option id>:<targets>")])
    return spec


def _reference(ctx: OperationContext, value: str | None) -> str:
    if not value or not _REFERENCE.fullmatch(value):
        raise ValidationFailed("a Qualys scan reference looks like scan/1234567890.12345",
                               fields=[FieldProblem("scan_id", "not a Qualys scan reference")])
    return value


def _code_of(resp: OutboundResponse) -> str | None:
    match = _CODE.search(resp.content[:65536])
    return match.group(1).decode() if match else None


def _launch_refused(ctx: OperationContext, resp: OutboundResponse) -> ScanLaunchUnavailable | None:
    """The launch Qualys refused for the account or subscription (its CODE decides), or None."""
    code = _code_of(resp)
    if resp.status == 409:
        why = (f"Qualys refused the launch for the subscription's limits (HTTP 409, CODE {code or 'none'}: too many "
               "API calls or scans running at once, after PMAP's waits); launch it again once they end")
    elif resp.status in (400, 403) and code is not None and (code in _NOT_ALLOWED
                                                            or code.startswith(_NOT_ALLOWED_PREFIX)):
        why = (f"the Qualys account may not launch VM scans through the API (HTTP {resp.status}, CODE {code}): give "
               "the API user a role that launches scans (Manager, Unit Manager or Scanner) with API access, on a "
               "subscription with VM scanning")
    elif resp.status == 403:
        why = ("the Qualys account may not launch VM scans through the API (HTTP 403): give the API user a role "
               "that launches scans (Manager, Unit Manager or Scanner) with API access")
    else:
        return None
    refused = fail(ctx, why, step="permission", resp=resp)
    return ScanLaunchUnavailable(refused.message, step="permission", upstream_status=resp.status)


def _next_batch(ctx: OperationContext, content: bytes) -> str | None:
    """The URL of the next batch a truncated detection list names (``<WARNING><URL>``, with ``id_min``)."""
    try:
        for _tag, warning in iter_xml(io.BytesIO(content), DETECTION_FORMAT.key, ("WARNING",)):
            url = text_of(child(warning, "URL"))
            clear_element(warning)
            if url:
                return url
    except ReportError as exc:
        raise fail(ctx, f"the detection list could not be read: {exc.message}", step="response") from None
    return None


def _batch(ctx: OperationContext, resp: OutboundResponse, skipped: Counter[str]) -> list[ParsedFinding]:
    """The findings of one batch, read by the ``qualys_xml`` format (its XML guards: no entities, no DTD)."""
    if b"HOST_LIST_VM_DETECTION_OUTPUT" not in resp.content[:4096]:
        raise fail(ctx, "the detection list answer is not a HOST_LIST_VM_DETECTION_OUTPUT document",
                   step="response", resp=resp)
    try:
        return list(DETECTION_FORMAT.parse(io.BytesIO(resp.content), skipped))
    except ReportError as exc:
        raise fail(ctx, f"the detection list could not be read: {exc.message}", step="response") from None


class QualysConnector(Connector, SyncsFindings, FetchesFindings, LaunchesScans, ReportsScanStatus):
    """Qualys VMDR: versions from ``/msp/about.php``; findings from the host detection list; VM scans launched
    with an option profile on targets, followed in the scan list, their hosts' detections fetched."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /msp/about.php`` (authenticated): web, API, scanner and signature versions."""
        with ctx.client() as c:
            resp = _call(ctx, c, "GET", "/msp/about.php")
        root = xml_of(ctx, resp, "GET /msp/about.php")
        if root.tag != "ABOUT":
            raise fail(ctx, f"GET /msp/about.php answered a {root.tag} document, not ABOUT", step="response",
                       resp=resp)
        api = root.find("API-VERSION")
        api_version = f"{api.get('MAJOR')}.{api.get('MINOR')}" if api is not None else None
        parts = {"API": api_version, "scanner": root.findtext("SCANNER-VERSION"),
                 "signatures": root.findtext("VULNSIGS-VERSION")}
        detail = ", ".join(f"{k} {v.strip()}" for k, v in parts.items() if v and v.strip())
        return Probe(product="Qualys VMDR", version=(root.findtext("WEB-VERSION") or "").strip() or None,
                     message=f"connected and authenticated ({detail})" if detail else None)

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The subscription's host detections (new, active, re-opened and fixed) in batches of hosts,
        following each truncated answer's ``<WARNING><URL>`` (``id_min``); with ``pull.since``, only hosts
        whose scan data was processed after it (``vm_processed_after``)."""
        skipped: Counter[str] = Counter()
        return FindingsFeed(format=DETECTION_FORMAT.key, findings=self._detections(ctx, pull, skipped),
                            complete=pull.since is None, skipped=skipped)

    def _detections(self, ctx: OperationContext, pull: FindingsPull, skipped: Counter[str]
                    ) -> Iterator[ParsedFinding]:
        form = {"action": "list", "show_results": "1", "truncation_limit": str(BATCH_HOSTS),
                "status": "New,Active,Re-Opened,Fixed"}
        if pull.since is not None:
            form["vm_processed_after"] = utc_text(pull.since)
        with ctx.client() as c:
            resp = _call(ctx, c, "POST", _DETECTION_PATH, data=form, max_bytes=BATCH_MAX_BYTES)
            while True:
                # one batch in memory: its findings are read, its continuation found, then the body dropped
                findings, url = _batch(ctx, resp, skipped), _next_batch(ctx, resp.content)
                del resp
                yield from findings
                if not url:
                    return
                # the URL carries every parameter of the first call plus id_min; another host is refused
                resp = _call(ctx, c, "GET", url, max_bytes=BATCH_MAX_BYTES)

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        """``POST /api/2.0/fo/scan/?action=launch`` with ``option_id`` and ``ip`` or ``asset_group_ids``: the run is
        the answer's ITEM ``REFERENCE``. A refusal for the account or subscription is :class:`ScanLaunchUnavailable`."""
        spec = launch_spec(scan_id)
        form = {"action": "launch", "scan_title": f"PMAP {scan_id.strip()}"[:200], **spec.launch_form()}
        with ctx.client() as c:
            resp = _send(ctx, c, "POST", _SCAN_PATH, data=form)
        refused = _launch_refused(ctx, resp)
        if refused is not None:
            raise refused
        check(ctx, resp, "launching a VM scan",
              permission_hint="give the API user a role that launches scans, with API access")
        root = xml_of(ctx, resp, "scan launch")
        items = {text_of(item.find("KEY")): text_of(item.find("VALUE")) for item in root.iter("ITEM")}
        ref = (items.get("REFERENCE") or "").strip()
        if root.tag != "SIMPLE_RETURN" or not _REFERENCE.fullmatch(ref):
            raise fail(ctx, "the scan launch answered no scan REFERENCE", step="response", resp=resp)
        return ScanRef(scan_id=scan_id.strip(), run_id=ref)

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        """``POST /api/2.0/fo/scan/?action=list&scan_ref=``: the run's ``STATUS/STATE``; a Finished scan completes
        once ``PROCESSED`` is 1 (its results are in the host detections)."""
        ref = _reference(ctx, scan.run_id)
        with ctx.client() as c:
            resp = _call(ctx, c, "POST", _SCAN_PATH, data={"action": "list", "scan_ref": ref, "show_status": "1"})
        root = xml_of(ctx, resp, "scan list")
        if root.tag != "SCAN_LIST_OUTPUT":
            raise fail(ctx, f"the scan list answered a {root.tag} document, not SCAN_LIST_OUTPUT", step="response",
                       resp=resp)
        found = next((s for s in root.iter("SCAN") if (s.findtext("REF") or "").strip() == ref), None)
        if found is None:
            raise fail(ctx, f"Qualys lists no scan {ref} for this account", step="response")
        state = (found.findtext("STATUS/STATE") or "unknown").strip()
        sub = (found.findtext("STATUS/SUB_STATE") or "").strip()
        status = _STATES.get(state.lower(), "running")
        processed = (found.findtext("PROCESSED") or "").strip()
        detail = f"Qualys state: {state}" + (f" ({sub})" if sub else "")
        if status == "completed" and processed == "0":
            status, detail = "running", f"{detail}, results not yet processed"
        return ScanState(scan_id=scan.scan_id, status=status, detail=detail)

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """The host detection list (new, active, re-opened and fixed) as ``qualys_xml``: of a launched scan's
        targets (``ips`` or ``ag_ids``) when ``scan.scan_id`` is a launch's ``<option id>:<targets>``, else of the
        whole subscription. Detections are per host, not per scan: the hosts' latest state after the scan."""
        form = {"action": "list", "show_results": "1", "truncation_limit": "0",
                "status": "New,Active,Re-Opened,Fixed"}
        name = "qualys_host_detections.xml"
        if scan.run_id is not None:
            form.update(launch_spec(scan.scan_id).detection_filter())
            name = f"qualys_{_reference(ctx, scan.run_id).replace('/', '_')}_detections.xml"
        with ctx.client() as c:
            resp = _call(ctx, c, "POST", _DETECTION_PATH, data=form, max_bytes=DOWNLOAD_MAX_BYTES)
        if b"HOST_LIST_VM_DETECTION_OUTPUT" not in resp.content[:4096]:
            raise fail(ctx, "the detection list answer is not a HOST_LIST_VM_DETECTION_OUTPUT document",
                       step="response", resp=resp)
        return ReportArtifact(name=name, format="qualys_xml", content=resp.content)

CONNECTOR_TYPES = (
    ConnectorType(
        vendor="qualys_vmdr",
        display_name="Qualys VMDR",
        category=Category.VM,
        connection_model=QualysConnection,
        credentials_model=QualysCredentials,
        default_base_url="https://qualysapi.qualys.com",
        report_formats=("qualys_xml", "qualys_csv", "qualys_vmdr_csv"),
        implementation=QualysConnector(),
        docs_url="https://docs.qualys.com/en/vm/api/",
        notes="A findings sync reads the host detection list (subscription-wide). Launch a VM scan with scan_id "
              "<option profile id>:<targets>, the targets IPs/ranges (1234:10.0.0.1,10.0.0.5-10.0.0.20) or asset "
              "group ids (1234:ag=55,56): it is launched with that option profile, followed in the scan list until "
              "Finished and processed, and the detection list of those hosts is imported as qualys_xml. An account "
              "whose role or subscription may not launch scans, or a 409 limit, is scan_launch_unavailable. Qualys "
              "sends no signed webhooks.",
    ),
)
