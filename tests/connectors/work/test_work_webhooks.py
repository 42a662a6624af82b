"""Installing PMAP's receiver on work trackers and CI/CD vendors, and their test deliveries, verified
with PMAP's own webhook schemes on a loopback receiver."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import SecretStr

from pmap.connectors.base import TicketRequest, WebhookRegistration
from pmap.core.errors import UpstreamError
from pmap.core.settings import Settings
from pmap.webhooks.schemes import SCHEMES, WebhookScheme
from pmap.webhooks.service import can_ping, can_register
from pmap_sandbox.server import SandboxServer

from .cases import VENDORS, catalog_entry, implementation, settings_for
from .conftest import Receiver, context
from .sandbox_ops import auth_headers

PINGABLE = ["azure_boards", "azure_pipelines", "github", "github_issues", "gitlab_ci", "gitlab_issues"]
JIRA = ["jira_cloud", "jira_data_center", "jira_service_management"]
#: where each vendor lists the hooks it holds (path under the base URL, and how to read the URLs)
LISTING = {
    "github": "/repos/acme/webapp/hooks", "github_issues": "/repos/acme/webapp/hooks",
    "gitlab_ci": "/projects/acme%2Fwebapp/hooks", "gitlab_issues": "/projects/acme%2Fwebapp/hooks",
    "azure_boards": "/_apis/hooks/subscriptions?api-version=7.1",
    "azure_pipelines": "/_apis/hooks/subscriptions?api-version=7.1",
    "jira_cloud": "/rest/webhooks/1.0/webhook", "jira_data_center": "/rest/webhooks/1.0/webhook",
    "jira_service_management": "/rest/webhooks/1.0/webhook",
}


def _scheme(vendor: str) -> WebhookScheme:
    key = catalog_entry(vendor).webhook_scheme
    assert key is not None
    return SCHEMES[key]


def _secret(vendor: str) -> str:
    return _scheme(vendor).generate_secret()


def _hook_urls(vendor: str, base_url: str, credentials: dict[str, str]) -> list[str]:
    body = httpx.get(base_url + LISTING[vendor], headers=auth_headers(vendor, credentials), timeout=10,
                     trust_env=False).raise_for_status().json()
    items = body["value"] if isinstance(body, dict) else body
    return [(i.get("config") or i.get("consumerInputs") or i)["url"] for i in items]


def _seed(vendor: str, dev_settings: Settings, connection: dict[str, str], credentials: dict[str, str]) -> None:
    """GitLab builds its test issue event from the project's first issue: make sure there is one."""
    if vendor == "gitlab_issues":
        implementation(vendor).create_ticket(context(dev_settings, vendor, connection, credentials),
                                                           TicketRequest(title="webhook test", description="d"))


def test_registration_and_ping_support_match_the_vendors() -> None:
    for vendor in VENDORS:
        ct = catalog_entry(vendor)
        assert can_register(ct) is (vendor not in ("servicenow", "jenkins")), vendor
        assert can_ping(ct) is (vendor in PINGABLE), vendor
        assert ct.webhook_scheme in SCHEMES


@pytest.mark.parametrize("vendor", PINGABLE)
def test_registered_hook_pings_with_a_delivery_pmap_verifies(vendor: str, sandbox: SandboxServer,
                                                             dev_settings: Settings, receiver: Receiver) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    impl = implementation(vendor)
    secret = _secret(vendor)
    _seed(vendor, dev_settings, connection, credentials)
    reg = impl.register_webhook(context(dev_settings, vendor, connection, credentials, purpose="webhook_registration"),
                                WebhookRegistration(url=receiver.url, secret=SecretStr(secret)))
    assert reg.hook_id and reg.signed and reg.ping_supported and reg.url == receiver.url
    impl.ping_webhook(context(dev_settings, vendor, connection, credentials), reg.hook_id)
    assert len(receiver.deliveries) == 1
    got = receiver.deliveries[0]
    scheme = _scheme(vendor)
    assert scheme.verify(got.headers, got.body, [secret], time.time()).ok
    assert not scheme.verify(got.headers, got.body, [_secret(vendor)], time.time()).ok


@pytest.mark.parametrize("vendor", [*PINGABLE, *JIRA])
def test_registering_at_a_new_address_replaces_the_hook_pmap_registered(vendor: str, sandbox: SandboxServer,
                                                                         dev_settings: Settings) -> None:
    # PMAP_PUBLIC_BASE_URL changed: the old hook must not keep delivering, with its secret, to the old address
    connection, credentials = settings_for(vendor, sandbox.base_url, "admin" if vendor in JIRA else "ok")
    impl = implementation(vendor)
    old_url, new_url = f"http://127.0.0.1:9/hooks/old-{vendor}", f"http://127.0.0.1:9/hooks/new-{vendor}"
    first = impl.register_webhook(context(dev_settings, vendor, connection, credentials),
                                  WebhookRegistration(url=old_url, secret=SecretStr(_secret(vendor))))
    impl.register_webhook(context(dev_settings, vendor, connection, credentials),
                          WebhookRegistration(url=new_url, secret=SecretStr(_secret(vendor)),
                                              previous_hook_id=first.hook_id))
    urls = _hook_urls(vendor, connection["base_url"], credentials)
    assert old_url not in urls and urls.count(new_url) == 1


@pytest.mark.parametrize("vendor", PINGABLE)
def test_registering_again_keeps_one_hook_with_the_new_secret(vendor: str, sandbox: SandboxServer,
                                                              dev_settings: Settings, receiver: Receiver) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    impl = implementation(vendor)
    old, new = _secret(vendor), _secret(vendor)
    _seed(vendor, dev_settings, connection, credentials)
    for secret in (old, new):
        reg = impl.register_webhook(context(dev_settings, vendor, connection, credentials),
                                    WebhookRegistration(url=receiver.url, secret=SecretStr(secret)))
    assert _hook_urls(vendor, connection["base_url"], credentials).count(receiver.url) == 1
    impl.ping_webhook(context(dev_settings, vendor, connection, credentials), reg.hook_id)
    got = receiver.deliveries[-1]
    scheme = _scheme(vendor)
    assert scheme.verify(got.headers, got.body, [new], time.time()).ok
    assert not scheme.verify(got.headers, got.body, [old], time.time()).ok


@pytest.mark.parametrize("vendor", ["gitlab_issues", "azure_boards"])
def test_a_receiver_the_vendor_cannot_reach_fails_the_ping_at_response(vendor: str, sandbox: SandboxServer,
                                                                     dev_settings: Settings, closed_port: int) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    impl = implementation(vendor)
    _seed(vendor, dev_settings, connection, credentials)
    reg = impl.register_webhook(context(dev_settings, vendor, connection, credentials),
                                WebhookRegistration(url=f"http://127.0.0.1:{closed_port}/hooks/x",
                                                    secret=SecretStr(_secret(vendor))))
    with pytest.raises(UpstreamError) as caught:
        impl.ping_webhook(context(dev_settings, vendor, connection, credentials), reg.hook_id)
    assert caught.value.step == "response"
    assert "could not deliver" in caught.value.message


@pytest.mark.parametrize("vendor", ["gitlab_ci", "azure_pipelines"])
def test_a_ping_the_receiver_refused_is_left_to_pmaps_delivery_log(vendor: str, sandbox: SandboxServer,
                                                                 dev_settings: Settings, receiver: Receiver) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    impl = implementation(vendor)
    reg = impl.register_webhook(context(dev_settings, vendor, connection, credentials),
                                WebhookRegistration(url=receiver.url, secret=SecretStr(_secret(vendor))))
    receiver.status = 401
    impl.ping_webhook(context(dev_settings, vendor, connection, credentials), reg.hook_id)  # no error: it arrived
    assert len(receiver.deliveries) == 1


@pytest.mark.parametrize("vendor", JIRA)
def test_jira_webhooks_need_an_administrator(vendor: str, sandbox: SandboxServer, dev_settings: Settings,
                                             receiver: Receiver) -> None:
    impl = implementation(vendor)
    connection, credentials = settings_for(vendor, sandbox.base_url)
    with pytest.raises(UpstreamError) as caught:
        impl.register_webhook(context(dev_settings, vendor, connection, credentials),
                              WebhookRegistration(url=receiver.url, secret=SecretStr(_secret(vendor))))
    assert caught.value.step == "permission" and "Administer Jira" in caught.value.message

    connection, credentials = settings_for(vendor, sandbox.base_url, "admin")
    for _ in range(2):
        reg = impl.register_webhook(context(dev_settings, vendor, connection, credentials),
                                    WebhookRegistration(url=receiver.url, secret=SecretStr(_secret(vendor))))
    assert reg.hook_id.isdigit() and reg.signed and not reg.ping_supported
    assert _hook_urls(vendor, connection["base_url"], credentials).count(receiver.url) == 1
