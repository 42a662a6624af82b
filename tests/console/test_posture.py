"""The posture of the console's pages, checked in a real browser against every page.

Each answer carries the strict Content-Security-Policy and its companions; no request leaves PMAP's origin, no
CSP violation or page error shows; /docs renders Swagger UI from PMAP's own files (their integrity attributes
match); the pages are usable at 1280x800 and on a narrow phone-sized window; the session cookie is HttpOnly and
SameSite=Strict and the CSRF token is required; sign-out and token revocation end sessions on the server; a viewer
sees no write control and is refused by the server anyway; markup in data renders as text.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, Response, ViewportSize, expect

from pmap.console.assets import STATIC_DIR
from pmap.console.pages import PAGES
from pmap_sandbox.server import SandboxServer
from tests.console.harness import (
    CHROMIUM_ARGS,
    Server,
    Watched,
    assert_no_secret,
    chromium_or_fail,
    settle,
    shot,
    sign_in,
    watch,
)
from tests.findings.pipeline.helpers import sarif_report
from tests.webhooks.conftest import integration_body

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 844}
COOKIE = "pmap_session"
INJECTED_IMG = '<img src=x onerror="window.__pwned=1">'
INJECTED_SCRIPT = "<script>window.__pwned=1</script>"


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class World:
    """What the pages show: an integration (its secrets kept as canaries) and a finding of an imported report."""

    integration_id: str
    integration_name: str
    secrets: list[str]
    finding_id: str


@pytest.fixture(scope="module")
def world(console_server: Server, console_sandbox: SandboxServer) -> World:
    body = integration_body("nessus", console_sandbox.base_url, "ok", unique("posture"))
    r = console_server.api("POST", "/integrations", json=body)
    assert r.status_code == 201, r.text
    integration = r.json()
    canaries = [v for v in body["credentials"].values() if len(v) >= 8 and "ok" in v]
    assert canaries, body["credentials"]
    files = console_server.api("POST", "/integrations", json={"name": unique("posture sarif"), "vendor": "sarif"})
    assert files.status_code == 201, files.text
    report = sarif_report([{"rule": unique("R"), "message": "posture finding"}])
    imported = console_server.api("POST", f"/integrations/{files.json()['id']}/imports",
                                  files={"file": ("report.sarif", report)})
    assert imported.status_code == 200, imported.text
    found = console_server.api("GET", "/findings", params={"integration_id": files.json()["id"], "limit": 1})
    assert found.status_code == 200 and found.json()["items"], found.text
    return World(integration["id"], integration["name"], canaries, found.json()["items"][0]["id"])


def script_of(path: str) -> str | None:
    """The script drawing a console page at ``path`` (None for /sign-in and /docs)."""
    for page in PAGES:
        pattern = "^" + re.sub(r"\{[a-z_]+\}", "[^/]+", page.path) + "$"
        if re.match(pattern, path):
            return page.script
    return None


def require_page(path: str) -> None:
    """A page whose script another part of the console builds is checked once that script is in this tree."""
    script = script_of(path)
    if script and not (STATIC_DIR / "js" / "pages" / f"{script}.js").is_file():
        pytest.skip(f"{path}: pages/{script}.js is not in this tree yet")


def csp_directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def assert_posture_headers(response: Response | None, where: str) -> None:
    assert response is not None, where
    headers = response.headers
    csp = headers.get("content-security-policy", "")
    directives = csp_directives(csp)
    assert directives.get("script-src") == ["'self'"], (where, csp)
    assert directives.get("frame-ancestors") == ["'none'"], (where, csp)
    assert directives.get("default-src") == ["'none'"], (where, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (where, csp)
    assert not re.search(r"https?:|\*", csp), f"{where}: a third-party origin in the CSP: {csp}"
    assert headers.get("referrer-policy") == "no-referrer", where
    assert headers.get("x-content-type-options") == "nosniff", where


def assert_stayed_home(watched: Watched, base_url: str) -> None:
    """No request left PMAP's origin, no CSP violation was logged, no script failed."""
    away = [u for u in watched.requests if not (u.startswith(base_url + "/") or u.startswith(("data:", "blob:")))]
    assert not away, f"requests left the origin: {away}"
    refused = [m for m in watched.console if "Refused to" in m or "Content Security Policy" in m]
    assert not refused, f"CSP violations: {refused}"
    assert not watched.errors, f"page errors: {watched.errors}"


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
        " && document.body.scrollWidth <= document.documentElement.clientWidth + 1"))


def slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"


PAGE_PATHS = ["/integrations", "/integrations/new", "/integrations/{iid}", "/integrations/{iid}/edit", "/catalog",
              "/findings", "/findings/{fid}", "/rules", "/audit", "/tokens"]


def concrete(path: str, world: World) -> str:
    return path.replace("{iid}", world.integration_id).replace("{fid}", world.finding_id)


def visit(page: Page, path: str) -> Response | None:
    response = page.goto(path)
    settle(page)
    return response


# ---- every page: headers, origin, no violations, two sizes ------------------------------------------------------

def check_both_sizes(watched: Watched, path: str, name: str, ready: Callable[[Page], None]) -> None:
    page = watched.page
    page.set_viewport_size(DESKTOP)
    response = page.goto(path)
    ready(page)
    assert_posture_headers(response, path)
    expect(page.locator("h1").first).to_be_visible()
    shot(page, f"posture-{name}-1280x800")
    page.set_viewport_size(NARROW)
    response = page.reload()
    ready(page)
    assert_posture_headers(response, path)
    expect(page.locator("h1").first).to_be_in_viewport()
    shot(page, f"posture-{name}-390x844")
    assert no_horizontal_scroll(page), f"{path} scrolls sideways at 390 px"


@pytest.mark.parametrize("template", PAGE_PATHS)
def test_every_console_page_keeps_its_posture_at_both_sizes(template: str, world: World, console_server: Server,
                                                           signed_in: Callable[[str], Watched]) -> None:
    path = concrete(template, world)
    require_page(path)
    watched = signed_in("admin")
    check_both_sizes(watched, path, slug(template), settle)
    expect(watched.page.locator("#app .notice.error")).to_have_count(0)
    # every same-origin answer the page needed (documents, scripts, styles, API) carries nosniff and the CSP
    assert watched.headers
    for headers in watched.headers:
        assert "('x-content-type-options', 'nosniff')" in headers
        assert "content-security-policy" in headers
    assert_stayed_home(watched, console_server.base_url)
    assert_no_secret(watched, console_server, [console_server.admin_token, *world.secrets])


def test_the_sign_in_page_keeps_its_posture_at_both_sizes(browser: Browser, console_server: Server) -> None:
    watched = watch(browser, console_server.base_url)
    try:
        check_both_sizes(watched, "/sign-in", "sign-in", lambda p: expect(p.get_by_label("API token")).to_be_visible())
        expect(watched.page.get_by_role("button", name="Sign in")).to_be_visible()
        assert_stayed_home(watched, console_server.base_url)
    finally:
        watched.context.close()


def test_docs_render_swagger_ui_from_pmaps_own_files(signed_in: Callable[[str], Watched],
                                                     console_server: Server) -> None:
    watched = signed_in("viewer")
    page = watched.page
    response = page.goto("/docs")
    assert_posture_headers(response, "/docs")
    # the operations of /openapi.json, drawn with no internet (the machine has none; nothing was asked of it)
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
    assert page.locator(".opblock").count() > 20
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/connector-types").first).to_be_visible()
    tagged = page.locator("script[src], link[rel=stylesheet]")
    vendor = 0
    for i in range(tagged.count()):
        element = tagged.nth(i)
        src = element.get_attribute("src") or element.get_attribute("href") or ""
        assert src.startswith("/assets/"), f"/docs loads {src}"
        if src.startswith("/assets/vendor/"):
            vendor += 1
            integrity = element.get_attribute("integrity") or ""
            assert integrity.startswith("sha384-"), src
            served = httpx.get(console_server.base_url + src, timeout=30, trust_env=False)
            assert served.status_code == 200
            digest = "sha384-" + base64.b64encode(hashlib.sha384(served.content).digest()).decode()
            assert digest == integrity, f"{src}: its integrity attribute does not match what is served"
    assert vendor == 2
    shot(page, "posture-docs-1280x800")
    page.set_viewport_size(NARROW)
    page.reload()
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
    shot(page, "posture-docs-390x844")  # Swagger UI's own layout: no sideways-scroll claim made for it
    assert any("/openapi.json" in u for u in watched.requests)
    assert_stayed_home(watched, console_server.base_url)


@pytest.fixture()
def named_host_browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """A chromium that reaches PMAP by a name that is not loopback's (as a production host would be)."""
    b = playwright_driver.chromium.launch(executable_path=chromium_or_fail(),
                                          args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP pmap.test 127.0.0.1"])
    try:
        yield b
    finally:
        b.close()


def test_docs_on_a_named_host_ask_no_third_party_validator(named_host_browser: Browser,
                                                           console_server: Server) -> None:
    base = console_server.base_url.replace("127.0.0.1", "pmap.test")
    watched = watch(named_host_browser, base)
    try:
        page = watched.page
        page.goto("/docs")  # /docs needs no session
        # Swagger UI draws a badge from validator.swagger.io for a spec on a host that is not loopback's, when
        # its layout has one (BaseLayout, used here, has none): nothing may be asked of a third party
        expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
        expect(page.locator(".opblock")).not_to_have_count(0)
        page.wait_for_load_state("networkidle")
        expect(page.locator('img[src*="validator.swagger.io"]')).to_have_count(0)
        assert_stayed_home(watched, base)
    finally:
        watched.context.close()


# ---- sessions: cookie, CSRF, sign-out, revocation ---------------------------------------------------------------

def session_cookie(watched: Watched) -> dict[str, Any]:
    cookies = [c for c in watched.context.cookies() if c["name"] == COOKIE]
    assert len(cookies) == 1
    return dict(cookies[0])


def csrf_of(page: Page) -> str:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return token


def token_names(server: Server) -> set[str]:
    names: set[str] = set()
    cursor = None
    while True:
        r = server.api("GET", "/tokens", params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        names |= {t["name"] for t in r.json()["items"]}
        cursor = r.json()["next_cursor"]
        if not cursor:
            return names


def test_the_session_cookie_is_strict_and_a_cross_site_post_without_the_csrf_token_is_refused(
        signed_in: Callable[[str], Watched], console_server: Server) -> None:
    watched = signed_in("admin")
    page = watched.page
    visit(page, "/tokens")
    cookie = session_cookie(watched)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("() => document.cookie").find(COOKIE) == -1  # not readable by the page's scripts
    csrf = csrf_of(page)
    url = f"{console_server.base_url}/api/v1/tokens"
    jar = {COOKIE: cookie["value"]}
    refused_name = unique("csrf refused")
    forged = httpx.post(url, json={"name": refused_name, "role": "admin"}, cookies=jar, trust_env=False, timeout=30,
                        headers={"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403, forged.text
    wrong = httpx.post(url, json={"name": refused_name, "role": "admin"}, cookies=jar, trust_env=False, timeout=30,
                       headers={"X-CSRF-Token": csrf[::-1]})
    assert wrong.status_code == 403, wrong.text
    assert refused_name not in token_names(console_server)
    # the same request with the session's CSRF token passes
    passed_name = unique("csrf passed")
    ok = httpx.post(url, json={"name": passed_name, "role": "viewer"}, cookies=jar, trust_env=False, timeout=30,
                    headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text
    assert passed_name in token_names(console_server)
    assert console_server.api("DELETE", f"/tokens/{ok.json()['id']}").status_code == 200
    # sign-out, too, needs the token: a forged sign-out ends nothing
    forged_out = httpx.post(f"{console_server.base_url}/sign-out", cookies=jar, trust_env=False, timeout=30)
    assert forged_out.status_code == 403
    assert httpx.get(f"{console_server.base_url}/api/v1/whoami", cookies=jar, trust_env=False).status_code == 200


def test_sign_out_ends_the_session_on_the_server(signed_in: Callable[[str], Watched], console_server: Server) -> None:
    watched = signed_in("operator")
    page = watched.page
    visit(page, "/catalog")
    value = session_cookie(watched)["value"]
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    jar = {COOKIE: value}
    assert httpx.get(f"{console_server.base_url}/api/v1/whoami", cookies=jar, trust_env=False).status_code == 401
    replay = httpx.get(f"{console_server.base_url}/catalog", cookies=jar, trust_env=False)
    assert replay.status_code == 303 and replay.headers["location"] == "/sign-in"
    page.goto("/catalog")
    expect(page).to_have_url(re.compile(r"/sign-in$"))


def test_a_session_ends_when_its_token_is_revoked(browser: Browser, console_server: Server) -> None:
    created = console_server.api("POST", "/tokens", json={"name": unique("soon revoked"), "role": "operator"})
    assert created.status_code == 201, created.text
    watched = watch(browser, console_server.base_url)
    try:
        page = sign_in(watched, created.json()["token"])
        visit(page, "/catalog")
        value = session_cookie(watched)["value"]
        assert console_server.api("DELETE", f"/tokens/{created.json()['id']}").status_code == 200
        page.reload()
        expect(page).to_have_url(re.compile(r"/sign-in$"))
        r = httpx.get(f"{console_server.base_url}/api/v1/whoami", cookies={COOKIE: value}, trust_env=False)
        assert r.status_code == 401
        assert_no_secret(watched, console_server, [created.json()["token"]])
    finally:
        watched.context.close()


# ---- a viewer: no write control drawn, and refused by the server anyway ----------------------------------------

WRITE_CONTROL = re.compile(r"^\s*(Edit|Delete|Reveal|Regenerate|New integration|Generate|Revoke|Create token)\b")


@pytest.mark.parametrize("template", ["/integrations", "/integrations/{iid}", "/catalog", "/findings",
                                      "/findings/{fid}", "/rules"])
def test_a_viewer_sees_no_write_controls(template: str, world: World, signed_in: Callable[[str], Watched]) -> None:
    path = concrete(template, world)
    require_page(path)
    watched = signed_in("viewer")
    page = watched.page
    visit(page, path)
    expect(page.locator("#app .notice.error")).to_have_count(0)
    expect(page.get_by_role("button", name=WRITE_CONTROL)).to_have_count(0)
    expect(page.get_by_role("link", name=WRITE_CONTROL)).to_have_count(0)
    expect(page.locator('a[href$="/edit"], a[href^="/integrations/new"]')).to_have_count(0)
    shot(page, f"viewer-{slug(template)}")


def test_a_viewers_writes_are_refused_by_the_server(world: World, signed_in: Callable[[str], Watched],
                                                    console_server: Server, console_sandbox: SandboxServer) -> None:
    watched = signed_in("viewer")
    page = watched.page
    for admin_page in ("/integrations/new", f"/integrations/{world.integration_id}/edit", "/audit", "/tokens"):
        response = page.goto(admin_page)
        assert response is not None and response.status == 403, admin_page
    expect(page.get_by_text("This page needs the")).to_be_visible()
    visit(page, "/catalog")
    jar = {COOKIE: session_cookie(watched)["value"]}
    headers = {"X-CSRF-Token": csrf_of(page)}
    base = f"{console_server.base_url}/api/v1"
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/integrations", integration_body("nessus", console_sandbox.base_url, "ok", unique("v"))),
        ("PATCH", f"/integrations/{world.integration_id}", {"name": unique("renamed by a viewer")}),
        ("DELETE", f"/integrations/{world.integration_id}", None),
        ("POST", "/tokens", {"name": unique("viewer's"), "role": "admin"}),
    ]
    for method, path, body in attempts:
        r = httpx.request(method, base + path, cookies=jar, headers=headers, trust_env=False, timeout=30, json=body)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
    still = console_server.api("GET", f"/integrations/{world.integration_id}")
    assert still.status_code == 200 and still.json()["name"] == world.integration_name


# ---- markup in data renders as text -----------------------------------------------------------------------------

def injected_elements(page: Page) -> dict[str, Any]:
    return dict(page.evaluate("""() => ({
        imgs: [...document.querySelectorAll('img')].filter((i) => i.getAttribute('src') === 'x').length,
        scripts: [...document.querySelectorAll('script')].filter((s) => s.textContent.includes('__pwned')).length,
        pwned: window.__pwned === 1,
    })"""))


def assert_inert(page: Page) -> None:
    assert injected_elements(page) == {"imgs": 0, "scripts": 0, "pwned": False}


def test_markup_in_names_and_audit_details_renders_as_text(signed_in: Callable[[str], Watched],
                                                           console_server: Server,
                                                           console_sandbox: SandboxServer) -> None:
    integration_name = f"{unique('inj')} {INJECTED_IMG}"
    body = integration_body("nessus", console_sandbox.base_url, "ok", integration_name)
    r = console_server.api("POST", "/integrations", json=body)
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    token_name = f"{unique('tok')} {INJECTED_SCRIPT} {INJECTED_IMG}"
    t = console_server.api("POST", "/tokens", json={"name": token_name, "role": "viewer"})
    assert t.status_code == 201, t.text
    watched = signed_in("admin")
    page = watched.page

    visit(page, "/tokens")
    expect(page.get_by_text(token_name, exact=True)).to_be_visible()
    assert_inert(page)
    shot(page, "injection-tokens")

    visit(page, "/audit")
    page.get_by_label("Action").select_option("token.create")
    page.get_by_role("button", name="Apply filters").click()
    detail = page.locator("pre.audit-detail", has_text=t.json()["id"])
    expect(detail).to_contain_text(INJECTED_SCRIPT)  # the detail's JSON, as text, markup and all
    page.get_by_label("Action").select_option("integration.create")
    page.get_by_label("Integration", exact=True).select_option(label=integration_name)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_role("link", name=integration_name)).to_be_visible()
    assert_inert(page)
    shot(page, "injection-audit")

    visit(page, "/catalog")
    page.get_by_label("Filter vendor types").fill(INJECTED_SCRIPT)
    expect(page.get_by_text("No vendor type matches the filter.")).to_be_visible()
    assert_inert(page)

    visit(page, f"/integrations/{iid}")
    expect(page.locator("h1")).to_have_text(integration_name)
    assert_inert(page)
    shot(page, "injection-integration-detail")
    if (STATIC_DIR / "js" / "pages" / "integrations.js").is_file():
        visit(page, "/integrations")
        expect(page.get_by_text(integration_name).first).to_be_visible()
        assert_inert(page)
        shot(page, "injection-integrations")
    assert_stayed_home(watched, console_server.base_url)
    assert_no_secret(watched, console_server, [v for v in body["credentials"].values() if len(v) >= 8])


def test_sign_in_works_over_http_on_a_named_host(named_host_browser: Browser, console_server: Server) -> None:
    base = console_server.base_url.replace("127.0.0.1", "pmap.test")
    watched = watch(named_host_browser, base)
    try:
        sign_in(watched, console_server.tokens["viewer"])
    finally:
        watched.context.close()
