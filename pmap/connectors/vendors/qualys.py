"""Qualys VMDR: HTTP Basic plus ``X-Requested-With`` on every call; answers are XML.

Qualys signals its rate and concurrency limits with HTTP 409 (``CODE`` 1965/1960) and the wait in
``X-RateLimit-ToWait-Sec`` rather than 429 + ``Retry-After``, so those waits are honoured here
(the outbound layer retries only 429 and 5xx). Qualys reports no license through the API.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
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
    OperationContext,
    Probe,
    ReportArtifact,
    ScanRef,
    SyncsFindings,
)
from pmap.connectors.vendors._pull import utc_text
from pmap.connectors.vendors._support import DOWNLOAD_MAX_BYTES, check, fail, xml_of
from pmap.core import clock
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


def _call(ctx: OperationContext, c: OutboundClient, method: str, path: str, **kw: Any) -> OutboundResponse:
    """One Qualys call with its 409 waits honoured inside the budget, failures mapped to steps."""
    auth = (ctx.credentials.username, ctx.secret("password"))
    for attempt in range(_LIMIT_RETRIES + 1):
        resp = c.request(method, path, auth=auth, headers=_HEADERS, **kw)
        wait = _wait_of(resp) if resp.status == 409 else None
        if wait is None or attempt == _LIMIT_RETRIES or wait + 0.1 >= ctx.remaining():
            break
        clock.sleep(wait)
    if resp.status == 409:
        raise fail(ctx, "Qualys's API rate or concurrency limit is reached; try again later", step="http", resp=resp)
    return check(ctx, resp, f"{method} {path}",
                 permission_hint="enable API access for the Qualys user (its role must allow the API)")


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


def _batch(ctx: OperationContext, resp: OutboundResponse) -> list[ParsedFinding]:
    """The findings of one batch, read by the ``qualys_xml`` format (its XML guards: no entities, no DTD)."""
    if b"HOST_LIST_VM_DETECTION_OUTPUT" not in resp.content[:4096]:
        raise fail(ctx, "the detection list answer is not a HOST_LIST_VM_DETECTION_OUTPUT document",
                   step="response", resp=resp)
    try:
        return list(DETECTION_FORMAT.parse(io.BytesIO(resp.content)))
    except ReportError as exc:
        raise fail(ctx, f"the detection list could not be read: {exc.message}", step="response") from None


class QualysConnector(Connector, SyncsFindings, FetchesFindings):
    """Qualys VMDR: versions from ``/msp/about.php``; findings from the host detection list."""

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
        return FindingsFeed(format=DETECTION_FORMAT.key, findings=self._detections(ctx, pull),
                            complete=pull.since is None)

    def _detections(self, ctx: OperationContext, pull: FindingsPull) -> Iterator[ParsedFinding]:
        form = {"action": "list", "show_results": "1", "truncation_limit": str(BATCH_HOSTS),
                "status": "New,Active,Re-Opened,Fixed"}
        if pull.since is not None:
            form["vm_processed_after"] = utc_text(pull.since)
        with ctx.client() as c:
            resp = _call(ctx, c, "POST", _DETECTION_PATH, data=form, max_bytes=BATCH_MAX_BYTES)
            while True:
                # one batch in memory: its findings are read, its continuation found, then the body dropped
                findings, url = _batch(ctx, resp), _next_batch(ctx, resp.content)
                del resp
                yield from findings
                if not url:
                    return
                # the URL carries every parameter of the first call plus id_min; another host is refused
                resp = _call(ctx, c, "GET", url, max_bytes=BATCH_MAX_BYTES)

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """The subscription's host detection list (new, active, re-opened and fixed) as ``qualys_xml``.

        Detections are per host, not per scan: ``scan.scan_id`` only names the artifact.
        """
        form = {"action": "list", "show_results": "1", "truncation_limit": "0",
                "status": "New,Active,Re-Opened,Fixed"}
        with ctx.client() as c:
            resp = _call(ctx, c, "POST", _DETECTION_PATH, data=form, max_bytes=DOWNLOAD_MAX_BYTES)
        if b"HOST_LIST_VM_DETECTION_OUTPUT" not in resp.content[:4096]:
            raise fail(ctx, "the detection list answer is not a HOST_LIST_VM_DETECTION_OUTPUT document",
                       step="response", resp=resp)
        return ReportArtifact(name="qualys_host_detections.xml", format="qualys_xml", content=resp.content)


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
        notes="Findings come from the host detection list (subscription-wide). Qualys sends no signed webhooks.",
    ),
)
