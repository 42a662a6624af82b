"""Sign-in, sessions and sign-out in a real browser; the console's posture headers."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser, expect

from tests.console.harness import Server, settle, shot, sign_in, watch


def test_sign_in_shows_the_integrations_and_sign_out_ends_the_session(browser: Browser,
                                                                     console_server: Server) -> None:
    watched = watch(browser, console_server.base_url)
    page = watched.page
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    shot(page, "sign-in")
    sign_in(watched, console_server.admin_token)
    settle(page)
    expect(page.get_by_role("link", name="Integrations")).to_be_visible()
    cookies = watched.context.cookies()
    session = [c for c in cookies if c["name"] == "pmap_session"]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    value = session[0]["value"]
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    # ended on the server: the old cookie, replayed, opens nothing
    r = httpx.get(f"{console_server.base_url}/api/v1/whoami", cookies={"pmap_session": value}, trust_env=False)
    assert r.status_code == 401
    watched.context.close()


def test_a_wrong_token_is_refused_and_not_echoed(browser: Browser, console_server: Server) -> None:
    watched = watch(browser, console_server.base_url)
    page = watched.page
    page.goto("/sign-in")
    page.get_by_label("API token").fill("pmap_not-a-real-token-canary")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid, expired or revoked token")
    assert "not-a-real-token-canary" not in page.content()
    watched.context.close()
