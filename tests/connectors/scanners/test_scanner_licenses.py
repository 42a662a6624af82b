"""License and expiry diagnostics, and Nessus edition warnings, as connection-test results show them."""

from __future__ import annotations

import pytest

from pmap.core.settings import Settings
from pmap_sandbox.server import SandboxServer

from .cases import settings_for, unique
from .conftest import run_test

# vendor -> wording of its expiry warning (the vendor's own license or credential)
LICENSED = {
    "tenable_vm": "Tenable VM license",
    "nessus": "Nessus license",
    "acunetix": "Acunetix license",
    "invicti": "Invicti subscription",
    "sonarqube": "SonarQube license",  # readable with an admin token; the sandbox grants it with the marker
    "rapid7_insightvm": "InsightVM license",  # idem: Global Administrator
}


@pytest.mark.parametrize("vendor", sorted(LICENSED))
def test_an_expiring_license_is_a_warning_with_the_days_left(vendor: str, sandbox: SandboxServer,
                                                            dev_settings: Settings) -> None:
    result = run_test(dev_settings, vendor, *settings_for(vendor, sandbox.base_url, "expiring"))
    assert result.ok, result.message
    assert result.license and result.license["status"] == "expiring"
    assert result.license["days_left"] == 10
    assert any(f"the {LICENSED[vendor]} expires on" in w and "in 10 days" in w for w in result.warnings)


@pytest.mark.parametrize("vendor", sorted(LICENSED))
def test_an_expired_license_passes_with_a_warning(vendor: str, sandbox: SandboxServer,
                                                  dev_settings: Settings) -> None:
    result = run_test(dev_settings, vendor, *settings_for(vendor, sandbox.base_url, "expired"))
    assert result.ok, result.message  # the vendor still answers the API: warn, do not fail
    assert result.license and result.license["status"] == "expired"
    assert any(f"the {LICENSED[vendor]} expired" in w for w in result.warnings)


@pytest.mark.parametrize("vendor", sorted(LICENSED))
def test_a_valid_license_has_no_expiry_warning(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    result = run_test(dev_settings, vendor, *settings_for(vendor, sandbox.base_url, "admin"))
    assert result.ok and result.license
    assert result.license["status"] == "valid"
    assert result.license["days_left"] > 365
    assert not any("expire" in w for w in result.warnings)


def test_security_center_reports_an_expired_license_status(sandbox: SandboxServer, dev_settings: Settings) -> None:
    result = run_test(dev_settings, "tenable_sc", *settings_for("tenable_sc", sandbox.base_url, "expired"))
    assert result.ok and result.license
    assert result.license["status"] == "expired"
    assert any("license status is Expired" in w for w in result.warnings)


def test_expiring_veracode_credentials_warn_and_expired_ones_fail_at_auth(sandbox: SandboxServer,
                                                                         dev_settings: Settings) -> None:
    soon = run_test(dev_settings, "veracode", *settings_for("veracode", sandbox.base_url, "expiring"))
    assert soon.ok and soon.license and soon.license["type"] == "api_credentials"
    assert any("the Veracode API credential expires on" in w for w in soon.warnings)
    gone = run_test(dev_settings, "veracode", *settings_for("veracode", sandbox.base_url, "expired"))
    assert gone.failed_step == "auth"
    assert gone.message and "API credentials expired" in gone.message


def test_expiring_github_token_is_a_warning(sandbox: SandboxServer, dev_settings: Settings) -> None:
    result = run_test(dev_settings, "github_code_scanning",
                      *settings_for("github_code_scanning", sandbox.base_url, "expiring"))
    assert result.ok and result.license and result.license["type"] == "token"
    assert any("GitHub token expires" in w for w in result.warnings)


def test_nessus_professional_is_read_and_export_only(sandbox: SandboxServer, dev_settings: Settings) -> None:
    result = run_test(dev_settings, "nessus", *settings_for("nessus", sandbox.base_url))
    assert result.ok and result.product == "Nessus Professional"
    assert result.license and result.license["scan_api"] is False
    assert any("read and export only" in w for w in result.warnings)
    assert not any("managed" in w for w in result.warnings)


def test_a_managed_nessus_scanner_warns_that_its_manager_drives_scans(sandbox: SandboxServer,
                                                                     dev_settings: Settings) -> None:
    result = run_test(dev_settings, "nessus", *settings_for("nessus", sandbox.base_url, "managed"))
    assert result.ok
    assert any("scans must be driven from its manager" in w for w in result.warnings)
    assert not any("read and export only" in w for w in result.warnings)


def test_nessus_manager_has_the_scan_api_and_no_edition_warning(sandbox: SandboxServer,
                                                                dev_settings: Settings) -> None:
    connection, _ = settings_for("nessus", sandbox.base_url)
    credentials = {"access_key": unique("manager"), "secret_key": unique("s")}
    result = run_test(dev_settings, "nessus", connection, credentials)
    assert result.ok and result.product == "Nessus Manager"
    assert result.license and result.license["scan_api"] is True
    assert not any("read and export only" in w or "manager" in w for w in result.warnings)
