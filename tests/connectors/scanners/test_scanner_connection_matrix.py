"""Every scanner vendor type against the sandbox: success, refused and echoed credentials, network
failures, egress refusal, rate limits, slowness and TLS, through the connection-test runner."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import threading

import pytest

from pmap.connectors.base import OperationContext, Probe, secret_field_names
from pmap.connectors.runner import operation_context, run_connection_test
from pmap.core.errors import VendorRefused
from pmap.core.settings import Settings
from pmap_sandbox.scenarios import RETRY_AFTER_SECONDS
from pmap_sandbox.server import SandboxServer
from tests.conftest import VirtualClock

from .cases import VENDORS, VERSIONS, catalog_entry, settings_for
from .conftest import run_test

SLOW_BUDGET = 0.3  # seconds: the sandbox's slow answer takes 15 s, so any short budget is cut

PLAIN_HTTP = "plain http"
TLS_OFF = "TLS certificate verification is off"


def test_the_matrix_covers_every_scanner_vendor_of_the_sandbox() -> None:
    assert len(VENDORS) == 21
    assert {"tenable_vm", "nessus", "veracode", "runzero", "nowsecure"} <= set(VENDORS)


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
    dumped = result.model_dump_json()
    for value in credentials.values():
        assert value not in dumped


@pytest.mark.parametrize("vendor", VENDORS)
def test_wrong_credentials_fail_at_auth(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "bad")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert not result.ok
    assert result.failed_step == "auth", result.message
    assert result.message and "rejected the credentials" in result.message


@pytest.mark.parametrize("vendor", VENDORS)
def test_echoed_credentials_appear_nowhere(vendor: str, sandbox: SandboxServer, dev_settings: Settings,
                                           pmap_logs: None, capfd: pytest.CaptureFixture[str]) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "echo")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.failed_step == "auth"
    logs = capfd.readouterr()
    assert f"connection test of {vendor} failed at auth" in logs.err  # the failure was logged ...
    for value in credentials.values():  # ... and nothing anywhere repeats a credential
        assert value not in result.model_dump_json()
        assert value not in logs.err and value not in logs.out


@pytest.mark.parametrize("fails", [True, False], ids=["failure", "success"])
def test_a_connector_message_naming_a_credential_is_scrubbed_by_the_runner(fails: bool,
                                                                           dev_settings: Settings) -> None:
    class Echoing:  # a connector that builds its own text from what the vendor said
        def test_connection(self, ctx: OperationContext) -> Probe:
            said = f"vendor said key {ctx.secret('secret_key')}"
            if fails:
                raise VendorRefused(said, step="auth")
            return Probe(product="p", warnings=[said], message=said)

    connection, credentials = settings_for("nessus", "http://127.0.0.1:9")
    ct = dataclasses.replace(catalog_entry("nessus"), implementation=Echoing())
    result = run_connection_test(operation_context(dev_settings, ct, connection, credentials,
                                                   purpose="connection_test"), ct)
    assert result.ok is not fails and "[REDACTED]" in (result.message or "")
    assert credentials["secret_key"] not in result.model_dump_json()


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
    # cut at the budget: the call in flight timed out within it, or (a loaded machine spent the budget on an
    # earlier step, such as a token request) the next call was never made
    waited = re.search(r"timed out after (\d+(?:\.\d+)?) s", result.message or "")
    spent = re.search(r"The (\d+(?:\.\d+)?) s time budget of this operation is spent", result.message or "")
    cut = waited or spent
    assert cut is not None, result.message
    assert float(cut.group(1)) <= settings.connection_test_timeout, result.message


@pytest.mark.parametrize("vendor", VENDORS)
def test_tls_is_verified_and_a_ca_bundle_makes_it_pass(vendor: str, tls_sandbox: SandboxServer,
                                                       dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, tls_sandbox.base_url)
    refused = run_test(dev_settings, vendor, connection, credentials)
    assert refused.failed_step == "tls", refused.message
    trusted = run_test(dev_settings, vendor, {**connection, "ca_bundle": tls_sandbox.ca_pem}, credentials)
    assert trusted.ok, trusted.message
    assert not any(PLAIN_HTTP in w or TLS_OFF in w for w in trusted.warnings)


@pytest.mark.parametrize("vendor", ["nessus", "sonarqube", "snyk", "veracode", "checkmarx_one"])
def test_verification_off_passes_with_a_warning(vendor: str, tls_sandbox: SandboxServer,
                                                dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, tls_sandbox.base_url, verify_tls=False)
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.ok, result.message
    assert any(TLS_OFF in w for w in result.warnings)
    connection, credentials = settings_for(vendor, tls_sandbox.base_url, "bad", verify_tls=False)
    failed = run_test(dev_settings, vendor, connection, credentials)
    assert failed.failed_step == "auth" and any(TLS_OFF in w for w in failed.warnings)  # flagged on failure too


SPECIAL = "&<>\"'%/+= #?:@~"  # characters an echo may escape as XML, HTML, JSON or URL text


@pytest.mark.parametrize("vendor", [v for v in VENDORS if v not in ("veracode", "runzero")])  # fixed key formats
def test_echoed_credentials_with_special_characters_appear_nowhere(vendor: str, sandbox: SandboxServer,
                                                                   dev_settings: Settings, pmap_logs: None,
                                                                   capfd: pytest.CaptureFixture[str]) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "echo")
    secrets = set(secret_field_names(catalog_entry(vendor).credentials_model))
    credentials = {k: v + SPECIAL if k in secrets else v for k, v in credentials.items()}
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.failed_step == "auth", result.message
    logs = capfd.readouterr()
    for name in secrets & set(credentials):
        marker = credentials[name][: -len(SPECIAL)]  # the unique part: no escaped form of it may remain
        assert marker not in result.model_dump_json() and marker not in logs.err and marker not in logs.out


def test_zap_closing_the_connection_on_a_wrong_key_is_explained(dev_settings: Settings) -> None:
    # ZAP's default for a wrong or missing API key: read the request, close without an answer
    # (API.java "fail silently"; zaproxy/zaproxy#8300)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(5)

    def silent() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.recv(65536)

    thread = threading.Thread(target=silent, daemon=True)
    thread.start()
    try:
        connection, credentials = settings_for("zap", f"http://127.0.0.1:{server.getsockname()[1]}")
        result = run_test(dev_settings, "zap", connection, credentials)
    finally:
        server.close()
    assert result.failed_step == "http", result.message
    assert result.message and "API key is wrong or missing" in result.message
    assert credentials["api_key"] not in result.model_dump_json()
