"""The integrations list: metadata at a glance, the API's filters and cursor pages, role-aware controls."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from pmap_sandbox.server import SandboxServer
from tests.console.harness import FirstRequestHeld, Server, Watched, assert_no_secret, settle, shot
from tests.webhooks.conftest import integration_body, unique


def make(server: Server, sandbox: SandboxServer, vendor: str, name: str, *, enabled: bool = True,
         marker: str = "ok") -> tuple[dict[str, Any], list[str]]:
    body = integration_body(vendor, sandbox.base_url, marker, name)
    body["enabled"] = enabled
    r = server.api("POST", "/integrations", json=body)
    assert r.status_code == 201, r.text
    return r.json(), list(body["credentials"].values())


def rows(page: Page) -> Any:
    return page.locator("#app table tbody tr")


def test_a_filter_applied_while_the_first_page_loads_is_the_one_drawn(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    """The unfiltered first page, answered after the filtered one, is not drawn over it."""
    prefix = unique("race")
    make(console_server, console_sandbox, "nessus", f"{prefix}-only")
    make(console_server, console_sandbox, "zap", unique("other"))  # at least one row the filter hides
    page = signed_in("operator").page
    first = FirstRequestHeld(page, "**/api/v1/integrations?*")
    page.goto("/integrations")
    settle(page)
    first.wait()
    page.get_by_label("Name contains").fill(prefix)
    page.get_by_role("button", name="Filter").click()
    expect(rows(page)).to_have_count(1)
    first.release()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text(f"{prefix}-only")


def test_the_list_shows_filters_and_pages_the_organizations_integrations(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    prefix = unique("lst")
    secrets: list[str] = []
    made: dict[str, dict[str, Any]] = {}
    for i in range(11):
        row, s = make(console_server, console_sandbox, "nessus", f"{prefix}-nessus-{i:02d}", enabled=i % 4 != 3)
        made[row["name"]] = row
        secrets += s
    row, s = make(console_server, console_sandbox, "zap", f"{prefix}-zap")
    made[row["name"]] = row
    secrets += s
    tested = made[f"{prefix}-nessus-00"]
    r = console_server.api("POST", f"/integrations/{tested['id']}/test", role="operator")
    assert r.status_code == 200 and r.json()["ok"], r.text

    watched = signed_in("operator")
    page = watched.page
    page.goto("/integrations")
    settle(page)
    expect(page.get_by_role("link", name="New integration")).to_be_visible()
    page.get_by_label("Name contains").fill(prefix)
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("status").filter(has_text="integrations")).to_contain_text("of 12 integrations")
    expect(rows(page)).to_have_count(12)
    shot(page, "integrations-list")

    # a row: name links to the detail page, vendor by display name, category, enabled, health, webhook
    tested_row = rows(page).filter(has=page.get_by_role("link", name=tested["name"], exact=True))
    expect(tested_row).to_contain_text("Nessus")
    expect(tested_row).to_contain_text("VM")
    expect(tested_row).to_contain_text("enabled")
    expect(tested_row).to_contain_text("test passed")
    expect(tested_row).to_contain_text("no secret")
    expect(tested_row).to_contain_text("plain http")  # a standing warning of the integration
    untested = rows(page).filter(has=page.get_by_role("link", name=f"{prefix}-nessus-01", exact=True))
    expect(untested).to_contain_text("not tested")
    expect(untested).to_contain_text("not scheduled")
    expect(page.get_by_role("link", name=tested["name"], exact=True)).to_have_attribute(
        "href", f"/integrations/{tested['id']}")

    # the API's filters
    page.get_by_label("Vendor").select_option(label="ZAP (OWASP Zed Attack Proxy)")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text(f"{prefix}-zap")
    page.get_by_label("Vendor").select_option(label="Nessus")
    expect(rows(page)).to_have_count(11)
    page.get_by_label("Status").select_option(label="Disabled")
    expect(rows(page)).to_have_count(2)  # 3 and 7
    expect(rows(page).first).to_contain_text("disabled")
    page.get_by_label("Status").select_option(label="Enabled or not")
    page.get_by_label("Category").select_option(label="DAST")
    expect(page.get_by_text("No integration matches these filters.")).to_be_visible()
    page.get_by_label("Category").select_option(label="VM")
    expect(rows(page)).to_have_count(11)

    # cursor pages of 10: newest first across pages
    page.get_by_label("Per page").select_option("10")
    expect(rows(page)).to_have_count(10)
    expect(page.get_by_text("Page 1 of 2")).to_be_visible()
    expect(rows(page).first).to_contain_text(f"{prefix}-nessus-10")
    expect(page.get_by_role("button", name="Previous page")).to_be_disabled()
    page.get_by_role("button", name="Next page").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text(f"{prefix}-nessus-00")
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(rows(page)).to_have_count(10)

    # a column sort is the API's: it orders every page, and pages go on in that order
    page.get_by_role("button", name="Name").click()
    expect(rows(page).first).to_contain_text(f"{prefix}-nessus-00")
    expect(page.get_by_text("Sorted across every page")).to_be_visible()
    expect(page).to_have_url(re.compile(r"sort=name"))
    page.get_by_role("button", name="Next page").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text(f"{prefix}-nessus-10")
    page.get_by_role("button", name=re.compile(r"^Name")).click()  # again: descending, from the first page
    expect(rows(page).first).to_contain_text(f"{prefix}-nessus-10")
    expect(page).to_have_url(re.compile(r"sort=-name"))
    page.get_by_role("button", name="Next page").click()
    expect(rows(page).first).to_contain_text(f"{prefix}-nessus-00")
    page.get_by_role("button", name=re.compile(r"^Health")).click()  # the one tested sorts last ascending
    page.get_by_role("button", name="Next page").click()
    expect(rows(page).first).to_contain_text(f"{prefix}-nessus-00")

    # filters survive a reload (they are in the address, which holds no secret)
    page.reload()
    settle(page)
    expect(page.get_by_label("Name contains")).to_have_value(prefix)
    expect(rows(page)).to_have_count(10)
    assert not watched.errors, watched.errors
    assert_no_secret(watched, console_server, secrets)


def test_an_empty_result_and_a_viewer_sees_no_new_integration(signed_in: Callable[[str], Watched],
                                                              console_server: Server,
                                                              console_sandbox: SandboxServer) -> None:
    name = unique("viewer-sees")
    _, secrets = make(console_server, console_sandbox, "nessus", name)
    watched = signed_in("viewer")
    page = watched.page
    page.goto("/integrations")
    settle(page)
    expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="New integration")).to_have_count(0)
    expect(page.get_by_text("creating and changing integrations needs the operator role")).to_be_visible()
    page.get_by_label("Name contains").fill(unique("nothing-matches"))
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No integration matches these filters.")).to_be_visible()
    shot(page, "integrations-list-empty")
    # readable on a narrow window: the page itself does not scroll sideways (the table scrolls in its box)
    page.get_by_label("Name contains").fill(name)
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    page.set_viewport_size({"width": 420, "height": 800})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 420
    shot(page, "integrations-list-narrow")
    page.goto("/integrations/new")
    expect(page.get_by_text("This page needs the operator role.")).to_be_visible()
    expect(page.get_by_label("Vendor", exact=True)).to_have_count(0)
    assert_no_secret(watched, console_server, secrets)


def test_markup_in_a_name_shows_as_text_in_the_list(signed_in: Callable[[str], Watched], console_server: Server,
                                                   console_sandbox: SandboxServer) -> None:
    tag = unique("xss")
    name = f"<img src=x onerror=alert(1)> {tag}"
    _, secrets = make(console_server, console_sandbox, "nessus", name)
    watched = signed_in("operator")
    page = watched.page
    page.goto(f"/integrations?name={tag}")
    settle(page)
    link = page.get_by_role("link", name=name, exact=True)
    expect(link).to_have_text(name)
    assert page.locator("#app img").count() == 0
    assert not watched.dialogs
    assert_no_secret(watched, console_server, secrets)
