"""Rapid7 InsightVM security console API v3 (``https://HOST:3780/api/3``), HTTP Basic.

``GET /administration/info`` proves the credentials and gives the version. Its ``superuser`` and ``user``
fields describe the OS account running the console service, not the API user (console OpenAPI spec, as
generated into rapid7/vm-console-client-ruby ``Info``), so they say nothing about PMAP's rights. The license
call is documented for Global Administrators only (and declares 401, no 403, for others): PMAP tries it, reads
the license when it is answered, and then warns that the account has more rights than it needs.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    FetchesFindings,
    FindingsFeed,
    FindingsPull,
    LaunchesScans,
    OperationContext,
    PermissionReport,
    Probe,
    ReportArtifact,
    ReportsScanStatus,
    ScanRef,
    ScanState,
    SyncsFindings,
)
from pmap.connectors.vendors import _insightvm_pull
from pmap.connectors.vendors._support import (
    DOWNLOAD_MAX_BYTES,
    check,
    dig,
    expiry,
    fail,
    json_of,
    parse_when,
    permission_report,
    poll,
    text,
)
from pmap.core.errors import FieldProblem, UpstreamError, ValidationFailed
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path

_ADMIN_WARNING = ("the account is a Global Administrator: PMAP only reads assets and vulnerabilities; use a "
                  "user with a read-only role on the sites it should see")


class InsightVMCredentials(Credentials):
    """A security console user (HTTP Basic)."""

    username: str = Field(min_length=1, description="Console user name")
    password: SecretStr = Field(description="Console password")


class InsightVMConnection(ConnectionSettings):
    base_url: str = Field(description="Console API base, e.g. https://insightvm.example.com:3780/api/3")


_REFUSED = (401, 403)  # after /administration/info accepted the same credentials: a missing right


def _auth(ctx: OperationContext) -> tuple[str, str]:
    return ctx.credentials.username, ctx.secret("password")


def _license(ctx: OperationContext, c: OutboundClient) -> dict[str, Any] | None:
    """The license when the console answers it (Global Administrators only), else None."""
    resp = c.get("/administration/license", auth=_auth(ctx))
    if resp.status in _REFUSED:
        return None
    return json_of(ctx, check(ctx, resp, "GET /administration/license"), "license")


# scan statuses (console API v3 Scan.status) -> ScanState.status; anything else: still under way
_SCAN_STATES = {"finished": "completed", "stopped": "canceled", "aborted": "failed", "error": "failed",
                "dispatched": "queued"}


def _digits(value: str | None, what: str) -> str:
    """Console ids (sites, scans) are numbers; anything else is the caller's mistake."""
    if not str(value or "").strip().isdigit():
        raise ValidationFailed(f"an InsightVM {what} id is a number",
                               fields=[FieldProblem("scan_id", "must be digits")])
    return str(value).strip()


def _unpacked(ctx: OperationContext, content: bytes) -> bytes:
    """A report's output: the console usually gzips it; inflated within the download limit."""
    if not content.startswith(b"\x1f\x8b"):
        return content
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = inflater.decompress(content, DOWNLOAD_MAX_BYTES + 1)
    except zlib.error:
        raise fail(ctx, "the report output is not valid gzip", step="response") from None
    if len(data) > DOWNLOAD_MAX_BYTES or inflater.unconsumed_tail:
        raise fail(ctx, "the report is larger than the download limit once inflated", step="response")
    return data


class InsightVMConnector(Connector, ChecksPermissions, FetchesFindings, SyncsFindings, LaunchesScans,
                         ReportsScanStatus):
    """InsightVM console: version, license (for administrators), asset read right; a site's scan launched and
    its results fetched as an XML Export 2.0 report scoped to that scan; findings synced from the assets."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """Every visible asset's vulnerabilities (``/assets``, ``/assets/{id}/vulnerabilities``, definitions from
        ``/vulnerabilities/{id}``), paged and read lazily as ``nexpose_xml`` findings; not-vulnerable results are
        "fixed", excepted ones "accepted". InsightVM documents no change-time filter for them, so every pull is a
        complete full pull (``pull.since`` is not used)."""
        return _insightvm_pull.pull(ctx, pull, lambda: _auth(ctx))

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        """``POST /sites/{id}/scans`` (``scan_id`` is the site): the new scan's ``id``."""
        site = _digits(scan_id, "site")
        with ctx.client() as c:
            resp = check(ctx, c.post(vendor_path("/sites/{site}/scans", site=site), auth=_auth(ctx), json={}),
                         f"starting a scan of site {site}", ok=(200, 201),
                         permission_hint="the user needs the Start Unscheduled Scans right on the site")
        scan = text(json_of(ctx, resp, "scan start").get("id"))
        if not scan or not scan.isdigit():
            raise fail(ctx, "the console started the scan without a scan id", step="response")
        return ScanRef(scan_id=site, run_id=scan)

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        """``GET /scans/{id}``: its ``status``."""
        run = _digits(scan.run_id, "scan")
        with ctx.client() as c:
            body = json_of(ctx, check(ctx, c.get(vendor_path("/scans/{run}", run=run), auth=_auth(ctx)),
                                      "scan status"), "scan")
        vendor = str(body.get("status") or "unknown").lower()
        return ScanState(scan_id=scan.scan_id, status=_SCAN_STATES.get(vendor, "running"),
                         detail=f"InsightVM status: {vendor}")

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """An XML Export 2.0 report scoped to the scan: create it, generate it, poll its history, download the
        output, delete the report configuration."""
        run = _digits(scan.run_id, "scan")
        with ctx.client() as c:
            made = check(ctx, c.post("/reports", auth=_auth(ctx), json={
                "name": f"PMAP scan {run}", "format": "xml-export-v2", "scope": {"scan": int(run)}}),
                "creating the scan's report", ok=(200, 201),
                permission_hint="the user needs the Create Reports right")
            report = text(json_of(ctx, made, "report").get("id"))
            if not report or not report.isdigit():
                raise fail(ctx, "the console created the report without an id", step="response")
            try:
                started = check(ctx, c.post(vendor_path("/reports/{report}/generate", report=report),
                                            auth=_auth(ctx)), "generating the report")
                instance = text(json_of(ctx, started, "report generation").get("id"))
                if not instance:
                    raise fail(ctx, "the console started the report without an instance id", step="response")

                def ready() -> bool | None:
                    resp = check(ctx, c.get(vendor_path("/reports/{report}/history/{instance}", report=report,
                                                        instance=instance), auth=_auth(ctx)), "report status")
                    status = str(json_of(ctx, resp, "report status").get("status", "")).lower()
                    if status in ("failed", "aborted"):
                        raise fail(ctx, f"the console could not generate the report ({status})", step="response")
                    return True if status == "complete" else None

                poll(ctx, ready, what=f"the report of InsightVM scan {run}")
                out = check(ctx, c.get(vendor_path("/reports/{report}/history/{instance}/output", report=report,
                                                   instance=instance), auth=_auth(ctx),
                                       max_bytes=DOWNLOAD_MAX_BYTES), "report download")
            finally:  # the report configuration was only a means: leave the console as it was
                with contextlib.suppress(UpstreamError):  # a leftover configuration is harmless; the outcome stands
                    c.request("DELETE", vendor_path("/reports/{report}", report=report), auth=_auth(ctx))
        return ReportArtifact(name=f"insightvm_scan_{run}.xml", format="nexpose_xml",
                              content=_unpacked(ctx, out.content))

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /administration/info``; ``GET /administration/license`` (answered to Global Administrators)."""
        with ctx.client() as c:
            info = json_of(ctx, check(ctx, c.get("/administration/info", auth=_auth(ctx)),
                                      "GET /administration/info"), "console info")
            lic = _license(ctx, c)
        warnings = [_ADMIN_WARNING] if lic is not None else []
        license_ = None
        if lic is not None:
            status = text(lic.get("status"))
            license_, notes = expiry(
                parse_when(lic.get("expires")), what="InsightVM license", kind=text(lic.get("edition")),
                status=status, expired=status.lower() == "expired" if status else None,
                extra={"evaluation": lic.get("evaluation"), "perpetual": lic.get("perpetual")})
            warnings.extend(notes)
        version = text(dig(info, "version", "semantic")) or text(dig(info, "version", "build"))
        message = None if lic is not None else \
            "connected and authenticated (license not read: it needs a Global Administrator)"
        return Probe(product="Rapid7 InsightVM", version=version, license=license_, warnings=warnings,
                     message=message)

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """A one-asset read (what PMAP needs) and the license read (Global Administrator: more than it needs)."""
        with ctx.client() as c:
            check(ctx, c.get("/administration/info", auth=_auth(ctx)), "GET /administration/info")
            resp = c.get("/assets", auth=_auth(ctx), params={"page": 0, "size": 1})
            granted: bool | None = False
            notes: list[str] = []
            if resp.status not in _REFUSED:
                page = json_of(ctx, check(ctx, resp, "GET /assets"), "asset page")
                # the console lists only the assets the user may see: none can mean no access or nothing scanned
                granted = True if page.get("resources") else None
                if granted is None:
                    notes.append("the account sees no assets: either nothing has been scanned yet or it has no "
                                 "site or asset group access")
            admin = _license(ctx, c) is not None
        excess = ["Global Administrator"] if admin else []
        return permission_report([("View Site Asset Data", "reading assets and vulnerabilities", granted)],
                                 excess, notes)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="rapid7_insightvm",
        display_name="Rapid7 InsightVM",
        category=Category.VM,
        connection_model=InsightVMConnection,
        credentials_model=InsightVMCredentials,
        report_formats=("nexpose_xml",),
        implementation=InsightVMConnector(),
        docs_url="https://help.rapid7.com/insightvm/en-us/api/index.html",
        notes="Import XML 2.0 reports (nexpose_xml), or launch a site's scan (scan_id: the site id; its results are "
              "fetched as an XML 2.0 report scoped to the scan). The license is read only when the account is a "
              "Global Administrator, which the test flags as more than PMAP needs. A findings sync reads every visible "
              "asset's vulnerabilities (always a complete full pull).",
    ),
)
