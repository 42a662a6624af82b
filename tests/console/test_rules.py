"""Severity rules in a real browser: live validation showing a compile error at its position, a preview of a rule's
effect, create, reorder and delete by an operator, and a viewer who can change none of it."""

from __future__ import annotations

import re
import secrets
from typing import Any

from playwright.sync_api import Page, expect

from tests.console.harness import Server, Watched, settle, shot
from tests.findings.pipeline.helpers import TENABLE_CREDS, nessus_report

CONDITION = re.compile(r"^Condition")


def _rule(server: Server, name: str, condition: str, action: str = "set_severity",
          value: str | None = "low") -> dict[str, Any]:
    r = server.api("POST", "/rules", role="operator",
                   json={"name": name, "condition": condition, "action": action, "value": value})
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def _rules(server: Server) -> list[dict[str, Any]]:
    r = server.api("GET", "/rules", role="viewer")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _delete_rules(server: Server, tag: str) -> None:
    for rule in _rules(server):
        if tag in rule["name"]:
            server.api("DELETE", f"/rules/{rule['id']}", role="operator")


def _new_rule_form(page: Page) -> None:
    page.goto("/rules")
    settle(page)
    page.get_by_role("button", name="New rule").click()
    expect(page.get_by_role("heading", name="New rule")).to_be_visible()


def test_a_compile_error_is_shown_at_its_position(signed_in: Any, console_server: Server) -> None:
    watched: Watched = signed_in("operator")
    page = watched.page
    condition = 'severity == "high" && port = 443'
    r = console_server.api("POST", "/rules/validate", role="operator",
                           json={"name": "x", "condition": condition, "action": "set_severity", "value": "low"})
    assert r.status_code == 422, r.text
    position = int(re.search(r"at position (\d+)", r.json()["error"]["message"]).group(1))  # type: ignore[union-attr]
    assert condition[position] == "="
    _new_rule_form(page)
    page.get_by_label("Name").fill(f"broken {secrets.token_hex(3)}")
    page.get_by_label(CONDITION).fill(condition)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("does not compile")
    expect(alert).to_contain_text(f"at position {position}")
    marker = page.get_by_label(f"Error at position {position}")
    # the caret sits under the offending character, as text
    expect(marker).to_have_text(f"{condition}\n{' ' * position}^")
    shot(page, "rules-compile-error")
    # a multi-line condition: the marker names its line and column
    page.get_by_label(CONDITION).fill('severity == "high"\n  && hots == "a"')
    expect(page.get_by_role("alert")).to_contain_text("hots")
    expect(page.locator(".rule-caret figcaption")).to_contain_text("line 2, column 6")
    expect(page.locator("pre.rule-error")).to_have_text('  && hots == "a"\n     ^')
    # fixed: it compiles, and the cost is shown
    page.get_by_label(CONDITION).fill('severity == "high" && port == 443')
    expect(page.get_by_role("status").filter(has_text="The rule compiles.")).to_contain_text("per finding alone")
    expect(page.get_by_role("alert")).to_have_count(0)
    # nothing was saved by validating
    assert not [x for x in _rules(console_server) if x["name"].startswith("broken ")]
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console


def test_a_valid_rule_previews_its_effect_and_saves(signed_in: Any, console_server: Server) -> None:
    tag = secrets.token_hex(4)
    r = console_server.api("POST", "/integrations", json={"name": f"rules scan {tag}", "vendor": "tenable_vm",
                                                          "credentials": TENABLE_CREDS})
    assert r.status_code == 201, r.text
    integration = r.json()
    report = nessus_report([{"plugin": 4001, "name": f"Preview me {tag}", "severity": 3, "host": "10.4.0.1"},
                            {"plugin": 4002, "name": f"Preview me too {tag}", "severity": 3, "host": "10.4.0.2"},
                            {"plugin": 4003, "name": f"Not me {tag}", "severity": 2, "host": "10.4.0.3"}])
    r = console_server.api("POST", f"/integrations/{integration['id']}/imports", role="operator",
                           files={"file": ("report.nessus", report)})
    assert r.status_code == 200, r.text
    watched: Watched = signed_in("operator")
    page = watched.page
    name = f"preview rule {tag}"
    condition = f'title.startsWith("Preview me") && title.contains("{tag}")'
    _new_rule_form(page)
    page.get_by_label("Name").fill(name)
    page.get_by_label(CONDITION).fill(condition)
    page.get_by_label("Action").select_option("set_severity")
    page.get_by_label("Value").select_option("low")
    expect(page.get_by_role("status").filter(has_text="The rule compiles.")).to_be_visible()
    page.get_by_role("button", name="Preview", exact=True).click()
    body = {"name": name, "condition": condition, "action": "set_severity", "value": "low", "enabled": True}
    preview = console_server.api("POST", "/rules/preview", role="operator", json=body)
    assert preview.status_code == 200, preview.text
    out = preview.json()
    assert out["changed"] == 2
    expect(page.get_by_text(f"This rule would change 2 of {out['examined']} open findings.")).to_be_visible()
    samples = page.get_by_role("table", name="Sample of the findings it would change")
    for title in (f"Preview me {tag}", f"Preview me too {tag}"):
        sample = samples.get_by_role("row").filter(has=page.get_by_role("link", name=title, exact=True))
        expect(sample.get_by_role("cell")).to_have_text([title, "high", "low"])
    expect(samples).not_to_contain_text(f"Not me {tag}")
    # nothing was saved by previewing
    assert not [x for x in _rules(console_server) if x["name"] == name]
    shot(page, "rules-preview")
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_role("status").filter(has_text=f"Saved “{name}”.")).to_be_visible()
    rules_table = page.get_by_role("table", name=re.compile(r"^\d+ rules?$"))
    row = rules_table.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text(condition)
    expect(row).to_contain_text("Set severity")
    saved = [x for x in _rules(console_server) if x["name"] == name]
    assert len(saved) == 1 and saved[0]["condition"] == condition and saved[0]["value"] == "low"
    shot(page, "rules")

    # edit: the form is filled with the rule; a change saves through PATCH
    row.get_by_role("button", name="Edit").click()
    expect(page.get_by_label(CONDITION)).to_have_value(condition)
    page.get_by_label("Action").select_option("tag")
    page.get_by_label("Value").fill("preview-tag")
    expect(page.get_by_role("status").filter(has_text="The rule compiles.")).to_be_visible()
    # the preview of an edit compares with the rule as saved (rule_id): both findings lose "low" and gain the tag
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.get_by_text(re.compile(r"^This rule would change 2 of \d+ open findings\.$"))).to_be_visible()
    edited = page.get_by_role("table", name="Sample of the findings it would change")
    expect(edited.get_by_role("row").filter(has_text=f"Preview me {tag}")).to_contain_text("tags: preview-tag")
    shot(page, "rules-edit")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(row).to_contain_text("preview-tag")
    assert [x for x in _rules(console_server) if x["name"] == name][0]["action"] == "tag"
    _delete_rules(console_server, tag)
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console


def test_reorder_and_delete_with_a_confirmation(signed_in: Any, console_server: Server) -> None:
    tag = secrets.token_hex(4)
    first = _rule(console_server, f"first {tag}", f'title.contains("{tag}-1")')
    second = _rule(console_server, f"second {tag}", f'title.contains("{tag}-2")', action="suppress", value=None)
    watched: Watched = signed_in("operator")
    page = watched.page
    page.goto("/rules")
    settle(page)
    page.get_by_role("button", name=f"Move up second {tag}").click()
    expect(page.get_by_role("status").filter(has_text=f"Moved “second {tag}” up.")).to_be_visible()
    order = [x["id"] for x in _rules(console_server) if tag in x["name"]]
    assert order == [second["id"], first["id"]]
    names = page.get_by_role("table", name=re.compile(r"^\d+ rules?$")).locator("tbody tr td:nth-child(2)")
    expect(names.filter(has_text=tag)).to_have_text([f"second {tag}", f"first {tag}"])
    # the keyboard stays on the moved rule: Enter on the focused control moves it back down
    page.wait_for_function("label => document.activeElement?.getAttribute('aria-label') === label",
                           arg=f"Move down second {tag}")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text=f"Moved “second {tag}” down.")).to_be_visible()
    assert [x["id"] for x in _rules(console_server) if tag in x["name"]] == [first["id"], second["id"]]

    page.get_by_role("button", name=f"Delete first {tag}").click()
    # nothing is deleted until confirmed; cancel keeps it
    expect(page.get_by_role("button", name=f"Confirm delete first {tag}")).to_be_visible()
    shot(page, "rules-delete-confirm")
    page.get_by_role("button", name="Cancel").click()
    assert first["id"] in [x["id"] for x in _rules(console_server)]
    page.get_by_role("button", name=f"Delete first {tag}").click()
    page.get_by_role("button", name=f"Confirm delete first {tag}").click()
    expect(page.get_by_role("status").filter(has_text=f"Deleted “first {tag}”.")).to_be_visible()
    expect(page.get_by_text(f"first {tag}", exact=True)).to_have_count(0)
    assert first["id"] not in [x["id"] for x in _rules(console_server)]
    _delete_rules(console_server, tag)
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console


def test_a_viewer_reads_the_rules_and_can_change_none(signed_in: Any, console_server: Server) -> None:
    tag = secrets.token_hex(4)
    rule = _rule(console_server, f"viewer sees {tag} <b>bold</b>", f'title.contains("{tag}")')
    watched: Watched = signed_in("viewer")
    page = watched.page
    page.goto("/rules")
    settle(page)
    row = page.get_by_role("row").filter(has_text=f"viewer sees {tag}")
    expect(row).to_contain_text(rule["condition"])
    expect(row).to_contain_text(f"viewer sees {tag} <b>bold</b>")  # markup in a name is text
    assert page.locator("#app b").count() == 0
    for name in ("New rule", "Edit", "Delete", "Move up", "Move down", "Preview", "Save", "Create rule"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile(r"^(Edit|Delete|Move)"))).to_have_count(0)
    expect(page.get_by_label(CONDITION)).to_have_count(0)
    shot(page, "rules-viewer")
    # the server refuses anyway
    assert console_server.api("DELETE", f"/rules/{rule['id']}", role="viewer").status_code == 403
    _delete_rules(console_server, tag)
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console


def test_a_server_without_preview_says_so(signed_in: Any) -> None:
    """An older server has no POST /rules/preview (405 on /rules/{id} methods): a notice, not a broken form."""
    watched: Watched = signed_in("operator")
    page = watched.page
    page.route(re.compile(r".*/api/v1/rules/preview$"), lambda route: route.fulfill(
        status=405, content_type="application/json",
        body='{"error": {"code": "method_not_allowed", "message": "method not allowed", "fields": []}}'))
    _new_rule_form(page)
    page.get_by_label("Name").fill("preview notice")
    page.get_by_label(CONDITION).fill('severity == "info"')
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.get_by_text("Preview is not available from this server")).to_be_visible()
    assert not watched.errors, watched.errors
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console
