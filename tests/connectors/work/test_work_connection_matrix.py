"""Every ITSM, ticketing and CI/CD vendor type against the sandbox: success, refused and echoed
credentials, network failures, egress refusal, rate limits, slowness and TLS, through the runner."""

from __future__ import annotations

import pytest

from pmap.core.settings import Settings
from pmap_sandbox.scenarios import RETRY_AFTER_SECONDS
from pmap_sandbox.server import SandboxServer
from tests.conftest import VirtualClock

from .cases import VENDORS, VERSIONS, basic_forms, settings_for
from .conftest import run_test

SLOW_BUDGET = 0.3  # seconds: the sandbox's slow answer takes 15 s, so any short budget is cut

PLAIN_HTTP = "plain http"
TLS_OFF = "TLS certificate verification is off"


def test_the_matrix_covers_every_work_vendor() -> None:
    assert sorted(["jira_cloud", "jira_data_center", "jira_service_management", "servicenow",
                              "github_issues", "github", "gitlab_issues", "gitlab_ci", "azure_boards",
                              "azure_pipelines", "jenkins"]) == VENDORS


@pytest.mark.parametrize("vendor", VENDORS)
def test_success_names_product_and_version_and_holds_no_secret(vendor: str, sandbox: SandboxServer,
                                                               dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.ok, result.message
    assert result.failed_step is None
    assert result.product
    assert result.version == VERSIONS[vendor]
    assert any(PLAIN_HTTP in w for w in result.warnings)
    assert "[REDACTED]" not in (result.message or "")  # the identity shown is not a credential value
    dumped = result.model_dump_json()
    for value in [*credentials.values(), *basic_forms(credentials)]:
        assert value not in dumped


@pytest.mark.parametrize("vendor", VENDORS)
def test_wrong_credentials_fail_at_auth(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "bad")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert not result.ok
    assert result.failed_step == "auth", result.message
    assert result.message and ("rejected the credentials" in result.message or "sign-in page" in result.message)


@pytest.mark.parametrize("vendor", VENDORS)
def test_echoed_credentials_appear_nowhere(vendor: str, sandbox: SandboxServer, dev_settings: Settings,
                                           pmap_logs: None, capfd: pytest.CaptureFixture[str]) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "echo")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.failed_step == "auth", result.message
    logs = capfd.readouterr()
    assert f"connection test of {vendor} failed at auth" in logs.err  # the failure was logged ...
    dumped = result.model_dump_json()
    for value in [*credentials.values(), *basic_forms(credentials)]:  # ... and nothing repeats a credential
        assert value not in dumped
        assert value not in logs.err and value not in logs.out


@pytest.mark.parametrize("vendor", VENDORS)
def test_unreachable_host_fails_at_connect(vendor: str, closed_port: int, dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, f"http://127.0.0.1:{closed_port}")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.failed_step == "connect", result.message


@pytest.mark.parametrize("vendor", VENDORS)
def test_metadata_address_is_refused_before_anything_is_sent(vendor: str, dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, "http://169.254.169.254")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.failed_step == "egress"
    assert result.message and "egress policy" in result.message and "169.254.169.254" in result.message


@pytest.mark.parametrize("vendor", VENDORS)
def test_rate_limit_is_waited_out(vendor: str, sandbox: SandboxServer, dev_settings: Settings,
                                  virtual_clock: VirtualClock) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "ratelimit")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.ok, result.message
    assert virtual_clock.waits[:1] == [RETRY_AFTER_SECONDS], virtual_clock.waits  # the vendor's own wait, once


@pytest.mark.parametrize("vendor", VENDORS)
def test_slow_vendor_times_out_within_the_budget(vendor: str, sandbox: SandboxServer) -> None:
    settings = Settings(env="development", database_url="sqlite://", connection_test_timeout=SLOW_BUDGET)
    # the per-call timeout as short as the budget: a longer one would be honoured (pmap.connectors.runner)
    connection, credentials = settings_for(vendor, sandbox.base_url, "slow", timeout_seconds=SLOW_BUDGET)
    result = run_test(settings, vendor, connection, credentials)
    assert result.failed_step == "timeout", result.message


@pytest.mark.parametrize("vendor", VENDORS)
def test_tls_is_verified_and_a_ca_bundle_makes_it_pass(vendor: str, tls_sandbox: SandboxServer,
                                                       dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, tls_sandbox.base_url)
    refused = run_test(dev_settings, vendor, connection, credentials)
    assert refused.failed_step == "tls", refused.message
    trusted = run_test(dev_settings, vendor, {**connection, "ca_bundle": tls_sandbox.ca_pem}, credentials)
    assert trusted.ok, trusted.message
    assert not any(PLAIN_HTTP in w or TLS_OFF in w for w in trusted.warnings)


@pytest.mark.parametrize("vendor", ["jira_cloud", "servicenow", "gitlab_ci", "azure_boards", "jenkins"])
def test_verification_off_passes_with_a_warning(vendor: str, tls_sandbox: SandboxServer,
                                                dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, tls_sandbox.base_url, verify_tls=False)
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.ok, result.message
    assert any(TLS_OFF in w for w in result.warnings)
