"""The webhook panel of an integration's detail page, in a real browser against the vendor sandbox: status,
generate, reveal (admin: confirmed, masked, audited, gone on leaving), regenerate with its grace period,
auto-setup and register with their outcome, deliveries with their verification, and what each role sees."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from pmap.connectors.base import secret_field_names
from pmap.connectors.catalog import connector_types
from pmap_sandbox.server import SandboxServer
from tests.console.harness import Server, Watched, assert_no_secret, settle, shot, storage_dump
from tests.webhooks.conftest import integration_body, unique

VENDOR_TIMEOUT = 30_000  # vendor operations (auto-setup waits up to 10 s for the vendor's test delivery)
CONTROLS = ("Generate", "Regenerate", "Register", "Auto-setup", "Reveal")


def _integration(server: Server, sandbox: SandboxServer, vendor: str, marker: str = "ok") -> tuple[str, list[str]]:
    """An integration against the sandbox (set-up through the API): its id and its secret credential values."""
    body = integration_body(vendor, sandbox.base_url, marker, unique(f"webhook-{vendor}"))
    r = server.api("POST", "/integrations", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), _secret_values(vendor, body)


def _secret_values(vendor: str, body: dict[str, Any]) -> list[str]:
    """The values of a create or PATCH body's secret credential fields."""
    secret_fields = set(secret_field_names(connector_types()[vendor].credentials_model))
    return [v for k, v in body["credentials"].items() if k in secret_fields]


def _webhook(iid: str) -> str:
    return f"/integrations/{iid}/webhook"


def _generate(server: Server, iid: str) -> None:
    r = server.api("POST", _webhook(iid) + "/generate", role="operator")
    assert r.status_code == 201, r.text


def _api_reveal(server: Server, iid: str) -> str:
    """The webhook secret as the API gives it to an admin (to hunt it where it must not be)."""
    r = server.api("POST", _webhook(iid) + "/reveal")
    assert r.status_code == 200, r.text
    return str(r.json()["secret"])


def _open(watched: Watched, iid: str) -> tuple[Page, Locator]:
    page = watched.page
    page.goto(f"/integrations/{iid}")
    settle(page)
    panel = page.locator("#webhook-panel")
    expect(panel.get_by_label("Webhook status")).to_be_visible()
    return page, panel


def _prop(panel: Locator, term: str) -> Locator:
    """The value of one status line (its <dd>)."""
    return panel.get_by_label("Webhook status").locator(f"dt:text-is('{term}') + dd")


def _control(panel: Locator, name: str) -> Locator:
    return panel.get_by_role("button", name=name, exact=True)


def _deliver(sandbox: SandboxServer, vendor: str, url: str, secret: str, event: str) -> int:
    """One delivery signed by the sandbox (the vendor's own signing) with ``secret``; the receiver's status."""
    r = httpx.post(f"{sandbox.base_url}/_sandbox/deliver/{vendor}", timeout=30, trust_env=False, json={
        "url": url, "secret": secret, "event": event, "payload": {"webhookEvent": event, "n": unique("p")}})
    assert r.status_code == 200, r.text
    return int(r.json()["status"])


def _reveal_audits(server: Server, iid: str) -> list[dict[str, Any]]:
    r = server.api("GET", "/audit-events", params={"integration_id": iid, "action": "credentials.decrypt",
                                                   "purpose": "reveal", "limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_an_operator_generates_a_secret_and_sees_no_reveal(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    iid, credentials = _integration(console_server, console_sandbox, "jira_cloud")
    watched = signed_in("operator")
    page, panel = _open(watched, iid)
    expect(_prop(panel, "Configured")).to_have_text("not configured")
    expect(_prop(panel, "Receiving URL")).to_contain_text(f"/hooks/{iid}")
    shot(page, "webhook-operator-not-configured")
    _control(panel, "Generate").click()
    expect(panel.get_by_role("status").filter(has_text="Webhook secret generated")).to_be_visible()
    expect(_prop(panel, "Configured")).to_have_text("configured")
    expect(_control(panel, "Generate")).to_have_count(0)
    # the operator may install it on the vendor (approved target), never see or rotate it
    expect(_control(panel, "Register")).to_be_visible()
    expect(_control(panel, "Auto-setup")).to_be_visible()
    expect(_control(panel, "Reveal")).to_have_count(0)
    expect(_control(panel, "Regenerate")).to_have_count(0)
    expect(panel).to_contain_text("Only an admin may reveal or rotate the webhook secret.")
    shot(page, "webhook-operator-generated")
    assert console_server.api("GET", _webhook(iid)).json()["configured"] is True
    assert not watched.errors
    assert_no_secret(watched, console_server, [_api_reveal(console_server, iid), *credentials])


def test_an_admin_reveals_after_confirming_masked_audited_and_gone_on_leaving(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    iid, credentials = _integration(console_server, console_sandbox, "jira_cloud")
    _generate(console_server, iid)
    audits_before = len(_reveal_audits(console_server, iid))
    watched = signed_in("admin")
    page, panel = _open(watched, iid)
    expect(panel.get_by_label("Webhook secret", exact=True)).to_have_count(0)

    # a confirmation step first; cancelling reveals nothing
    _control(panel, "Reveal").click()
    dialog = page.get_by_role("dialog", name="Reveal the webhook secret?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("paste it into the vendor's webhook configuration")
    expect(dialog).to_contain_text("audit log")
    shot(page, "webhook-reveal-confirm")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert not any("/webhook/reveal" in u for u in watched.requests)

    _control(panel, "Reveal").click()
    with page.expect_response(lambda r: r.url.endswith(f"{_webhook(iid)}/reveal")) as answer:
        page.get_by_role("dialog").get_by_role("button", name="Confirm reveal").click()
    assert answer.value.status == 200
    assert "no-store" in answer.value.headers["cache-control"]
    secret_box = panel.get_by_label("Webhook secret", exact=True)
    expect(secret_box).to_have_attribute("type", "password")  # masked until asked
    shot(page, "webhook-revealed-masked")
    panel.get_by_role("button", name="Show", exact=True).click()
    expect(secret_box).to_have_attribute("type", "text")
    shot(page, "webhook-revealed-shown")
    secret = secret_box.input_value()
    assert len(secret) >= 16
    assert secret not in page.content()  # a property of the input, not an attribute in the markup
    assert not any(secret in line for line in watched.console) and secret not in storage_dump(watched)
    audits = _reveal_audits(console_server, iid)
    assert len(audits) == audits_before + 1 and audits[0]["outcome"] == "success"
    assert secret not in repr(audits)

    # the value is the secret the receiver verifies with: the vendor's signing with it is accepted
    url = console_server.api("GET", _webhook(iid)).json()["receiving_url"]
    event = "jira:issue_updated"
    assert _deliver(console_sandbox, "jira_cloud", url, secret, event) == 202
    panel.get_by_role("button", name="Refresh deliveries").click()
    row = panel.locator("table tbody tr").filter(has_text=event)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("verified")

    # hidden when the page is hidden (a tab switch): the field is destroyed
    page.evaluate("""() => {
        Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
        delete document.visibilityState;
    }""")
    expect(secret_box).to_have_count(0)
    assert secret not in page.content()

    # revealed again and hidden with the Hide button
    _control(panel, "Reveal").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm reveal").click()
    expect(secret_box).to_have_value(secret)
    panel.get_by_role("button", name="Hide", exact=True).click()
    expect(secret_box).to_have_count(0)

    # leaving the page (pagehide, also when it would go to the back/forward cache) destroys the field
    _control(panel, "Reveal").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm reveal").click()
    expect(secret_box).to_have_value(secret)
    page.evaluate("() => window.dispatchEvent(new PageTransitionEvent('pagehide', {persisted: true}))")
    expect(secret_box).to_have_count(0)

    # revealed again, then the page is left: nothing of it stays in the DOM nor in storage, even back again
    _control(panel, "Reveal").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm reveal").click()
    expect(secret_box).to_have_value(secret)
    page.get_by_role("link", name="Integrations").click()
    expect(page).to_have_url(re.compile(r"/integrations$"))
    settle(page)
    assert secret not in page.content() and secret not in storage_dump(watched)
    page.go_back()
    expect(page).to_have_url(re.compile(f"/integrations/{iid}$"))
    expect(page.get_by_label("Webhook status")).to_be_visible()
    expect(page.get_by_label("Webhook secret", exact=True)).to_have_count(0)
    assert secret not in page.content()
    assert not any(secret in line for line in watched.console) and not any(secret in u for u in watched.requests)
    assert len(_reveal_audits(console_server, iid)) == audits_before + 4
    assert not watched.errors
    # the revealed secret is on this page on purpose; nothing else is
    assert_no_secret(watched, console_server, credentials)
    assert secret not in console_server.log_text()


def test_an_admin_regenerates_and_sees_the_grace_period(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    iid, credentials = _integration(console_server, console_sandbox, "jira_cloud")
    _generate(console_server, iid)
    old = _api_reveal(console_server, iid)
    watched = signed_in("admin")
    page, panel = _open(watched, iid)
    expect(_prop(panel, "Previous secret valid until")).to_have_text("no grace period running")
    expect(_control(panel, "Generate")).to_have_count(0)
    panel.get_by_label("Grace period (hours)").fill("2")
    _control(panel, "Regenerate").click()
    result = panel.get_by_role("status").filter(has_text="A new webhook secret was generated")
    expect(result).to_contain_text("The previous secret stays valid until")
    status = console_server.api("GET", _webhook(iid)).json()
    assert status["previous_secret_valid_until"] is not None and status["secret_rotated_at"] is not None
    expect(result.locator("time").first).to_have_attribute("datetime", status["previous_secret_valid_until"])
    expect(_prop(panel, "Previous secret valid until")).to_contain_text("in 2 h")
    expect(panel).to_contain_text("the previous secret is still accepted until")  # the status's warning
    shot(page, "webhook-regenerated-grace")
    new = _api_reveal(console_server, iid)
    assert new != old
    assert_no_secret(watched, console_server, [old, new, *credentials])


def test_an_operator_auto_sets_up_a_github_webhook(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    iid, credentials = _integration(console_server, console_sandbox, "github_issues")
    watched = signed_in("operator")
    page, panel = _open(watched, iid)
    expect(_prop(panel, "Registered")).to_have_text("not registered")
    expect(_control(panel, "Register")).to_have_count(0)  # nothing to register before a secret exists
    _control(panel, "Auto-setup").click()
    result = panel.get_by_role("status").filter(has_text="Auto-setup")
    expect(result).to_contain_text("Auto-setup done.", timeout=VENDOR_TIMEOUT)
    expect(result).to_contain_text("test delivery received and verified")
    expect(result).to_contain_text("generated")
    status = console_server.api("GET", _webhook(iid)).json()
    assert status["registered"] and status["hook_id"]
    expect(result).to_contain_text(status["hook_id"])
    expect(_prop(panel, "Registered")).to_contain_text("registered")
    expect(_prop(panel, "Registered").locator(".hook-id")).to_have_text(status["hook_id"])
    expect(_prop(panel, "Configured")).to_have_text("configured")
    expect(panel.locator("table tbody tr").first).to_contain_text("verified")
    expect(_control(panel, "Reveal")).to_have_count(0)
    shot(page, "webhook-auto-setup-github")
    assert not watched.errors
    assert_no_secret(watched, console_server, [_api_reveal(console_server, iid), *credentials])


def test_a_failed_registration_shows_its_step(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    iid, credentials = _integration(console_server, console_sandbox, "github_issues", marker="bad")
    _generate(console_server, iid)
    watched = signed_in("operator")
    page, panel = _open(watched, iid)
    _control(panel, "Register").click()
    alert = panel.get_by_role("alert")
    expect(alert).to_contain_text("webhook registration failed at step", timeout=VENDOR_TIMEOUT)
    expect(alert.locator(".step")).to_contain_text("auth")
    expect(_prop(panel, "Registered")).to_have_text("not registered")
    shot(page, "webhook-register-failed")
    assert_no_secret(watched, console_server, [_api_reveal(console_server, iid), *credentials])


def test_a_viewer_sees_the_status_and_no_control(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    iid, credentials = _integration(console_server, console_sandbox, "jira_cloud")
    _generate(console_server, iid)
    watched = signed_in("viewer")
    page, panel = _open(watched, iid)
    expect(_prop(panel, "Configured")).to_have_text("configured")
    expect(_prop(panel, "Target approved")).to_have_text("yes")
    for name in CONTROLS:
        expect(_control(panel, name)).to_have_count(0)
    expect(panel.get_by_label("Grace period (hours)")).to_have_count(0)
    expect(panel).to_contain_text("changing the webhook needs an operator")
    expect(panel.get_by_role("heading", name="Deliveries")).to_be_visible()
    shot(page, "webhook-viewer")
    page.set_viewport_size({"width": 420, "height": 800})  # a narrow window: still readable, nothing cut off
    expect(_prop(panel, "Receiving URL")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "webhook-viewer-narrow")
    assert_no_secret(watched, console_server, [_api_reveal(console_server, iid), *credentials])


def test_a_badly_signed_delivery_shows_as_rejected_with_its_reason(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    iid, credentials = _integration(console_server, console_sandbox, "jira_cloud")
    _generate(console_server, iid)
    url = console_server.api("GET", _webhook(iid)).json()["receiving_url"]
    secret = _api_reveal(console_server, iid)
    # a verified delivery whose event (vendor data) holds markup, then a forged one
    marked_up = 'jira:<img src=x id="injected">'
    assert _deliver(console_sandbox, "jira_cloud", url, secret, marked_up) == 202
    forged = unique("forged-secret")
    assert _deliver(console_sandbox, "jira_cloud", url, forged, "jira:issue_created") == 401
    items = console_server.api("GET", _webhook(iid) + "/deliveries").json()["items"]
    assert [i["outcome"] for i in items][0] == "rejected" and items[0]["reason"] and items[1]["event"] == marked_up
    reason = items[0]["reason"]
    watched = signed_in("operator")
    page, panel = _open(watched, iid)
    expect(_prop(panel, "Last rejection")).to_contain_text(reason)
    expect(_prop(panel, "Rejected attempts")).to_have_text("1")
    rows = panel.locator("table tbody tr")
    expect(rows).to_have_count(2)
    row = rows.first  # newest first; a rejected delivery keeps no body, so no event
    expect(row).to_contain_text("rejected")
    expect(row.locator(".reason")).to_have_text(reason)
    verified = rows.filter(has_text=marked_up)  # the markup shows as text
    expect(verified).to_contain_text("verified")
    expect(page.locator("#injected")).to_have_count(0)
    # the outcome filter asks the API for rejected deliveries only
    panel.get_by_label("Outcome").select_option("duplicate")
    expect(panel).to_contain_text("No duplicate deliveries.")
    panel.get_by_label("Outcome").select_option("rejected")
    expect(rows).to_have_count(1)
    expect(rows.locator(".reason")).to_have_text(reason)
    shot(page, "webhook-rejected-delivery")
    assert_no_secret(watched, console_server, [secret, forged, *credentials])


def test_the_revealed_secret_copies_and_goes_after_its_timeout(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    iid, credentials = _integration(console_server, console_sandbox, "jira_cloud")
    _generate(console_server, iid)
    watched = signed_in("admin")
    watched.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_server.base_url)
    page = watched.page
    page.clock.install()  # the page's timers under the test's control: the 60 s pass at once below
    page, panel = _open(watched, iid)
    _control(panel, "Reveal").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm reveal").click()
    secret_box = panel.get_by_label("Webhook secret", exact=True)
    expect(secret_box).to_be_focused()
    expect(secret_box).to_have_attribute("type", "password")
    panel.get_by_role("button", name="Copy", exact=True).click()
    expect(panel.get_by_role("status").filter(has_text="Copied to the clipboard.")).to_be_visible()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == secret_box.input_value() and len(copied) >= 16
    page.evaluate("() => navigator.clipboard.writeText('')")
    page.clock.fast_forward("00:59")
    expect(secret_box).to_have_count(1)
    page.clock.fast_forward("00:02")
    expect(secret_box).to_have_count(0)
    assert copied not in page.content() and copied not in storage_dump(watched)
    assert_no_secret(watched, console_server, credentials)


def test_an_operator_cannot_register_after_a_change_of_target(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    iid, credentials = _integration(console_server, console_sandbox, "github_issues")
    _generate(console_server, iid)
    # the operator points the integration elsewhere (another host for the same sandbox), new credentials with it
    moved = integration_body("github_issues", console_sandbox.base_url.replace("127.0.0.1", "localhost"))
    r = console_server.api("PATCH", f"/integrations/{iid}", role="operator", json={
        "connection": {"base_url": moved["connection"]["base_url"]}, "credentials": moved["credentials"]})
    assert r.status_code == 200, r.text
    assert console_server.api("GET", _webhook(iid)).json()["target_approved"] is False
    watched = signed_in("operator")
    page, panel = _open(watched, iid)
    expect(_prop(panel, "Target approved")).to_contain_text("no")
    expect(_control(panel, "Register")).to_have_count(0)
    expect(_control(panel, "Auto-setup")).to_have_count(0)
    expect(panel).to_contain_text("an admin must register the webhook on the new target")
    shot(page, "webhook-operator-target-not-approved")
    # an admin still may (the call would approve the new target)
    admin = signed_in("admin")
    _, admin_panel = _open(admin, iid)
    expect(_control(admin_panel, "Register")).to_be_visible()
    expect(_control(admin_panel, "Auto-setup")).to_be_visible()
    expect(admin_panel).to_contain_text("sends the webhook secret to the new target and approves it")
    secret = _api_reveal(console_server, iid)
    hunted = [secret, *credentials, *_secret_values("github_issues", moved)]
    assert_no_secret(watched, console_server, hunted)
    assert_no_secret(admin, console_server, hunted)
