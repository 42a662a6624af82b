"""OAuth 2.0 client credentials on the work trackers (ServiceNow, Jira Service Management) over real HTTP:
the connection test says which kind authenticated, a ticket is created with a Bearer token, the token is
fetched once for operations within its lifetime and again after expiry, and a refused client fails at
step auth without the secret or the token in any message."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pmap.connectors.base import PermissionState, TicketRequest
from pmap.connectors.vendors import _oauth
from pmap.core import redaction
from pmap.core.errors import UpstreamError
from pmap.core.settings import Settings
from pmap_sandbox.server import SandboxServer
from pmap_sandbox.work._oauth import token_requests
from tests.conftest import VirtualClock

from .cases import implementation, settings_for, unique
from .conftest import context, run_test

OAUTH_VENDORS = ["servicenow", "jira_service_management"]
TICKET = TicketRequest(title="Outdated OpenSSL on web-01", description="Upgrade it.", severity="high")


def _oauth_case(vendor: str, sandbox: SandboxServer, marker: str = "ok") -> tuple[dict[str, Any], dict[str, str]]:
    connection, _basic = settings_for(vendor, sandbox.base_url)
    return connection, {"client_id": unique("client"), "client_secret": unique(marker)}


@pytest.fixture(autouse=True)
def _empty_token_cache() -> None:
    _oauth.CACHE.clear()


@pytest.mark.parametrize("vendor", OAUTH_VENDORS)
def test_connection_test_says_oauth_authenticated(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = _oauth_case(vendor, sandbox)
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.ok, result.message
    assert result.message is not None and _oauth.AUTHENTICATED_WITH_OAUTH in result.message


@pytest.mark.parametrize("vendor", OAUTH_VENDORS)
def test_basic_credentials_still_say_so(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.ok, result.message
    assert result.message is not None and "OAuth" not in result.message


@pytest.mark.parametrize("vendor", OAUTH_VENDORS)
def test_token_is_fetched_once_within_its_lifetime_and_again_after_expiry(
        vendor: str, sandbox: SandboxServer, dev_settings: Settings, virtual_clock: VirtualClock) -> None:
    connection, credentials = _oauth_case(vendor, sandbox)
    impl = implementation(vendor)
    before = token_requests(sandbox.app, vendor)
    assert run_test(dev_settings, vendor, connection, credentials).ok
    ref = impl.create_ticket(context(dev_settings, vendor, connection, credentials, purpose="ticket"), TICKET)
    assert ref.key
    assert token_requests(sandbox.app, vendor) == before + 1  # two operations, one token
    virtual_clock.sleep(3600)  # past the token's lifetime (PMAP's clock; the sandbox's token is still live)
    ref2 = impl.create_ticket(context(dev_settings, vendor, connection, credentials, purpose="ticket"), TICKET)
    assert ref2.key != ref.key
    assert token_requests(sandbox.app, vendor) == before + 2


@pytest.mark.parametrize("vendor", OAUTH_VENDORS)
def test_another_secret_for_the_same_client_gets_its_own_token(vendor: str, sandbox: SandboxServer,
                                                               dev_settings: Settings) -> None:
    connection, credentials = _oauth_case(vendor, sandbox)
    before = token_requests(sandbox.app, vendor)
    assert run_test(dev_settings, vendor, connection, credentials).ok
    rotated = {**credentials, "client_secret": unique("ok")}
    assert run_test(dev_settings, vendor, connection, rotated).ok
    assert token_requests(sandbox.app, vendor) == before + 2


@pytest.mark.parametrize("vendor", OAUTH_VENDORS)
def test_a_wrong_client_secret_fails_at_auth_without_leaking(vendor: str, sandbox: SandboxServer,
                                                             dev_settings: Settings,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    connection, credentials = _oauth_case(vendor, sandbox, marker="bad")
    with caplog.at_level(logging.DEBUG):
        result = run_test(dev_settings, vendor, connection, credentials)
    assert not result.ok and result.failed_step == "auth", result
    assert result.message is not None and "token request" in result.message
    everything = result.model_dump_json() + caplog.text
    assert credentials["client_secret"] not in everything
    assert len(_oauth.CACHE) == 0  # nothing cached for a refused client


@pytest.mark.parametrize("vendor", OAUTH_VENDORS)
def test_an_echoed_secret_is_masked(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = _oauth_case(vendor, sandbox, marker="echo")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.failed_step == "auth"
    assert credentials["client_secret"] not in result.model_dump_json()


@pytest.mark.parametrize("vendor", OAUTH_VENDORS)
def test_the_minted_token_appears_in_no_message(vendor: str, sandbox: SandboxServer, dev_settings: Settings,
                                                caplog: pytest.LogCaptureFixture) -> None:
    connection, credentials = _oauth_case(vendor, sandbox)
    ctx = context(dev_settings, vendor, connection, credentials, purpose="ticket")
    with caplog.at_level(logging.DEBUG):
        implementation(vendor).create_ticket(ctx, TICKET)
        with pytest.raises(UpstreamError) as err:
            implementation(vendor).sync_status(ctx, "SEC-999999" if vendor.startswith("jira") else "INC9999999")
    tokens = [s for s in ctx.secrets if s not in credentials.values()]
    assert tokens, "the minted token joins the operation's secrets"
    for token in tokens:
        assert token not in str(err.value) and token not in caplog.text
        assert token not in redaction.scrub(f"a log line carrying {token} alone")  # registered while cached


def test_servicenow_permissions_with_oauth_say_what_cannot_be_checked(sandbox: SandboxServer,
                                                                       dev_settings: Settings) -> None:
    connection, credentials = _oauth_case("servicenow", sandbox)
    report = implementation("servicenow").check_permissions(
        context(dev_settings, "servicenow", connection, credentials, purpose="permissions"))
    assert [p.state for p in report.permissions] == [PermissionState.UNKNOWN]
    assert any("OAuth Application User" in w for w in report.warnings)


def test_a_revoked_cached_token_is_dropped_and_the_next_operation_gets_a_new_one(
        sandbox: SandboxServer, dev_settings: Settings) -> None:
    from pmap_sandbox.work._oauth import OAuthTokens

    connection, credentials = _oauth_case("servicenow", sandbox)
    assert run_test(dev_settings, "servicenow", connection, credentials).ok
    store = sandbox.app.state.sandbox_store["servicenow"][OAuthTokens.__qualname__]
    store.tokens.clear()  # the instance revoked every token
    before = token_requests(sandbox.app, "servicenow")
    revoked = run_test(dev_settings, "servicenow", connection, credentials)
    assert revoked.failed_step == "auth" and len(_oauth.CACHE) == 0
    assert run_test(dev_settings, "servicenow", connection, credentials).ok
    assert token_requests(sandbox.app, "servicenow") == before + 1


def test_concurrent_operations_of_one_client_share_one_token_request(sandbox: SandboxServer,
                                                                     dev_settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    connection, credentials = _oauth_case("servicenow", sandbox)
    before = token_requests(sandbox.app, "servicenow")
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _i: run_test(dev_settings, "servicenow", connection, credentials), range(6)))
    assert all(r.ok for r in results)
    assert token_requests(sandbox.app, "servicenow") == before + 1
