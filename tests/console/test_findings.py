"""Findings in a real browser: filters kept in the query string, counts drawn as charts with their numbers
readable, a finding's evidence and severity provenance, markup in titles shown as text, opening a ticket."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from pmap_sandbox.server import SandboxServer
from tests.console.harness import Server, Watched, create_integration, settle, shot
from tests.findings.pipeline.helpers import TENABLE_CREDS, nessus_report

MARKUP = "<script>window.__pwned=1</script><img src=x onerror='window.__pwned=2'>"


def _integration(server: Server, name: str) -> dict[str, Any]:
    r = server.api("POST", "/integrations", json={"name": name, "vendor": "tenable_vm",
                                                  "credentials": TENABLE_CREDS})
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def _import(server: Server, integration_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    r = server.api("POST", f"/integrations/{integration_id}/imports", role="operator",
                   files={"file": ("report.nessus", nessus_report(items))})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def _findings(server: Server, **query: Any) -> list[dict[str, Any]]:
    r = server.api("GET", "/findings", params={"limit": 500, **query})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


@pytest.fixture()
def seeded(console_server: Server) -> dict[str, Any]:
    """Two integrations, each with a small imported report; one finding's title holds markup."""
    tag = secrets.token_hex(4)
    a = _integration(console_server, f"scan A {tag}")
    b = _integration(console_server, f"scan B {tag}")
    a_items = [
        {"plugin": 1001, "name": f"Critical thing {tag}", "severity": 4, "host": "10.1.0.1", "cve": "CVE-2021-44228"},
        {"plugin": 1002, "name": f"High one {tag}", "severity": 3, "host": "10.1.0.1"},
        {"plugin": 1003, "name": f"High two {tag}", "severity": 3, "host": "10.1.0.2"},
        {"plugin": 1004, "name": f"Medium {tag}", "severity": 2, "host": "10.1.0.2",
         "description": "line one\nline two\n" + "long evidence " * 20},
        {"plugin": 1005, "name": f"{MARKUP} {tag}", "severity": 1, "host": "10.1.0.3"},
    ]
    b_items = [{"plugin": 2001, "name": f"Other high {tag}", "severity": 3, "host": "10.2.0.1"}]
    _import(console_server, a["id"], a_items)
    _import(console_server, b["id"], b_items)
    return {"tag": tag, "a": a, "b": b}


def _rows(page: Page) -> Any:
    return page.get_by_role("table", name="Findings, newest first").locator("tbody tr")


def test_filter_by_integration_and_severity_and_the_charts(signed_in: Any, console_server: Server,
                                                           seeded: dict[str, Any]) -> None:
    watched: Watched = signed_in("viewer")
    page = watched.page
    a, tag = seeded["a"], seeded["tag"]
    page.goto("/findings")
    settle(page)
    page.get_by_label("Integration", exact=True).select_option(a["id"])
    page.get_by_label("High", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    # the filters live in the query string: the view can be linked
    expect(page).to_have_url(re.compile(r"/findings\?"))
    query = parse_qs(urlparse(page.url).query)
    assert query["integration_id"] == [a["id"]] and query["severity"] == ["high"]
    rows = _rows(page)
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text=f"High one {tag}")).to_have_count(1)
    expect(rows.filter(has_text=f"High two {tag}")).to_have_count(1)
    expected = {f["title"] for f in _findings(console_server, integration_id=a["id"], severity="high")}
    assert expected == {f"High one {tag}", f"High two {tag}"}
    shot(page, "findings-filtered")

    # a linked view opens with the same filters applied and checked
    page.goto(f"/findings?integration_id={a['id']}&severity=critical&severity=low")
    settle(page)
    expect(page.get_by_label("Critical", exact=True)).to_be_checked()
    expect(page.get_by_label("Low", exact=True)).to_be_checked()
    expect(page.get_by_label("High", exact=True)).not_to_be_checked()
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text=f"Critical thing {tag}")).to_have_count(1)

    # the counts, for the integration alone
    page.goto(f"/findings?integration_id={a['id']}")
    settle(page)
    expect(rows).to_have_count(5)
    chart = page.get_by_role("img", name=re.compile(r"^Findings by severity:"))
    expect(chart).to_have_attribute("aria-label", "Findings by severity: Critical 1, High 2, Medium 1, Low 1, Info 0")
    numbers = page.get_by_role("table", name="Findings by severity")
    for label, n in (("Critical", "1"), ("High", "2"), ("Medium", "1"), ("Low", "1"), ("Info", "0")):
        expect(numbers.get_by_role("row", name=re.compile(rf"^{label} ")).get_by_role("cell")).to_have_text(n)
    by_integration = page.get_by_role("table", name="Findings by integration")
    expect(by_integration.get_by_role("row", name=re.compile(re.escape(a["name"])))).to_contain_text("5")
    expect(page.get_by_text(re.compile(r"^5 findings match\.$"))).to_be_visible()
    shot(page, "findings-one-integration")

    # every integration: the per-integration chart names both of ours with their totals
    page.goto(f"/findings?title={tag}")
    settle(page)
    expect(rows).to_have_count(6)
    chart = page.get_by_role("img", name=re.compile(r"^Findings by integration:"))
    expect(chart).to_have_attribute("aria-label", re.compile(re.escape(f"scan A {tag} 5 (Critical 1, High 2, ")))
    expect(chart).to_have_attribute("aria-label", re.compile(re.escape(f"scan B {tag} 1 (High 1)")))
    expect(page.get_by_role("img", name=re.compile(r"^Findings by severity:"))).to_have_attribute(
        "aria-label", "Findings by severity: Critical 1, High 3, Medium 1, Low 1, Info 0")
    shot(page, "findings")
    # a severity in the numbers' table opens the same view narrowed to it
    page.get_by_role("table", name="Findings by severity").get_by_role("link", name="High").click()
    expect(page).to_have_url(re.compile(r"severity=high"))
    settle(page)
    expect(rows).to_have_count(3)
    assert parse_qs(urlparse(page.url).query)["title"] == [tag]
    page.set_viewport_size({"width": 420, "height": 900})
    expect(page.get_by_role("button", name="Apply filters")).to_be_visible()
    shot(page, "findings-narrow")
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console


def test_markup_in_a_title_is_text_and_the_detail_shows_provenance(signed_in: Any, console_server: Server,
                                                                   seeded: dict[str, Any]) -> None:
    watched: Watched = signed_in("viewer")
    page = watched.page
    tag, a = seeded["tag"], seeded["a"]
    title = f"{MARKUP} {tag}"
    page.goto(f"/findings?integration_id={a['id']}&severity=low")
    settle(page)
    link = page.get_by_role("link", name=title)
    expect(link).to_have_count(1)
    expect(link).to_have_text(title)
    assert page.locator("#app img").count() == 0 and page.locator("#app script").count() == 0
    link.click()
    expect(page).to_have_url(re.compile(r"/findings/[0-9a-f-]{36}$"))
    settle(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    assert page.locator("#app img").count() == 0 and page.locator("#app script").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")
    assert not watched.dialogs

    # provenance of the critical finding: the vendor's value, the mapped one, the threshold, no rule
    finding = next(f for f in _findings(console_server, integration_id=a["id"]) if f["title"].startswith("Critical"))
    page.goto(f"/findings/{finding['id']}")
    settle(page)
    provenance = page.get_by_role("region", name="Severity provenance")
    expect(provenance).to_contain_text(f"Vendor value{finding['vendor_severity']}")
    expect(provenance).to_contain_text("Mapped valuecritical")
    expect(provenance).to_contain_text(f"Integration threshold{a['severity_threshold']}")
    expect(provenance).to_contain_text(f"Set by{finding['severity_source']}")
    expect(provenance).to_contain_text("Rule that set itno rule")
    expect(page.get_by_role("region", name="Finding", exact=True)).to_contain_text("CVE-2021-44228")
    shot(page, "finding-detail")
    # long evidence is in <pre>
    medium = next(f for f in _findings(console_server, integration_id=a["id"]) if f["title"].startswith("Medium"))
    page.goto(f"/findings/{medium['id']}")
    settle(page)
    expect(page.get_by_role("region", name="Evidence").locator("pre").first).to_contain_text("line one\nline two")
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console


def test_a_rule_set_severity_is_named_in_the_provenance(signed_in: Any, console_server: Server) -> None:
    tag = secrets.token_hex(4)
    r = console_server.api("POST", "/rules", role="operator", json={
        "name": f"lab is low {tag}", "condition": f'title.contains("{tag}-lab")', "action": "set_severity",
        "value": "low"})
    assert r.status_code == 201, r.text
    rule = r.json()
    integration = _integration(console_server, f"lab {tag}")
    _import(console_server, integration["id"],
            [{"plugin": 3001, "name": f"Lab box {tag}-lab", "severity": 4, "host": "10.3.0.1"}])
    finding = _findings(console_server, integration_id=integration["id"])[0]
    assert finding["severity_rule_id"] == rule["id"]
    watched: Watched = signed_in("viewer")
    page = watched.page
    page.goto(f"/findings/{finding['id']}")
    settle(page)
    provenance = page.get_by_role("region", name="Severity provenance")
    expect(provenance).to_contain_text("Mapped valuecritical")
    expect(provenance).to_contain_text("Final severitylow")
    rule_link = provenance.get_by_role("link", name=f"lab is low {tag}")
    expect(rule_link).to_have_attribute("href", f"/rules#rule-{rule['id']}")
    shot(page, "finding-detail-rule")
    # viewers are not offered to open a ticket
    expect(page.get_by_role("button", name="Open ticket")).to_have_count(0)
    assert console_server.api("DELETE", f"/rules/{rule['id']}", role="operator").status_code == 204


def test_an_operator_opens_a_ticket_and_a_refused_one_shows_its_step(signed_in: Any, console_server: Server,
                                                                     console_sandbox: SandboxServer,
                                                                     seeded: dict[str, Any]) -> None:
    tag = seeded["tag"]
    good = create_integration(console_server, console_sandbox.base_url, "github_issues", name=f"issues ok {tag}")
    bad = create_integration(console_server, console_sandbox.base_url, "github_issues", marker="bad",
                             name=f"issues bad {tag}")
    finding = next(f for f in _findings(console_server, integration_id=seeded["a"]["id"])
                   if f["title"].startswith("High one"))
    watched: Watched = signed_in("operator")
    page = watched.page
    page.goto(f"/findings/{finding['id']}")
    settle(page)
    tickets = page.get_by_role("region", name="Tickets")
    expect(tickets).to_contain_text("No ticket has been opened for this finding.")
    page.get_by_label("Ticketing integration").select_option(bad["id"])
    page.get_by_role("button", name="Open ticket").click()
    alert = tickets.get_by_role("alert")
    expect(alert).to_contain_text("Failed step: auth", timeout=30_000)
    shot(page, "finding-ticket-refused")
    page.get_by_label("Ticketing integration").select_option(good["id"])
    page.get_by_role("button", name="Open ticket").click()
    expect(tickets.get_by_role("status").filter(has_text="is open")).to_be_visible(timeout=30_000)
    linked = console_server.api("GET", f"/findings/{finding['id']}/tickets").json()
    assert [t["integration_id"] for t in linked] == [good["id"]]
    key = linked[0]["key"]
    expect(tickets.get_by_role("table", name="Tickets opened for this finding")).to_contain_text(key)
    shot(page, "finding-ticket-opened")
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console


def test_a_server_without_counts_shows_a_notice_and_the_list(signed_in: Any, seeded: dict[str, Any]) -> None:
    """The counts are a separate call: when it is missing (an older server), the list still works."""
    watched: Watched = signed_in("viewer")
    page = watched.page
    page.route(re.compile(r".*/api/v1/findings/counts(\?.*)?$"), lambda route: route.fulfill(
        status=404, content_type="application/json",
        body='{"error": {"code": "not_found", "message": "not found", "fields": []}}'))
    page.goto(f"/findings?integration_id={seeded['a']['id']}")
    settle(page)
    expect(page.get_by_text("Counts are not available from this server")).to_be_visible()
    expect(_rows(page)).to_have_count(5)
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console


def test_cursor_pagination_walks_the_pages(signed_in: Any, console_server: Server) -> None:
    tag = secrets.token_hex(4)
    integration = _integration(console_server, f"many {tag}")
    _import(console_server, integration["id"],
            [{"plugin": 5000 + n, "name": f"Many {n:02d} {tag}", "severity": 2, "host": f"10.5.0.{n}"}
             for n in range(55)])
    watched: Watched = signed_in("viewer")
    page = watched.page
    page.goto(f"/findings?integration_id={integration['id']}")
    settle(page)
    rows = _rows(page)
    expect(rows).to_have_count(50)
    expect(page.get_by_role("button", name="Previous page")).to_be_disabled()
    expect(page.get_by_text(re.compile(r"^55 findings match\.$"))).to_be_visible()
    first_page = rows.locator("td:nth-child(2)").all_text_contents()
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(5)
    expect(page.get_by_text("Page 2", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    second_page = rows.locator("td:nth-child(2)").all_text_contents()
    assert len(set(first_page) | set(second_page)) == 55
    page.get_by_role("button", name="Previous page").click()
    expect(rows).to_have_count(50)
    assert rows.locator("td:nth-child(2)").all_text_contents() == first_page
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console
