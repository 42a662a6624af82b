"""Scanner operations against the sandbox: Nessus launch/status/export, Tenable VM and Qualys exports.

Fetched artifacts are parsed with the report format they name, so what a connector fetches is what
the importer reads.
"""

from __future__ import annotations

import io

import pytest

from pmap.connectors.base import OperationContext, ReportArtifact, ScanRef
from pmap.core.errors import ScanLaunchUnavailable, UpstreamError, ValidationFailed
from pmap.core.settings import Settings
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.registry import report_formats
from pmap_sandbox.server import SandboxServer

from .cases import implementation, settings_for, unique
from .conftest import context

NESSUS_SCAN = "5"  # the sandbox's one scan


def parsed(artifact: ReportArtifact) -> list[ParsedFinding]:
    """The artifact read by the format it names."""
    assert artifact.format is not None
    fmt = report_formats()[artifact.format]
    assert fmt.detect(artifact.content[:4096], artifact.name)
    return list(fmt.parse(io.BytesIO(artifact.content)))


def nessus_ctx(sandbox: SandboxServer, settings: Settings, access_key: str = "",
               marker: str = "ok") -> OperationContext:
    connection, credentials = settings_for("nessus", sandbox.base_url, marker)
    if access_key:
        credentials["access_key"] = access_key
    return context(settings, "nessus", connection, credentials, purpose="findings_pull", budget=10.0)


def test_nessus_export_flow_yields_a_nessus_file(sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation("nessus")
    artifact = impl.fetch_findings(nessus_ctx(sandbox, dev_settings), ScanRef(scan_id=NESSUS_SCAN))
    assert artifact.format == "nessus" and artifact.name.endswith(".nessus")
    findings = parsed(artifact)
    openssl = [f for f in findings if f.rule_id == "148125"]
    assert openssl and openssl[0].cve_ids == ["CVE-2021-3449", "CVE-2021-3450"]
    assert openssl[0].ip == "10.0.0.11" and openssl[0].port == 443


def test_nessus_export_of_an_unknown_scan_is_an_http_failure(sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation("nessus")
    with pytest.raises(UpstreamError) as err:
        impl.fetch_findings(nessus_ctx(sandbox, dev_settings), ScanRef(scan_id="999"))
    assert err.value.step == "http" and err.value.upstream_status == 404


def test_nessus_export_without_the_right_is_a_permission_failure(sandbox: SandboxServer,
                                                                 dev_settings: Settings) -> None:
    impl = implementation("nessus")
    with pytest.raises(UpstreamError) as err:
        impl.fetch_findings(nessus_ctx(sandbox, dev_settings, marker="noperm"), ScanRef(scan_id=NESSUS_SCAN))
    assert err.value.step == "permission"


def test_nessus_professional_cannot_launch(sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation("nessus")
    with pytest.raises(ScanLaunchUnavailable) as err:
        impl.launch_scan(nessus_ctx(sandbox, dev_settings), NESSUS_SCAN)
    assert err.value.step == "permission" and err.value.upstream_status == 412 and err.value.status == 422
    assert "read and export only" in err.value.message


def test_nessus_manager_launches_and_reports_status(sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation("nessus")
    ctx = nessus_ctx(sandbox, dev_settings, access_key=unique("manager"))
    ref = impl.launch_scan(ctx, NESSUS_SCAN)
    assert ref.scan_id == NESSUS_SCAN and ref.run_id and ref.run_id.startswith("sandbox-launch-")
    states = [impl.scan_status(ctx, ref) for _ in range(3)]
    assert [s.status for s in states] == ["running", "running", "completed"], "the launched scan runs, then completes"
    assert states[-1].detail == "Nessus status: completed"


def test_nessus_status_of_a_scan_the_account_cannot_see(sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation("nessus")
    with pytest.raises(UpstreamError) as err:
        impl.scan_status(nessus_ctx(sandbox, dev_settings, marker="managed"), ScanRef(scan_id=NESSUS_SCAN))
    assert err.value.step == "response" and "not visible" in err.value.message


def test_nessus_scan_ids_are_numbers(sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation("nessus")
    with pytest.raises(ValidationFailed):
        impl.launch_scan(nessus_ctx(sandbox, dev_settings), "../server/properties")


def test_tenable_vm_export_becomes_a_tenable_csv_with_open_and_fixed_findings(sandbox: SandboxServer,
                                                                           dev_settings: Settings) -> None:
    connection, credentials = settings_for("tenable_vm", sandbox.base_url)
    ctx = context(dev_settings, "tenable_vm", connection, credentials, purpose="findings_pull")
    artifact = implementation("tenable_vm").fetch_findings(ctx, ScanRef(scan_id="all"))
    assert artifact.format == "tenable_csv"
    findings = {f.rule_id: f for f in parsed(artifact)}
    assert set(findings) == {"148125", "104743"}
    opened, fixed = findings["148125"], findings["104743"]
    assert opened.status == "open" and fixed.status == "fixed"
    assert opened.cve_ids == ["CVE-2021-3449", "CVE-2021-3450"]
    assert opened.host == "web01.example.test" and opened.ip == "10.0.0.11" and opened.port == 443
    assert opened.cvss_score == 7.4 and opened.vendor_severity == "high"
    assert opened.first_seen is not None and opened.first_seen.isoformat().startswith("2024-01-02T03:04:05")


def test_tenable_vm_export_without_the_right_is_a_permission_failure(sandbox: SandboxServer,
                                                                    dev_settings: Settings) -> None:
    connection, credentials = settings_for("tenable_vm", sandbox.base_url, "noperm")
    ctx = context(dev_settings, "tenable_vm", connection, credentials, purpose="findings_pull")
    with pytest.raises(UpstreamError) as err:
        implementation("tenable_vm").fetch_findings(ctx, ScanRef(scan_id="all"))
    assert err.value.step == "permission" and "export privilege" in err.value.message


def test_qualys_detection_list_is_a_qualys_xml_file(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("qualys_vmdr", sandbox.base_url)
    ctx = context(dev_settings, "qualys_vmdr", connection, credentials, purpose="findings_pull")
    artifact = implementation("qualys_vmdr").fetch_findings(ctx, ScanRef(scan_id="all"))
    assert artifact.format == "qualys_xml"
    findings = parsed(artifact)
    assert [f.rule_id for f in findings] == ["38863"]
    assert findings[0].ip == "10.0.0.11" and findings[0].port == 443


def test_qualys_rate_limit_409_is_waited_out_on_findings_too(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("qualys_vmdr", sandbox.base_url, "ratelimit")
    ctx = context(dev_settings, "qualys_vmdr", connection, credentials, purpose="findings_pull")
    artifact = implementation("qualys_vmdr").fetch_findings(ctx, ScanRef(scan_id="all"))
    assert b"HOST_LIST_VM_DETECTION_OUTPUT" in artifact.content
