"""The admin pages in a real browser: the audit log (filters, cursor pages, detail as text) and the tokens page
(create with the value shown once, revoke with a confirmation, the last admin token refused)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from pmap_sandbox.server import SandboxServer
from tests.console.harness import (
    FirstRequestHeld,
    Server,
    Watched,
    assert_no_secret,
    create_integration,
    settle,
    shot,
    sign_in,
    start_server,
    storage_dump,
    watch,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def whoami(server: Server, token: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"},
                     timeout=30, trust_env=False)


def token_row(page: Page, name: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_text(name, exact=True))


# ---- audit log ------------------------------------------------------------------------------------------------

def test_audit_log_filters_pages_and_shows_details_as_text(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    name = unique("audited")
    integration = create_integration(console_server, console_sandbox.base_url, "nessus", name=name)
    tag = unique("paged")
    for i in range(11):  # more token.create events than one page of 10
        r = console_server.api("POST", "/tokens", json={"name": f"{tag}-{i}", "role": "viewer"})
        assert r.status_code == 201, r.text
    watched = signed_in("admin")
    page = watched.page
    page.goto("/audit")
    settle(page)
    expect(page.get_by_role("table")).to_be_visible()
    # the chain as the API verified it, and each event's place in it
    expect(page.get_by_role("status").filter(has_text="Audit chain verified")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Seq")).to_be_visible()
    expect(page.locator("tbody tr").first.locator("td").first).to_have_text(re.compile(r"^(\d+|—)$"))
    shot(page, "audit")

    # action + integration: the one creation of this integration, named, with a link to it
    page.get_by_label("Action").select_option("integration.create")
    page.get_by_label("Integration", exact=True).select_option(label=name)
    page.get_by_role("button", name="Apply filters").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("integration.create")
    expect(rows.first).to_contain_text("success")
    expect(rows.first.get_by_role("link", name=name)).to_have_attribute("href", f"/integrations/{integration['id']}")
    # outcome narrows further: no failed creation of it
    page.get_by_label("Outcome").select_option("failure")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("No audit event matches these filters.")).to_be_visible()
    # purpose is a filter the API takes too
    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Purpose").fill("no-such-purpose")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("No audit event matches these filters.")).to_be_visible()

    # cursor pages over token.create events, their detail drawn as text (the token's name in it)
    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Action").select_option("token.create")
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(10)
    expect(page.locator("pre.audit-detail").first).to_contain_text(f'"name": "{tag}-10"')
    expect(page.get_by_text("Page 1", exact=True)).to_be_visible()
    page.get_by_role("button", name="Older").click()
    expect(page.get_by_text("Page 2", exact=True)).to_be_visible()
    expect(page.locator("pre.audit-detail").first).not_to_contain_text(f'"name": "{tag}-10"')
    shot(page, "audit-page-2")
    page.get_by_role("button", name="Newer").click()
    expect(page.get_by_text("Page 1", exact=True)).to_be_visible()
    expect(page.locator("pre.audit-detail").first).to_contain_text(f'"name": "{tag}-10"')
    assert not watched.errors, watched.errors
    assert_no_secret(watched, console_server, [console_server.admin_token])


# ---- tokens ---------------------------------------------------------------------------------------------------

def test_a_created_token_is_shown_once_works_and_is_revoked_after_confirmation(
        signed_in: Callable[[str], Watched], console_server: Server) -> None:
    watched = signed_in("admin")
    page = watched.page
    page.goto("/tokens")
    settle(page)
    expect(page.get_by_role("table", name="API tokens")).to_be_visible()
    shot(page, "tokens")
    name = unique("ci pipeline")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Role").select_option("operator")
    page.get_by_label("Expires in days").fill("30")
    page.get_by_role("button", name="Create token").click()

    field = page.get_by_label("New token")
    expect(field).to_be_visible()
    expect(field).to_have_attribute("readonly", "")
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    value = field.input_value()
    assert value.startswith("pmap_") and len(value) > 20
    # the value is a property of the field, not markup of the page
    assert value not in page.content()
    shot(page, "tokens-created")
    page.get_by_role("button", name="Copy").click()  # the clipboard where the browser allows it, else selected
    expect(page.locator(".shown-once .copy-status")).to_have_text(re.compile("Copied to the clipboard|Selected"))
    me = whoami(console_server, value)
    assert me.status_code == 200 and me.json()["token_name"] == name and me.json()["role"] == "operator"
    row = token_row(page, name)
    expect(row).to_contain_text("operator")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text(value[:8])  # the prefix, the only part kept readable
    expect(row).to_contain_text("in 30 d")

    page.get_by_role("button", name="Done").click()
    expect(page.get_by_label("New token")).to_have_count(0)
    assert value not in page.content()

    # revoke, after a confirmation (cancel first: nothing happens)
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_contain_text("Its API calls and console sessions stop at once")
    row.get_by_role("button", name="Cancel").click()
    assert whoami(console_server, value).status_code == 200
    row.get_by_role("button", name="Revoke").click()
    row.get_by_role("button", name="Confirm revoke").click()
    expect(page.get_by_text(f'Token "{name}" revoked.')).to_be_visible()
    row = token_row(page, name)
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    assert whoami(console_server, value).status_code == 401
    shot(page, "tokens-revoked")
    assert not watched.errors, watched.errors


def test_a_shown_once_token_leaves_the_page_with_it(signed_in: Callable[[str], Watched],
                                                      console_server: Server) -> None:
    watched = signed_in("admin")
    page = watched.page
    page.goto("/tokens")
    settle(page)
    page.get_by_label("Name").fill(unique("left behind"))
    page.get_by_role("button", name="Create token").click()
    value = page.get_by_label("New token").input_value()
    assert value.startswith("pmap_")
    page.get_by_role("link", name="Catalog").click()
    settle(page)
    page.go_back()  # back (and forward) cache or not, the value is gone from the page
    settle(page)
    expect(page.get_by_label("New token")).to_have_count(0)
    assert value not in page.content()
    # shown once on purpose (in that one answer): nowhere else, not in a URL, the storage or PMAP's log
    assert not any(value in url for url in watched.requests)
    assert value not in storage_dump(watched)
    assert value not in console_server.log_text()
    assert_no_secret(watched, console_server, [console_server.admin_token])


def test_an_invalid_token_form_shows_the_problem_and_creates_nothing(signed_in: Callable[[str], Watched],
                                                                    console_server: Server) -> None:
    before = console_server.api("GET", "/tokens", params={"limit": 1}).json()["total"]
    watched = signed_in("admin")
    page = watched.page
    page.goto("/tokens")
    settle(page)
    page.get_by_label("Expires in days").fill("0")
    page.get_by_label("Name").fill(unique("bad expiry"))
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_contain_text("Expires in days: a whole number from 1 to 3650")
    # a blank name goes to the API, whose refusal names the field
    page.get_by_label("Expires in days").fill("")
    page.get_by_label("Name").fill("   ")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_contain_text("name")
    expect(page.get_by_label("New token")).to_have_count(0)
    assert console_server.api("GET", "/tokens", params={"limit": 1}).json()["total"] == before
    shot(page, "tokens-invalid")


@pytest.fixture()
def lone_admin_server(tmp_path: Path) -> Iterator[Server]:
    """A PMAP of its own whose only admin token is the bootstrap one (revoking tokens here harms no other test)."""
    server = start_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_revoking_the_last_admin_token_shows_the_apis_refusal(browser: Browser, lone_admin_server: Server) -> None:
    watched = watch(browser, lone_admin_server.base_url)
    try:
        page = sign_in(watched, lone_admin_server.admin_token)
        page.goto("/tokens")
        settle(page)
        row = token_row(page, "bootstrap-admin")
        row.get_by_role("button", name="Revoke").click()
        row.get_by_role("button", name="Confirm revoke").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(re.compile("without an active admin token"))
        expect(token_row(page, "bootstrap-admin")).to_contain_text("active")
        assert whoami(lone_admin_server, lone_admin_server.admin_token).status_code == 200
        shot(page, "tokens-last-admin-refused")
        assert_no_secret(watched, lone_admin_server, [lone_admin_server.admin_token])
    finally:
        watched.context.close()


def test_audit_filters_applied_while_the_first_page_loads_win(
        signed_in: Callable[[str], Watched], console_server: Server) -> None:
    """Filters applied while the unfiltered first page is still loading are the ones drawn: the older answer,
    arriving last, neither replaces the filtered page nor swallows the click (CI saw 23 unfiltered rows)."""
    watched = signed_in("admin")
    page = watched.page
    first = FirstRequestHeld(page, "**/api/v1/audit-events?*")
    page.goto("/audit")
    settle(page)
    first.wait()
    rows = page.locator("tbody tr")
    page.get_by_label("Actor").fill("system:bootstrap")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    first.release()  # the unfiltered answer would now arrive last
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("system:bootstrap")
    expect(page.locator(".audit-results")).not_to_have_attribute("aria-busy", "true")


def test_audit_actor_and_time_range_filters(signed_in: Callable[[str], Watched], console_server: Server) -> None:
    watched = signed_in("admin")
    page = watched.page
    page.goto("/audit")
    settle(page)
    rows = page.locator("tbody tr")
    page.get_by_label("Actor").fill("system:bootstrap")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("system:bootstrap")
    page.get_by_label("Actor").fill("")
    page.get_by_label("From").fill("2000-01-01T00:00")
    page.get_by_label("Until").fill("2099-01-01T00:00")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows.first).to_be_visible()
    page.get_by_label("Until").fill("2000-01-02T00:00")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("No audit event matches these filters.")).to_be_visible()
    shot(page, "audit-actor-time-filters")
