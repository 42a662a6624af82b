"""Tenable: Tenable Vulnerability Management (cloud) and Nessus.

Both authenticate with ``X-ApiKeys: accessKey=A; secretKey=S;``. Tenable VM findings come from the
vulnerability export (container-wide, not per scan); Nessus scans are exported as ``.nessus`` files.
Nessus Professional/Expert has no scan API (launch answers 412 "API is not available"), and a
scanner linked to a manager must be driven from that manager: the connection test warns of both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

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
from pmap.connectors.vendors import _nessus_pull, _tenable_export
from pmap.connectors.vendors._pull import prefetched
from pmap.connectors.vendors._support import (
    DOWNLOAD_MAX_BYTES,
    check,
    dig,
    expiry,
    fail,
    json_list,
    json_of,
    parse_when,
    permission_report,
    poll,
    text,
)
from pmap.core.errors import FieldProblem, ScanLaunchUnavailable, ValidationFailed
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding

# Tenable user permission levels (Tenable VM and Nessus share the scale)
BASIC, STANDARD, ADMINISTRATOR, SYSTEM_ADMINISTRATOR = 16, 32, 64, 128
_ROLE_NAMES = {0: "Read-Only", 16: "Basic", 24: "Scan Operator", 32: "Standard", 40: "Scan Manager",
               64: "Administrator", 128: "System Administrator"}
_EXPORT_STATES = ["OPEN", "REOPENED", "FIXED"]  # FIXED too, so PMAP can close what Tenable saw fixed
#: the report format synced findings follow: the export records are written in Tenable VM's CSV layout
#: (see _tenable_export), whose severity scale (Info/Low/Medium/High/Critical) is the export's own
SYNC_FORMAT = "tenable_csv"
_EXPORT_PERMISSION = "vulnerability exports need the Administrator role or a custom role with the export privilege"


class TenableKeys(Credentials):
    """API keys as Tenable names them (sent as ``X-ApiKeys: accessKey=...; secretKey=...;``)."""

    access_key: SecretStr = Field(description="API access key")
    secret_key: SecretStr = Field(description="API secret key")


class TenableVMConnection(ConnectionSettings):
    base_url: str = Field(default="https://cloud.tenable.com", description="Tenable VM API base URL")


class NessusConnection(ConnectionSettings):
    base_url: str = Field(description="Nessus scanner or manager, e.g. https://nessus.example.com:8834")
    scan_ids: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list, max_length=200,
                                description="Scans whose latest completed run a findings sync reads")


def api_keys(ctx: OperationContext) -> dict[str, str]:
    """The ``X-ApiKeys`` header of the operation's credentials."""
    return {"X-ApiKeys": f"accessKey={ctx.secret('access_key')}; secretKey={ctx.secret('secret_key')};"}


def _scan_number(scan_id: str) -> int:
    """A Nessus scan id is a number; anything else is the caller's mistake."""
    if not str(scan_id).strip().isdigit():
        raise ValidationFailed("a Nessus scan id is a number", fields=[FieldProblem("scan_id", "must be digits")])
    return int(scan_id)


def _role(level: Any) -> str:
    return _ROLE_NAMES.get(level, f"permission level {level}") if isinstance(level, int) else "an unknown role"


def _tvm_report(session: dict[str, Any]) -> PermissionReport:
    """Tenable VM: vulnerability exports need Administrator [64] or a custom role with the export privilege."""
    level = session.get("permissions")
    if isinstance(level, int) and level >= ADMINISTRATOR:
        granted: bool | None = True
    elif isinstance(level, int) and level <= BASIC:
        granted = False
    else:  # Standard/Scan Manager, or a custom role: only the export itself tells
        granted = None
    notes = [(f"the API user's role is {_role(level)}; the narrowest fit is a custom role with only the "
              "vulnerability-export and view privileges")]
    if granted is None:
        notes.append("built-in roles below Administrator cannot export vulnerabilities unless a custom role grants "
                     "the export privilege: run a findings pull to confirm")
    return permission_report([("vulnerability data export (Administrator [64] or a custom role with it)",
                               "exporting vulnerabilities", granted)], warnings=notes)


def _nessus_report(session: dict[str, Any], props: dict[str, Any]) -> PermissionReport:
    """Nessus: exporting needs Standard [32] or higher (with view rights on the scans); administrators are
    more than needed where the edition has several users (Professional/Expert have a single one)."""
    level = session.get("permissions")
    granted = level >= STANDARD if isinstance(level, int) else None
    multi_user = (dig(props, "license", "features", "users") is True
                  or dig(props, "capabilities", "multi_user") == "full")
    excess = [_role(level)] if multi_user and isinstance(level, int) and level >= ADMINISTRATOR else []
    notes = [] if multi_user else ["single-user edition: the account's role cannot be narrowed"]
    if granted is None:
        notes.append("the user's role could not be read")
    return permission_report([(f"Standard [{STANDARD}] role or higher", "exporting scan results", granted)],
                             excess, notes)


def _export_chunks(ctx: OperationContext, c: OutboundClient, filters: dict[str, Any]) -> Iterator[list[Any]]:
    """The vulnerability export's records, one chunk at a time: start the export, poll its status until
    FINISHED (backoff on the operation's clock), then download each chunk of ``chunks_available``."""
    started = check(ctx, c.post("/vulns/export", headers=api_keys(ctx), retry_unsafe=True,
                                json={"num_assets": 500, "filters": filters}),
                    "POST /vulns/export", permission_hint=_EXPORT_PERMISSION)
    export_id = text(json_of(ctx, started, "vulns export").get("export_uuid"))
    if not export_id:
        raise fail(ctx, "the vulnerability export started without an export_uuid", step="response")

    def ready() -> list[int] | None:
        resp = check(ctx, c.get(vendor_path("/vulns/export/{export_id}/status", export_id=export_id),
                                headers=api_keys(ctx)), "export status")
        body = json_of(ctx, resp, "export status")
        status = str(body.get("status", "")).upper()
        if status in {"ERROR", "CANCELLED"}:
            raise fail(ctx, f"the vulnerability export ended with status {status}", step="response")
        if status != "FINISHED":
            return None
        return [int(n) for n in body.get("chunks_available") or [] if isinstance(n, int)]

    for chunk in poll(ctx, ready, what="the Tenable VM vulnerability export"):
        resp = check(ctx, c.get(vendor_path("/vulns/export/{export_id}/chunks/{chunk}", export_id=export_id,
                                            chunk=chunk), headers=api_keys(ctx), max_bytes=DOWNLOAD_MAX_BYTES),
                     f"export chunk {chunk}")
        yield json_list(ctx, resp, f"export chunk {chunk}")


def _synced(ctx: OperationContext, filters: dict[str, Any]) -> Iterator[ParsedFinding]:
    """Findings of the export, parsed chunk by chunk as the tenable_csv format reads them (so a sync and an
    uploaded Tenable VM CSV name a finding alike); state FIXED becomes status "fixed"."""
    with ctx.client() as c:
        # the next chunk downloads while this one goes through the pipeline (two chunks held at most)
        for records in prefetched(_export_chunks(ctx, c, filters), name="pmap-tenable-export"):
            yield from _tenable_export.findings(records)


# Tenable VM latest-status values -> ScanState.status (anything else is a scan still under way)
_TVM_STATES = {
    "completed": "completed", "imported": "completed", "canceled": "canceled", "cancelled": "canceled",
    "stopped": "canceled", "aborted": "failed", "pending": "queued", "initializing": "queued", "empty": "queued",
}


def _tvm_scan_id(scan_id: str) -> str:
    """A Tenable VM scan id is a number or a schedule UUID; anything else is the caller's mistake."""
    value = str(scan_id).strip()
    if not (value.isdigit() or (len(value) <= 64 and value.replace("-", "").isalnum())):
        raise ValidationFailed("a Tenable VM scan id is a number or a schedule UUID",
                               fields=[FieldProblem("scan_id", "must be digits or a UUID")])
    return value


class TenableVMConnector(Connector, ChecksPermissions, FetchesFindings, SyncsFindings, LaunchesScans,
                         ReportsScanStatus):
    """Tenable VM: session and container properties; findings through the vulnerability export; scans."""

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        """``POST /scans/{scan_id}/launch``: the run's ``scan_uuid``."""
        sid = _tvm_scan_id(scan_id)
        with ctx.client() as c:
            resp = check(ctx, c.post(vendor_path("/scans/{sid}/launch", sid=sid), headers=api_keys(ctx)),
                         f"launching scan {sid}", permission_hint="the scan needs the Can Execute permission")
            body = json_of(ctx, resp, "scan launch")
        return ScanRef(scan_id=sid, run_id=text(body.get("scan_uuid")))

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        """``GET /scans/{scan_id}/latest-status`` (what Tenable recommends for polling)."""
        sid = _tvm_scan_id(scan.scan_id)
        with ctx.client() as c:
            body = json_of(ctx, check(ctx, c.get(vendor_path("/scans/{sid}/latest-status", sid=sid),
                                                 headers=api_keys(ctx)), "scan status"), "scan status")
        vendor = str(body.get("status") or "unknown").lower()
        return ScanState(scan_id=sid, status=_TVM_STATES.get(vendor, "running"), detail=f"Tenable VM status: {vendor}")

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /session`` proves the keys; ``GET /server/properties`` gives version and license."""
        with ctx.client() as c:
            session = json_of(ctx, check(ctx, c.get("/session", headers=api_keys(ctx)), "GET /session"), "session")
            props = json_of(ctx, check(ctx, c.get("/server/properties", headers=api_keys(ctx)),
                                       "GET /server/properties"), "server properties")
        expires = parse_when(dig(props, "license", "expiration_date") or props.get("expiration"))
        license_, warnings = expiry(expires, what="Tenable VM license", kind="vm",
                                    extra={"evaluation": dig(props, "license", "evaluation")})
        who = f"{text(session.get('username')) or 'the API user'} ({_role(session.get('permissions'))})"
        return Probe(product="Tenable Vulnerability Management", version=text(props.get("server_version")),
                     license=license_, warnings=warnings, message=f"authenticated as {who}")

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """The user's role against what vulnerability exports need (Administrator, or a custom role)."""
        with ctx.client() as c:
            session = json_of(ctx, check(ctx, c.get("/session", headers=api_keys(ctx)), "GET /session"), "session")
        return _tvm_report(session)

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """A launched scan (``scan.run_id`` set): its latest results exported as a ``.nessus`` file. Otherwise
        the container's open, reopened and fixed vulnerabilities as a ``tenable_csv`` file (container-wide:
        ``scan.scan_id`` only names the artifact)."""
        if scan.run_id:
            sid = _tvm_scan_id(scan.scan_id)
            return _export_scan(ctx, sid, f"Tenable VM scan {sid}", f"tenable_vm_scan_{sid}.nessus")
        # the operation's contract is one report file, so its chunks are gathered; a sync streams them
        records: list[Any] = []
        with ctx.client() as c:
            for chunk in _export_chunks(ctx, c, {"state": _EXPORT_STATES}):
                records.extend(chunk)
        return ReportArtifact(name="tenable_vm_vulns.csv", format=SYNC_FORMAT,
                              content=_tenable_export.to_csv(records))

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The container's open, reopened and fixed vulnerabilities from the export, streamed chunk by chunk;
        with ``pull.since``, only those seen or changed in any state since (Tenable's ``filters.since``)."""
        filters: dict[str, Any] = {"state": _EXPORT_STATES}
        if pull.since is not None:
            # unix seconds, rounded down: a second seen twice is re-read (an update), never missed
            filters["since"] = int(pull.since.timestamp())
        return FindingsFeed(format=SYNC_FORMAT, findings=_synced(ctx, filters), complete=pull.since is None)


# Nessus scan statuses -> ScanState.status
_NESSUS_STATES = {
    "completed": "completed", "imported": "completed", "canceled": "canceled", "stopped": "canceled",
    "aborted": "failed", "pending": "queued", "initializing": "queued", "empty": "queued",
}


class NessusConnector(Connector, ChecksPermissions, FetchesFindings, SyncsFindings, LaunchesScans,
                      ReportsScanStatus):
    """Nessus Professional/Expert/Manager: properties, scan launch (Manager), status, export and sync."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The latest completed run of each configured scan (``scan_ids``), exported as ``.nessus`` and read
        scan by scan; complete only when every scan had one. Nessus keeps no fixed state, and its only change
        time is a run's end: with ``pull.since``, scans whose latest run ended before it are skipped."""
        return _nessus_pull.pull(ctx, pull, list(ctx.connection.scan_ids), lambda: api_keys(ctx))

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``GET /session`` proves the keys; ``GET /server/properties`` gives edition, version, license."""
        with ctx.client() as c:
            session = json_of(ctx, check(ctx, c.get("/session", headers=api_keys(ctx)), "GET /session"), "session")
            props = json_of(ctx, check(ctx, c.get("/server/properties", headers=api_keys(ctx)),
                                       "GET /server/properties"), "server properties")
        raw = props.get("license")
        lic: dict[str, Any] = raw if isinstance(raw, dict) else {}
        scan_api = dig(lic, "features", "scan_api")
        license_, warnings = expiry(parse_when(lic.get("expiration_date")), what="Nessus license",
                                    kind=text(lic.get("type")), extra={"scan_api": scan_api})
        product = text(lic.get("name")) or text(props.get("nessus_type")) or "Nessus"
        if props.get("managed") is True or text(props.get("nessus_type")) == "Nessus Scanner":
            warnings.insert(0, "this Nessus scanner is managed (linked to Tenable VM, Security Center or Nessus "
                               "Manager): scans must be driven from its manager, and findings pulled from there")
        elif scan_api is False:
            warnings.insert(0, f"{product} has no scan API: read and export only (PMAP can read and export scan "
                               "results; launching scans needs Nessus Manager or Tenable VM)")
        who = text(session.get("username")) or "the API user"
        return Probe(product=product, version=text(props.get("server_version")), license=license_,
                     warnings=warnings, message=f"authenticated as {who} ({_role(session.get('permissions'))})")

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """The user's role: Standard or higher exports scans; administrators are excess on multi-user editions."""
        with ctx.client() as c:
            session = json_of(ctx, check(ctx, c.get("/session", headers=api_keys(ctx)), "GET /session"), "session")
            props = json_of(ctx, check(ctx, c.get("/server/properties", headers=api_keys(ctx)),
                                       "GET /server/properties"), "server properties")
        return _nessus_report(session, props)

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        """Launch a configured scan (Nessus Manager only: other editions answer 412)."""
        sid = _scan_number(scan_id)
        with ctx.client() as c:
            resp = c.post(f"/scans/{sid}/launch", headers=api_keys(ctx))
            if resp.status == 412:  # Nessus's own answer where the edition's license has no scan API
                refused = fail(ctx, "this Nessus edition has no scan API (Nessus Professional/Expert): read and "
                                    "export only; launch the scan in Nessus itself or from its manager",
                               step="permission", resp=resp)
                raise ScanLaunchUnavailable(refused.message, step="permission", upstream_status=412)
            body = json_of(ctx, check(ctx, resp, f"launching scan {scan_id}"), "scan launch")
        return ScanRef(scan_id=str(sid), run_id=text(body.get("scan_uuid")))

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        """The scan's status from the scan list (the list is what every edition serves)."""
        with ctx.client() as c:
            body = json_of(ctx, check(ctx, c.get("/scans", headers=api_keys(ctx)), "GET /scans"), "scan list")
        for item in body.get("scans") or []:
            if isinstance(item, dict) and str(item.get("id")) == str(scan.scan_id):
                vendor = str(item.get("status") or "unknown").lower()
                return ScanState(scan_id=scan.scan_id, status=_NESSUS_STATES.get(vendor, "running"),
                                 detail=f"Nessus status: {vendor}")
        raise fail(ctx, f"scan {scan.scan_id} is not visible to this account (wrong id, or a managed scanner whose "
                        "scans live on its manager)", step="response")

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact:
        """Export the scan as a ``.nessus`` file: request, poll until ready, download."""
        sid = _scan_number(scan.scan_id)
        return _export_scan(ctx, str(sid), f"Nessus scan {sid}", f"nessus_scan_{sid}.nessus")


def _export_scan(ctx: OperationContext, sid: str, what: str, name: str) -> ReportArtifact:
    """Export a scan's latest results as a ``.nessus`` file (Nessus and Tenable VM share the flow): request
    the export, poll its status until ready (backoff on the operation's clock), download."""
    with ctx.client() as c:
        started = check(ctx, c.post(vendor_path("/scans/{sid}/export", sid=sid), headers=api_keys(ctx),
                                    json={"format": "nessus"}, retry_unsafe=True), f"exporting {what}")
        file_id = text(json_of(ctx, started, "scan export").get("file"))
        if not file_id:
            raise fail(ctx, "the scan export started without a file id", step="response")

        def ready() -> bool | None:
            resp = check(ctx, c.get(vendor_path("/scans/{sid}/export/{file_id}/status", sid=sid, file_id=file_id),
                                    headers=api_keys(ctx)),
                         "export status")
            status = str(json_of(ctx, resp, "export status").get("status", "")).lower()
            if status == "error":
                raise fail(ctx, f"the vendor could not export {what}", step="response")
            return True if status == "ready" else None

        poll(ctx, ready, what=f"the export of {what}")
        resp = check(ctx, c.get(vendor_path("/scans/{sid}/export/{file_id}/download", sid=sid, file_id=file_id),
                                headers=api_keys(ctx),
                                max_bytes=DOWNLOAD_MAX_BYTES), "export download")
    return ReportArtifact(name=name, format="nessus", content=resp.content)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="tenable_vm",
        display_name="Tenable Vulnerability Management",
        category=Category.VM,
        connection_model=TenableVMConnection,
        credentials_model=TenableKeys,
        default_base_url="https://cloud.tenable.com",
        report_formats=("nessus", "tenable_csv"),
        implementation=TenableVMConnector(),
        docs_url="https://developer.tenable.com/docs/authorization",
        notes="Findings come from the container-wide vulnerability export (open, reopened and fixed), "
              "delivered as a tenable_csv file; Tenable sends no signed webhooks, so PMAP polls.",
    ),
    ConnectorType(
        vendor="nessus",
        display_name="Nessus",
        category=Category.VM,
        connection_model=NessusConnection,
        credentials_model=TenableKeys,
        report_formats=("nessus", "tenable_csv"),
        implementation=NessusConnector(),
        docs_url="https://docs.tenable.com/nessus/",
        notes="Nessus Professional/Expert read and export only; scans of a managed scanner belong to its manager. "
              "A findings sync reads the latest completed run of each scan in scan_ids.",
    ),
)
