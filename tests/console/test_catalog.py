"""The catalog page in a real browser: the nine categories, every vendor type, the filter, role-aware links."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import expect

from pmap.connectors.base import Category
from tests.console.harness import Server, Watched, settle, shot


def catalog_types(server: Server) -> list[dict[str, object]]:
    r = server.api("GET", "/connector-types", role="viewer")
    assert r.status_code == 200, r.text
    types: list[dict[str, object]] = r.json()
    return types


def test_catalog_shows_every_category_and_vendor_type_with_what_it_does(
        signed_in: Callable[[str], Watched], console_server: Server) -> None:
    types = catalog_types(console_server)
    watched = signed_in("operator")
    page = watched.page
    page.goto("/catalog")
    settle(page)
    # the nine categories, each a section with its heading, and every vendor type once
    expect(page.locator("section.category")).to_have_count(len(Category))
    for category in Category:
        expect(page.locator(f"section#category-{category.value} h2")).to_be_visible()
    expect(page.locator("article.vendor")).to_have_count(len(types))
    expect(page.get_by_role("status").filter(has_text="vendor types")).to_contain_text(
        f"{len(types)} of {len(types)} vendor types in 9 categories")
    for t in types:
        card = page.locator(f'article.vendor[data-vendor="{t["vendor"]}"]')
        expect(card).to_contain_text(str(t["display_name"]))
        assert card.locator("xpath=ancestor::section[1]").get_attribute("id") == f"category-{t['category']}"

    nessus = page.locator('article.vendor[data-vendor="nessus"]')
    # an operator starts creating an integration of the vendor from its name
    link = nessus.get_by_role("link", name="Nessus", exact=True)
    expect(link).to_have_attribute("href", "/integrations/new?vendor=nessus")
    for text in ("Test connection", "Launch scan", "Permissions check", "nessus", "tenable_csv", "no webhooks"):
        expect(nessus).to_contain_text(text)
    docs = nessus.get_by_role("link", name=re.compile("Nessus documentation"))
    expect(docs).to_have_attribute("href", "https://docs.tenable.com/nessus/")
    rel = docs.get_attribute("rel") or ""
    assert {"noopener", "noreferrer"} <= set(rel.split())
    # a webhook scheme, and a file-only type
    expect(page.locator('article.vendor[data-vendor="sonarqube"]')).to_contain_text("sonarqube")
    expect(page.locator('article.vendor[data-vendor="sonarqube"]')).to_contain_text("Register webhook")
    nmap = page.locator('article.vendor[data-vendor="nmap"]')
    expect(nmap).to_contain_text("file import only")
    expect(nmap).to_contain_text("nmap_xml")
    shot(page, "catalog")

    # the in-page filter: a labelled search box narrowing the cards and the categories shown
    search = page.get_by_label("Filter vendor types")
    search.fill("nmap_xml")
    expect(page.locator("article.vendor:visible")).to_have_count(1)
    expect(nmap).to_be_visible()
    expect(nessus).to_be_hidden()
    expect(page.locator("section#category-ticketing")).to_be_hidden()
    search.fill("ticketing")
    ticketing = sum(1 for t in types if t["category"] == "ticketing")
    expect(page.locator("article.vendor:visible")).to_have_count(ticketing)
    search.fill("no-such-vendor-zz")
    expect(page.get_by_text("No vendor type matches the filter.")).to_be_visible()
    shot(page, "catalog-filtered-empty")
    search.fill("")
    expect(page.locator("article.vendor:visible")).to_have_count(len(types))
    assert not watched.errors, watched.errors


def test_a_viewer_sees_the_catalog_without_create_links(signed_in: Callable[[str], Watched]) -> None:
    watched = signed_in("viewer")
    page = watched.page
    page.goto("/catalog")
    settle(page)
    nessus = page.locator('article.vendor[data-vendor="nessus"]')
    expect(nessus.get_by_role("heading", name=re.compile("^Nessus"))).to_be_visible()
    expect(nessus.get_by_role("link", name="Nessus", exact=True)).to_have_count(0)
    expect(page.locator('a[href^="/integrations/new"]')).to_have_count(0)
    # the documentation links stay
    expect(nessus.get_by_role("link", name=re.compile("Nessus documentation"))).to_be_visible()
    shot(page, "catalog-viewer")
