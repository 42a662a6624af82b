"""Create and edit an integration through the console's schema-generated form, with test before trust."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from pmap_sandbox.server import SandboxServer
from tests.console.harness import Server, Watched, assert_no_secret, settle, shot
from tests.webhooks.conftest import integration_body, unique

VENDOR_TIMEOUT = 30_000
DETAIL_URL = re.compile(r"/integrations/[0-9a-f-]{36}$")


def nessus_url(sandbox: SandboxServer) -> str:
    return f"{sandbox.base_url}/nessus"


def open_new_form(page: Page) -> None:
    page.goto("/integrations")
    settle(page)
    page.get_by_role("link", name="New integration").click()
    expect(page).to_have_url(re.compile(r"/integrations/new$"))
    settle(page)


def fill_nessus(page: Page, name: str, base_url: str, access: str, secret: str) -> None:
    page.get_by_label("Vendor", exact=True).select_option(label="Nessus")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Base URL").fill(base_url)
    page.get_by_label("Access Key").fill(access)
    page.get_by_label("Secret Key").fill(secret)


def api_integration(server: Server, sandbox: SandboxServer, marker: str = "ok",
                    name: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """An integration made through the API, and the secrets it was given (to hunt for afterwards)."""
    body = integration_body("nessus", sandbox.base_url, marker, name)
    r = server.api("POST", "/integrations", json=body)
    assert r.status_code == 201, r.text
    return r.json(), list(body["credentials"].values())


def test_create_nessus_with_a_passing_test_then_save(signed_in: Callable[[str], Watched], console_server: Server,
                                                    console_sandbox: SandboxServer) -> None:
    watched = signed_in("operator")
    page = watched.page
    open_new_form(page)
    expect(page.get_by_label("Vendor", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Test connection")).to_be_disabled()  # no vendor chosen yet
    shot(page, "integration-form-empty")

    name = unique("console-nessus")
    access, secret = unique("managed-access"), unique("managed-secret")
    fill_nessus(page, name, nessus_url(console_sandbox), access, secret)
    # generated from the schema: help text, defaults, required marks, password inputs
    expect(page.get_by_label("Verify TLS")).to_be_checked()
    expect(page.get_by_label("Timeout Seconds")).to_have_value("10")
    expect(page.get_by_label("Access Key")).to_have_attribute("type", "password")
    expect(page.get_by_label("Secret Key")).to_have_attribute("type", "password")
    expect(page.get_by_label("Base URL")).to_have_attribute("aria-required", "true")
    expect(page.get_by_text("API secret key")).to_be_visible()
    shot(page, "integration-form-filled")

    page.get_by_role("button", name="Test connection").click()
    outcome = page.locator(".test-outcome")
    expect(outcome).to_contain_text("Connection test passed", timeout=VENDOR_TIMEOUT)
    expect(outcome).to_contain_text("10.7.2")
    expect(outcome).to_contain_text("Nessus")
    expect(outcome).to_contain_text("Latency")
    expect(outcome).to_contain_text("managed (linked to")  # the Nessus Managed Scanner notice
    expect(outcome).to_contain_text("Licence")
    shot(page, "integration-form-test-passed")
    # the test saved nothing
    listed = console_server.api("GET", "/integrations", params={"name": name}).json()
    assert listed["total"] == 0

    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(DETAIL_URL, timeout=VENDOR_TIMEOUT)
    settle(page)
    integration_id = page.url.rsplit("/", 1)[-1]
    saved = console_server.api("GET", f"/integrations/{integration_id}").json()
    assert saved["name"] == name and saved["vendor"] == "nessus"
    assert sorted(saved["credentials_set"]) == ["access_key", "secret_key"]
    assert saved["connection"]["base_url"] == nessus_url(console_sandbox)
    assert not watched.errors, watched.errors
    assert_no_secret(watched, console_server, [access, secret])


def test_a_failing_test_shows_its_step_and_a_422_its_fields(signed_in: Callable[[str], Watched],
                                                            console_server: Server,
                                                            console_sandbox: SandboxServer) -> None:
    watched = signed_in("operator")
    page = watched.page
    open_new_form(page)
    access, secret = unique("bad-access"), unique("bad-secret")
    fill_nessus(page, unique("console-bad"), nessus_url(console_sandbox), access, secret)
    page.get_by_role("button", name="Test connection").click()
    outcome = page.locator(".test-outcome")
    expect(outcome).to_contain_text("Connection test failed", timeout=VENDOR_TIMEOUT)
    expect(outcome).to_contain_text("Failed step")
    expect(outcome.locator("code").first).to_have_text("auth")  # the sandbox refused the "bad" keys
    shot(page, "integration-form-test-failed")

    # an unreachable target fails at its own step
    page.get_by_label("Base URL").fill("http://127.0.0.1:9/nessus")
    page.get_by_role("button", name="Test connection").click()
    expect(outcome).to_contain_text("Connection test failed", timeout=VENDOR_TIMEOUT)
    expect(outcome).to_contain_text("Failed step")

    # the server's field problems show next to their fields, without the typed secret
    page.get_by_label("Base URL").fill("ftp://nessus.example.com")
    page.get_by_label("Secret Key").fill("abc")
    page.get_by_role("button", name="Save").click()
    base_error = page.locator("#conn-base_url-error")
    expect(base_error).to_contain_text("http", timeout=VENDOR_TIMEOUT)
    expect(page.get_by_label("Base URL")).to_have_attribute("aria-invalid", "true")
    expect(page).to_have_url(re.compile(r"/integrations/new"))
    page.get_by_label("Base URL").fill(nessus_url(console_sandbox))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#cred-secret_key-error")).to_contain_text("too short", timeout=VENDOR_TIMEOUT)
    assert_no_secret(watched, console_server, [access, secret])


def test_edit_keeps_blank_secrets_and_asks_again_when_the_target_moves(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    integration, secrets = api_integration(console_server, console_sandbox, "ok")
    iid = integration["id"]
    watched = signed_in("operator")
    page = watched.page
    page.goto(f"/integrations/{iid}/edit")
    settle(page)
    expect(page.get_by_label("Name", exact=True)).to_have_value(integration["name"])
    expect(page.get_by_label("Base URL")).to_have_value(integration["connection"]["base_url"])
    for label in ("Access Key", "Secret Key"):
        box = page.get_by_label(label)
        expect(box).to_have_attribute("type", "password")
        expect(box).to_have_value("")
        expect(box).not_to_have_attribute("aria-required", "true")
    expect(page.get_by_text("leave blank to keep").first).to_be_visible()
    expect(page.get_by_label("Vendor", exact=True)).to_be_disabled()

    # a test of the edit reuses the stored secrets (same target)
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".test-outcome")).to_contain_text("Connection test passed", timeout=VENDOR_TIMEOUT)
    # nothing was edited, so it was a test of the saved settings as they are: it stamps last_tested_at
    assert integration["last_tested_at"] is None
    assert console_server.api("GET", f"/integrations/{iid}").json()["last_tested_at"] is not None

    renamed = unique("console-renamed")
    page.get_by_label("Name", exact=True).fill(renamed)
    page.get_by_label("Severity threshold").select_option("high")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(rf"/integrations/{iid}$"), timeout=VENDOR_TIMEOUT)
    saved = console_server.api("GET", f"/integrations/{iid}").json()
    assert saved["name"] == renamed and saved["severity_threshold"] == "high"
    assert sorted(saved["credentials_set"]) == ["access_key", "secret_key"]
    # blank kept the stored secrets: a re-test through the API still passes
    retest = console_server.api("POST", f"/integrations/{iid}/test", role="operator")
    assert retest.status_code == 200 and retest.json()["ok"] is True, retest.text

    # moving the target asks for the secrets again, with the reason, before saving
    page.goto(f"/integrations/{iid}/edit")
    settle(page)
    moved = integration["connection"]["base_url"].replace("127.0.0.1", "localhost")
    page.get_by_label("Base URL").fill(moved)
    reason = page.locator(".target-notice")
    expect(reason).to_contain_text("Enter the secrets again")
    expect(reason).to_contain_text("Base URL points at another target")
    expect(page.get_by_label("Secret Key")).to_have_attribute("aria-required", "true")
    expect(page.get_by_label("Access Key")).to_have_attribute("aria-required", "true")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#cred-secret_key-error")).to_contain_text("must be supplied again")
    expect(page).to_have_url(re.compile(rf"/integrations/{iid}/edit$"))
    assert console_server.api("GET", f"/integrations/{iid}").json()["connection"]["base_url"] != moved
    # turning TLS checking off is a reason too; putting the URL back clears the base URL one
    page.get_by_label("Base URL").fill(integration["connection"]["base_url"])
    page.get_by_label("Verify TLS").uncheck()
    expect(reason).to_contain_text("TLS certificate verification is turned off")
    expect(reason).not_to_contain_text("Base URL")
    page.get_by_label("Verify TLS").check()
    expect(reason).to_be_empty()
    expect(page.get_by_label("Secret Key")).not_to_have_attribute("aria-required", "true")

    page.get_by_label("Base URL").fill(moved)
    access, secret = unique("moved-access"), unique("moved-secret")
    page.get_by_label("Access Key").fill(access)
    page.get_by_label("Secret Key").fill(secret)
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".test-outcome")).to_contain_text("Connection test passed", timeout=VENDOR_TIMEOUT)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(rf"/integrations/{iid}$"), timeout=VENDOR_TIMEOUT)
    after = console_server.api("GET", f"/integrations/{iid}").json()
    assert after["connection"]["base_url"] == moved
    assert not watched.errors, watched.errors
    assert_no_secret(watched, console_server, [*secrets, access, secret])


def test_markup_in_a_name_is_text_in_the_form(signed_in: Callable[[str], Watched], console_server: Server,
                                              console_sandbox: SandboxServer) -> None:
    name = f"<img src=x onerror=alert(1)> {unique('form-xss')}"
    integration, secrets = api_integration(console_server, console_sandbox, "ok", name=name)
    watched = signed_in("operator")
    page = watched.page
    page.goto(f"/integrations/{integration['id']}/edit")
    settle(page)
    expect(page.get_by_label("Name", exact=True)).to_have_value(name)
    expect(page.locator("#page-title")).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator("#app img").count() == 0
    assert not watched.dialogs
    assert_no_secret(watched, console_server, secrets)


def test_a_viewer_cannot_open_the_form(signed_in: Callable[[str], Watched]) -> None:
    page = signed_in("viewer").page
    response = page.goto("/integrations/new")
    assert response is not None and response.status == 403
    expect(page.get_by_text("This page needs the operator role.")).to_be_visible()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.get_by_role("button", name="Test connection")).to_have_count(0)
