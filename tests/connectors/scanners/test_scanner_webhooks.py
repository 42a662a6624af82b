"""Webhook installation on scanners that send them (SonarQube, GitHub code scanning, Snyk), and the
test deliveries PMAP asks for, verified with PMAP's own webhook schemes."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import SecretStr

from pmap.connectors.base import Operation, OperationContext, WebhookRegistration
from pmap.core.errors import UpstreamError, ValidationFailed
from pmap.core.settings import Settings
from pmap.webhooks.schemes import SCHEMES
from pmap_sandbox.server import SandboxServer

from .cases import VENDORS, catalog_entry, implementation, settings_for
from .conftest import Receiver, context

SECRET = "pmap-webhook-secret-0123456789abcdef"


def _ctx(vendor: str, sandbox: SandboxServer, settings: Settings, marker: str = "ok") -> OperationContext:
    return context(settings, vendor, *settings_for(vendor, sandbox.base_url, marker), purpose="webhook_registration")


def _verified(vendor: str, receiver: Receiver, count: int) -> list[str]:
    """The event headers of ``count`` deliveries, each verified with the vendor's scheme."""
    scheme = SCHEMES[catalog_entry(vendor).webhook_scheme or ""]
    arrived = receiver.wait_for(count)
    assert len(arrived) >= count
    for delivery in arrived:
        verdict = scheme.verify(delivery.headers, delivery.body, [SECRET], time.time())
        assert verdict.ok, verdict.reason
        assert not scheme.verify(delivery.headers, delivery.body, ["another-secret-0123456789"], time.time()).ok
    return [d.headers.get("x-github-event", "") for d in arrived]


def test_the_vendors_registering_webhooks_are_these_three() -> None:
    registering = {v for v in VENDORS if Operation.REGISTER_WEBHOOK in catalog_entry(v).operations}
    assert registering == {"sonarqube", "github_code_scanning", "snyk"}
    for vendor in registering:
        assert catalog_entry(vendor).webhook_scheme in SCHEMES


def test_sonarqube_webhook_is_created_with_its_secret(sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation("sonarqube")
    ctx = _ctx("sonarqube", sandbox, dev_settings, "admin")  # a global webhook needs global Administer
    reg = impl.register_webhook(ctx, WebhookRegistration(url="http://127.0.0.1:9/hooks/x", secret=SecretStr(SECRET)))
    assert reg.hook_id.startswith("AX") and reg.signed and not reg.ping_supported
    assert not callable(getattr(impl, "ping_webhook", None))  # SonarQube has no test delivery
    listed = httpx.get(f"{sandbox.base_url}/sonarqube/api/webhooks/list",
                       headers={"Authorization": f"Bearer {ctx.secret('token')}"}, timeout=5).json()["webhooks"]
    assert {"key": reg.hook_id, "name": "PMAP", "url": "http://127.0.0.1:9/hooks/x", "hasSecret": True} in listed


def test_sonarqube_refuses_a_short_secret_before_calling(sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation("sonarqube")
    with pytest.raises(ValidationFailed):
        impl.register_webhook(_ctx("sonarqube", sandbox, dev_settings),
                              WebhookRegistration(url="http://127.0.0.1:9/h", secret=SecretStr("short")))


def test_sonarqube_registration_without_admin_is_a_permission_failure(sandbox: SandboxServer,
                                                                      dev_settings: Settings) -> None:
    impl = implementation("sonarqube")
    with pytest.raises(UpstreamError) as err:
        impl.register_webhook(_ctx("sonarqube", sandbox, dev_settings, "noperm"),
                              WebhookRegistration(url="http://127.0.0.1:9/h", secret=SecretStr(SECRET)))
    assert err.value.step == "permission"


def test_github_hook_is_registered_signed_and_pings(sandbox: SandboxServer, dev_settings: Settings,
                                                   receiver: Receiver) -> None:
    impl = implementation("github_code_scanning")
    ctx = _ctx("github_code_scanning", sandbox, dev_settings)
    reg = impl.register_webhook(ctx, WebhookRegistration(url=receiver.url, secret=SecretStr(SECRET)))
    assert reg.hook_id.isdigit() and reg.signed and reg.ping_supported
    _verified("github_code_scanning", receiver, 1)  # GitHub pings a new hook by itself
    impl.ping_webhook(ctx, reg.hook_id)
    assert _verified("github_code_scanning", receiver, 2)[-1] == "ping"


def test_github_hook_without_the_scope_is_a_permission_failure(sandbox: SandboxServer, dev_settings: Settings,
                                                              receiver: Receiver) -> None:
    impl = implementation("github_code_scanning")
    with pytest.raises(UpstreamError) as err:
        impl.register_webhook(_ctx("github_code_scanning", sandbox, dev_settings, "noperm"),
                              WebhookRegistration(url=receiver.url, secret=SecretStr(SECRET)))
    assert err.value.step == "permission" and "admin:repo_hook" in err.value.message


def test_github_operations_need_the_repository(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("github_code_scanning", sandbox.base_url)
    connection.pop("repository")
    ctx = context(dev_settings, "github_code_scanning", connection, credentials)
    with pytest.raises(ValidationFailed):
        implementation("github_code_scanning").ping_webhook(ctx, "1")


def test_snyk_hook_is_registered_signed_and_pings(sandbox: SandboxServer, dev_settings: Settings,
                                                 receiver: Receiver) -> None:
    impl = implementation("snyk")
    ctx = _ctx("snyk", sandbox, dev_settings)
    reg = impl.register_webhook(ctx, WebhookRegistration(url=receiver.url, secret=SecretStr(SECRET)))
    assert reg.signed and reg.ping_supported and len(reg.hook_id) == 36
    _verified("snyk", receiver, 1)  # Snyk pings a new hook by itself
    impl.ping_webhook(ctx, reg.hook_id)
    arrived = receiver.wait_for(2)
    assert len(arrived) == 2 and all(b"webhookId" in d.body for d in arrived)
    _verified("snyk", receiver, 2)


@pytest.mark.parametrize("vendor", ["snyk", "sonarqube"])
def test_registering_again_removes_the_hook_pmap_registered_before(vendor: str, sandbox: SandboxServer,
                                                                   dev_settings: Settings) -> None:
    # neither vendor updates a webhook in place: without this every rotation or new address adds one
    from pmap.connectors.vendors.snyk import v1_base

    connection, credentials = settings_for(vendor, sandbox.base_url, "admin" if vendor == "sonarqube" else "ok")
    impl = implementation(vendor)
    old = WebhookRegistration(url=f"http://127.0.0.1:9/hooks/old-{vendor}", secret=SecretStr(SECRET))
    first = impl.register_webhook(context(dev_settings, vendor, connection, credentials), old)
    impl.register_webhook(context(dev_settings, vendor, connection, credentials),
                          WebhookRegistration(url=f"http://127.0.0.1:9/hooks/new-{vendor}", secret=SecretStr(SECRET),
                                              previous_hook_id=first.hook_id))
    if vendor == "snyk":
        listed = httpx.get(f"{v1_base(connection['base_url'])}/org/{connection['org_id']}/webhooks",
                           headers={"Authorization": f"token {credentials['token']}"}, timeout=5).json()["results"]
    else:
        listed = httpx.get(f"{connection['base_url']}/api/webhooks/list",
                           headers={"Authorization": f"Bearer {credentials['token']}"}, timeout=5).json()["webhooks"]
    urls = [h["url"] for h in listed]
    assert f"http://127.0.0.1:9/hooks/old-{vendor}" not in urls and f"http://127.0.0.1:9/hooks/new-{vendor}" in urls


def test_snyk_requires_a_secret(sandbox: SandboxServer, dev_settings: Settings) -> None:
    with pytest.raises(ValidationFailed):
        implementation("snyk").register_webhook(_ctx("snyk", sandbox, dev_settings),
                                                              WebhookRegistration(url="http://127.0.0.1:9/h"))


def test_snyk_registration_without_the_right_is_a_permission_failure(sandbox: SandboxServer,
                                                                    dev_settings: Settings) -> None:
    with pytest.raises(UpstreamError) as err:
        implementation("snyk").register_webhook(
            _ctx("snyk", sandbox, dev_settings, "noperm"),
            WebhookRegistration(url="http://127.0.0.1:9/h", secret=SecretStr(SECRET)))
    assert err.value.step == "permission"
