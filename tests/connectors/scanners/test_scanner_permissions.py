"""Least-privilege reports of the scanner connectors against the sandbox's roles and scopes."""

from __future__ import annotations

import pytest

from pmap.connectors.base import Operation, PermissionState
from pmap.core.settings import Settings
from pmap_sandbox.server import SandboxServer

from .cases import VENDORS, catalog_entry, implementation, settings_for, unique
from .conftest import context, run_test

# (vendor, marker, report ok, rights flagged as excess)
CASES = [
    # Tenable VM exports need Administrator or a custom role: a Standard user cannot be judged from its role
    ("tenable_vm", "ok", False, set()),
    ("tenable_vm", "noperm", False, set()),
    ("tenable_vm", "admin", True, set()),
    ("nessus", "ok", True, set()),
    ("nessus", "noperm", False, set()),
    ("nessus", "admin", True, set()),  # Nessus Professional is single-user: nothing to narrow
    ("tenable_sc", "ok", True, set()),
    ("tenable_sc", "noperm", False, set()),
    ("tenable_sc", "admin", True, {"Security Manager"}),
    ("rapid7_insightvm", "ok", True, set()),
    ("rapid7_insightvm", "admin", True, {"Global Administrator"}),
    ("acunetix", "ok", True, set()),
    ("acunetix", "noperm", False, set()),
    ("acunetix", "admin", True, {"System Administrator (the root account)"}),
    ("sonarqube", "noperm", False, set()),  # ok (no global Administer): see the test below
    ("sonarqube", "admin", True, set()),  # a global webhook needs Administer System
    ("checkmarx_one", "ok", True, set()),
    ("checkmarx_one", "noperm", False, set()),
    ("checkmarx_one", "admin", True, {"ast-admin", "manage-users"}),
    ("veracode", "ok", True, set()),
    ("veracode", "noperm", False, set()),
    ("veracode", "admin", True, {"Administrator"}),
    ("github_code_scanning", "ok", True, set()),
    ("github_code_scanning", "noperm", False, set()),
    ("github_code_scanning", "admin", True, {"admin:org", "delete_repo", "repo", "workflow"}),
    # Snyk's webhook list proves View Outbound Webhooks only: Create Outbound Webhooks stays unknown
    ("snyk", "ok", False, set()),
    ("snyk", "noperm", False, set()),
    ("dependency_track", "ok", True, set()),
    ("dependency_track", "noperm", False, set()),
    ("dependency_track", "admin", True, {"ACCESS_MANAGEMENT", "SYSTEM_CONFIGURATION", "PORTFOLIO_MANAGEMENT",
                                         "VULNERABILITY_ANALYSIS"}),
    ("black_duck", "ok", True, set()),  # noperm: an empty (filtered) project list, see below
    ("runzero", "ok", True, set()),
    ("runzero", "noperm", False, set()),
]


def test_every_vendor_offering_check_permissions_has_cases() -> None:
    offering = {v for v in VENDORS if Operation.CHECK_PERMISSIONS in catalog_entry(v).operations}
    assert offering == {vendor for vendor, *_ in CASES}


@pytest.mark.parametrize(("vendor", "marker", "ok", "excess"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_permission_report(vendor: str, marker: str, ok: bool, excess: set[str], sandbox: SandboxServer,
                           dev_settings: Settings) -> None:
    ctx = context(dev_settings, vendor, *settings_for(vendor, sandbox.base_url, marker), purpose="permission_check")
    report = implementation(vendor).check_permissions(ctx)
    assert report.ok is ok
    assert set(report.excess) == excess
    states = {p.state for p in report.permissions}
    assert report.permissions
    assert (PermissionState.MISSING in states) is (not ok and marker == "noperm")
    assert (PermissionState.UNKNOWN in states) is (not ok and marker != "noperm")
    if excess:
        assert any("more rights than PMAP needs" in w for w in report.warnings)


def test_tenable_vm_standard_role_is_unknown_with_the_reason(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx = context(dev_settings, "tenable_vm", *settings_for("tenable_vm", sandbox.base_url), purpose="permission_check")
    report = implementation("tenable_vm").check_permissions(ctx)
    assert report.permissions[0].state is PermissionState.UNKNOWN
    assert any("cannot export vulnerabilities unless a custom role" in w for w in report.warnings)


def test_nessus_manager_administrators_are_excess(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("nessus", sandbox.base_url, "admin")
    credentials["access_key"] = unique("manager")
    report = implementation("nessus").check_permissions(
        context(dev_settings, "nessus", connection, credentials, purpose="permission_check"))
    assert report.ok and report.excess == ["System Administrator"]


def test_a_nessus_manager_administrator_is_excess_not_only_a_system_administrator() -> None:
    from pmap.connectors.vendors.tenable import ADMINISTRATOR, _nessus_report

    report = _nessus_report({"permissions": ADMINISTRATOR}, {"capabilities": {"multi_user": "full"}})
    assert report.ok and report.excess == ["Administrator"]


def test_insightvm_account_seeing_no_assets_is_unknown_with_the_reason(sandbox: SandboxServer,
                                                                        dev_settings: Settings) -> None:
    # GET /assets lists only what the user may see: an empty page is no proof of a missing right
    ctx = context(dev_settings, "rapid7_insightvm", *settings_for("rapid7_insightvm", sandbox.base_url, "noperm"),
                  purpose="permission_check")
    report = implementation("rapid7_insightvm").check_permissions(ctx)
    assert not report.ok and report.excess == []
    assert report.permissions[0].state is PermissionState.UNKNOWN
    assert any("sees no assets" in w for w in report.warnings)


def test_insightvm_global_administrator_comes_from_the_license_answer_not_info_superuser(
        sandbox: SandboxServer, dev_settings: Settings) -> None:
    # info.superuser is true on every sandbox answer (the console service runs as root): it must not make a
    # plain user a Global Administrator, nor hide the license from one
    plain = implementation("rapid7_insightvm").test_connection(
        context(dev_settings, "rapid7_insightvm", *settings_for("rapid7_insightvm", sandbox.base_url)))
    assert plain.license is None and not plain.warnings
    assert plain.message and "license not read" in plain.message
    admin = implementation("rapid7_insightvm").test_connection(
        context(dev_settings, "rapid7_insightvm", *settings_for("rapid7_insightvm", sandbox.base_url, "admin")))
    assert admin.license and admin.license["status"] == "valid"
    assert any("Global Administrator" in w for w in admin.warnings)


def test_sonarqube_global_webhook_needs_administer_system_a_project_one_does_not(sandbox: SandboxServer,
                                                                                   dev_settings: Settings) -> None:
    impl = implementation("sonarqube")
    report = impl.check_permissions(context(dev_settings, "sonarqube", *settings_for("sonarqube", sandbox.base_url),
                                            purpose="permission_check"))
    states = {p.name: p.state for p in report.permissions}
    assert states == {"Browse": PermissionState.GRANTED, "Administer System": PermissionState.MISSING}
    connection, credentials = settings_for("sonarqube", sandbox.base_url, project_key="shop")
    scoped = impl.check_permissions(context(dev_settings, "sonarqube", connection, credentials,
                                            purpose="permission_check"))
    assert scoped.ok and {p.name for p in scoped.permissions} == {"Browse", "Administer on project shop"}


def test_sonarqube_system_admin_is_excess_when_a_project_webhook_would_do(sandbox: SandboxServer,
                                                                          dev_settings: Settings) -> None:
    connection, credentials = settings_for("sonarqube", sandbox.base_url, "admin", project_key="shop")
    report = implementation("sonarqube").check_permissions(
        context(dev_settings, "sonarqube", connection, credentials, purpose="permission_check"))
    assert report.ok and report.excess == ["Administer System"]
    assert report.permissions[1].name == "Administer on project shop"


def test_runzero_account_keys_are_flagged(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("runzero", sandbox.base_url)
    credentials["api_key"] = "CT" + credentials["api_key"][2:]
    ctx = context(dev_settings, "runzero", connection, credentials, purpose="permission_check")
    report = implementation("runzero").check_permissions(ctx)
    assert report.ok and report.excess == ["account-wide API key (CT)"]
    probe = implementation("runzero").test_connection(ctx)
    assert any("account API key" in w for w in probe.warnings)


def test_runzero_export_tokens_are_tested_on_the_export(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("runzero", sandbox.base_url)
    credentials["api_key"] = "ET" + credentials["api_key"][2:]
    ctx = context(dev_settings, "runzero", connection, credentials)
    probe = implementation("runzero").test_connection(ctx)
    assert probe.message and "export token" in probe.message and not probe.warnings


def test_dependency_track_team_without_view_rights_is_warned_at_test(sandbox: SandboxServer,
                                                                     dev_settings: Settings) -> None:
    ctx = context(dev_settings, "dependency_track", *settings_for("dependency_track", sandbox.base_url, "noperm"))
    probe = implementation("dependency_track").test_connection(ctx)
    assert any("VIEW_PORTFOLIO, VIEW_VULNERABILITY" in w for w in probe.warnings)


def test_checkmarx_oauth_client_credentials_work_too(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, _ = settings_for("checkmarx_one", sandbox.base_url)
    credentials = {"client_id": "pmap-client", "client_secret": "cx-secret-000000000001"}
    ctx = context(dev_settings, "checkmarx_one", connection, credentials)
    assert implementation("checkmarx_one").test_connection(ctx).version == "3.21.4"


def test_semgrep_token_without_the_web_api_scope_fails_at_permission(sandbox: SandboxServer,
                                                                     dev_settings: Settings) -> None:
    # Semgrep answers an Agent (CI) token 404 on the Web API (KB "Web API error 404 and token scopes")
    connection, credentials = settings_for("semgrep", sandbox.base_url, "noperm")
    result = run_test(dev_settings, "semgrep", connection, credentials)
    assert result.failed_step == "permission"
    assert result.message and "HTTP 404" in result.message and "Web API scope" in result.message
    assert credentials["token"] not in result.message


def test_snyk_webhook_creation_right_is_not_claimed_from_the_list(sandbox: SandboxServer,
                                                                   dev_settings: Settings) -> None:
    ctx = context(dev_settings, "snyk", *settings_for("snyk", sandbox.base_url), purpose="permission_check")
    report = implementation("snyk").check_permissions(ctx)
    states = {p.name: p.state for p in report.permissions}
    assert states["View Outbound Webhooks"] is PermissionState.GRANTED
    assert states["Create Outbound Webhooks"] is PermissionState.UNKNOWN
    assert any("registering the webhook will tell" in w for w in report.warnings)


def test_black_duck_user_seeing_no_project_is_unknown_not_refused(sandbox: SandboxServer,
                                                                   dev_settings: Settings) -> None:
    ctx = context(dev_settings, "black_duck", *settings_for("black_duck", sandbox.base_url, "noperm"),
                  purpose="permission_check")
    report = implementation("black_duck").check_permissions(ctx)
    assert not report.ok and report.permissions[0].state is PermissionState.UNKNOWN
    assert any("sees no project" in w for w in report.warnings)
