"""Tenable Security Center (``https://HOST/rest``), API keys ``x-apikey: accesskey=A; secretkey=S;``.

Every answer, errors included, uses SC's envelope ``{"type", "response", "error_code", "error_msg"}``.
``GET /system`` answers anonymously (version only), so the test also reads ``GET /status`` (license)
with the keys. SC reports a license status but no expiry date.
"""

from __future__ import annotations

import io
import zipfile
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
from pmap.connectors.vendors import _tenable_sc_pull
from pmap.connectors.vendors._support import DOWNLOAD_MAX_BYTES, check, dig, fail, json_of, permission_report, text
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path

# SC role names with organisation-wide write rights: more than reading vulnerabilities needs
_EXCESS_ROLES = {"administrator", "security manager"}
_IP_USE_WARN = 0.9
_ANALYSIS_PROBE = {
    "type": "vuln",
    "sourceType": "cumulative",
    "query": {"type": "vuln", "tool": "vulnipdetail", "startOffset": 0, "endOffset": 1, "filters": []},
}


class TenableSCKeys(Credentials):
    """Security Center API keys (SC 5.13+), sent as ``x-apikey: accesskey=...; secretkey=...;``."""

    access_key: SecretStr = Field(description="API access key")
    secret_key: SecretStr = Field(description="API secret key")


class TenableSCConnection(ConnectionSettings):
    base_url: str = Field(description="Security Center REST base, e.g. https://sc.example.com/rest")


def _headers(ctx: OperationContext) -> dict[str, str]:
    return {"x-apikey": f"accesskey={ctx.secret('access_key')}; secretkey={ctx.secret('secret_key')};"}


def _envelope(ctx: OperationContext, c: OutboundClient, method: str, path: str, **kw: Any) -> dict[str, Any]:
    """The ``response`` member of SC's envelope, after mapping failures to steps."""
    resp = check(ctx, c.request(method, path, headers=_headers(ctx), **kw), f"{method} {path}",
                 permission_hint="give the API user a role that may run vulnerability analysis")
    body = json_of(ctx, resp, f"{method} {path}")
    if body.get("error_code") not in (0, None):
        raise fail(ctx, f"Security Center refused {method} {path} (error_code {body.get('error_code')})",
                   step="response", resp=resp)
    inner = body.get("response")
    if not isinstance(inner, dict):
        raise fail(ctx, f"{method} {path}: the answer has no response object", step="response")
    return inner


# scan result statuses (Scan Result API) -> ScanState.status; anything else is a scan still under way
_SC_STATES = {"completed": "completed", "partial": "completed", "error": "failed", "canceled": "canceled",
              "cancelled": "canceled", "stopped": "canceled", "queued": "queued", "preparing": "queued"}


def _number(value: str, what: str) -> str:
    """SC scan and scan result ids are numbers; anything else is the caller's mistake."""
    if not str(value).strip().isdigit():
        raise ValidationFailed(f"a Security Center {what} id is a number", fields=[FieldProblem("scan_id",
                                                                                               "must be digits")])
    return str(value).strip()


def _nessus_of(ctx: OperationContext, archive: bytes, result_id: str) -> bytes:
    """The ``.nessus`` file inside SC's scan result download (a zip of one file), its size bounded."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1 or members[0].file_size > DOWNLOAD_MAX_BYTES:
                raise fail(ctx, f"scan result {result_id}'s download is not one .nessus file within the size limit",
                           step="response")
            with zf.open(members[0]) as fh:
                data = fh.read(DOWNLOAD_MAX_BYTES + 1)  # the header's size is the archive's word: read no more
    except zipfile.BadZipFile:
        return archive  # SC answered the .nessus file itself
    if len(data) > DOWNLOAD_MAX_BYTES:
        raise fail(ctx, f"scan result {result_id}'s .nessus file is larger than the download limit", step="response")
    return data


class TenableSCConnector(Connector, ChecksPermissions, FetchesFindings, SyncsFindings, LaunchesScans,
                         ReportsScanStatus):
    """Security Center: version, license status and the analysis right; scan launch, status, download, sync."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """Cumulative then patched (status "fixed") vulnerabilities from ``POST /analysis``, paged by
        ``startOffset``/``endOffset`` and read as ``tenable_csv`` rows; with ``pull.since``, SC's documented
        day filters ``lastSeen``/``lastMitigated`` (``0:N`` days, rounded up) and an incomplete feed."""
        def post(c: OutboundClient, body: Any) -> dict[str, Any]:
            return _envelope(ctx, c, "POST", "/analysis", json=body, retry_unsafe=True)

        return _tenable_sc_pull.pull(ctx, pull, post)

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        """``POST /scan/{id}/launch``: the run is the answer's ``scanResult.id``."""
        sid = _number(scan_id, "scan")
        with ctx.client() as c:
            body = _envelope(ctx, c, "POST", vendor_path("/scan/{sid}/launch", sid=sid))
        result = text(dig(body, "scanResult", "id"))
        if not result:
            raise fail(ctx, f"the launch of scan {sid} answered no scanResult id", step="response")
        return ScanRef(scan_id=sid, run_id=result)

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        """``GET /scanResult/{id}?fields=id,status`` of the launched run."""
        rid = _number(scan.run_id or "", "scan result")
        with ctx.client() as c:
            body = _envelope(ctx, c, "GET", vendor_path("/scanResult/{rid}", rid=rid), params={"fields": "id,status"})
        vendor = str(body.get("status") or "unknown")
        return ScanState(scan_id=scan.scan_id, status=_SC_STATES.get(vendor.lower(), "running"),
                         detail=f"Security Center status: {vendor}")

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """``POST /scanResult/{id}/download`` (``downloadType`` v2): a zip holding the run's ``.nessus`` file."""
        rid = _number(scan.run_id or "", "scan result")
        with ctx.client() as c:
            resp = check(ctx, c.post(vendor_path("/scanResult/{rid}/download", rid=rid), headers=_headers(ctx),
                                     json={"downloadType": "v2"}, retry_unsafe=True, max_bytes=DOWNLOAD_MAX_BYTES),
                         "scan result download")
        return ReportArtifact(name=f"tenable_sc_result_{rid}.nessus", format="nessus",
                              content=_nessus_of(ctx, resp.content, rid))

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /system`` (version) then ``GET /status`` with the keys (license status, IP use)."""
        with ctx.client() as c:
            system = _envelope(ctx, c, "GET", "/system")
            status = _envelope(ctx, c, "GET", "/status")
        license_status = text(status.get("licenseStatus")) or "unknown"
        active, licensed = _int(status.get("activeIPs")), _int(status.get("licensedIPs"))
        warnings = []
        if license_status.lower() != "valid":
            warnings.append(f"the Security Center license status is {license_status}: renew it; SC may stop "
                            "scanning and updating plugins")
        if active is not None and licensed and active >= _IP_USE_WARN * licensed:
            warnings.append(f"{active} of {licensed} licensed IPs are in use")
        state = {"valid": "valid", "expired": "expired"}.get(license_status.lower(), "unknown")
        license_ = {"type": "ip", "status": state, "vendor_status": license_status, "active_ips": active,
                    "licensed_ips": licensed,
                    "plugin_subscription": text(status.get("PluginSubscriptionStatus"))}
        return Probe(product="Tenable Security Center", version=text(system.get("version")), license=license_,
                     warnings=warnings)

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """The user's role, and a one-row analysis query (the read PMAP needs)."""
        with ctx.client() as c:
            # ``role`` is not among the fields SC always returns (Current-User API page): ask for it
            user = _envelope(ctx, c, "GET", "/currentUser", params={"fields": "id,username,role"})
            resp = c.post("/analysis", headers=_headers(ctx), json=_ANALYSIS_PROBE, retry_unsafe=True)
            if resp.status != 403:
                check(ctx, resp, "POST /analysis")
        role = text(dig(user, "role", "name")) or "unknown role"
        excess = [role] if role.lower() in _EXCESS_ROLES else []
        analysis = ("vulnerability analysis", "reading cumulative vulnerabilities", resp.status != 403)
        return permission_report([analysis], excess, [f"the API user's role is {role}"])


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="tenable_sc",
        display_name="Tenable Security Center",
        category=Category.VM,
        connection_model=TenableSCConnection,
        credentials_model=TenableSCKeys,
        report_formats=("nessus", "tenable_csv"),
        implementation=TenableSCConnector(),
        docs_url="https://docs.tenable.com/security-center/api_best_practices/Content/APIKeyAuthorization.htm",
        notes="Export .nessus or CSV files from Security Center and import them, or launch a configured scan (its "
              "result is downloaded as .nessus); a findings sync reads the cumulative and patched vulnerability "
              "analysis as tenable_csv rows; SC has no signed webhooks.",
    ),
)
