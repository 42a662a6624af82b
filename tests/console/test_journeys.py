"""Journeys across pages, as an operator walks them: upload a report on the integration's page, then follow it to
its findings and filter them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import expect

from pmap_sandbox.server import SandboxServer
from tests.console.harness import Server, Watched, assert_no_secret, create_integration_with_secrets, settle, shot

JOB_TIMEOUT = 90_000


def _report(tag: str) -> bytes:
    """A .nessus report with one critical, two high and one low finding on one host, titles carrying ``tag``."""
    items = [(4, 93001, "critical"), (3, 93002, "high"), (3, 93003, "high"), (1, 93004, "low")]
    body = "".join(f'<ReportItem port="443" svc_name="www" protocol="tcp" severity="{sev}" pluginID="{plugin}" '
                   f'pluginName="{tag} {label} {plugin}" pluginFamily="General"><description>d</description>'
                   f'</ReportItem>' for sev, plugin, label in items)
    return ('<?xml version="1.0" ?>\n<NessusClientData_v2><Report name="journey"><ReportHost name="10.7.7.7">'
            f'<HostProperties><tag name="host-ip">10.7.7.7</tag></HostProperties>{body}</ReportHost></Report>'
            '</NessusClientData_v2>\n').encode()


def test_upload_a_report_then_filter_its_findings(signed_in: Callable[[str], Watched], console_server: Server,
                                                  console_sandbox: SandboxServer, tmp_path: Path) -> None:
    tag = f"journey-{uuid.uuid4().hex[:8]}"
    integration, secrets = create_integration_with_secrets(console_server, console_sandbox.base_url, "nessus",
                                                           name=tag)
    report = tmp_path / "journey.nessus"
    report.write_bytes(_report(tag))
    watched = signed_in("operator")
    page = watched.page
    page.goto(f"/integrations/{integration['id']}")
    settle(page)
    page.get_by_label("Report file").set_input_files(str(report))
    page.get_by_role("button", name="Import report").click()
    expect(page.get_by_label("Upload progress")).to_have_attribute("value", "1", timeout=JOB_TIMEOUT)
    summary = page.get_by_role("group", name="Import summary", exact=True)
    expect(summary.locator("dt", has_text=re.compile(r"^Created$")).locator("xpath=following-sibling::dd[1]")
           ).to_have_text("4", timeout=JOB_TIMEOUT)
    page.locator("#imports").get_by_role("link", name="Findings of this integration").first.click()
    expect(page).to_have_url(re.compile(rf"/findings\?integration_id={integration['id']}$"))
    settle(page)
    rows = page.get_by_role("table", name="Findings, newest first").locator("tbody tr")
    expect(rows).to_have_count(4)
    chart = page.get_by_role("img", name=re.compile("^Findings by severity"))
    expect(chart).to_have_attribute("aria-label", re.compile(r"Critical 1, High 2, Medium 0, Low 1"))
    page.get_by_role("checkbox", name="High").check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"severity=high"))
    expect(rows).to_have_count(2)
    expect(rows).to_contain_text([f"{tag} high 93003", f"{tag} high 93002"])
    expect(chart).to_have_attribute("aria-label", re.compile(r"High 2"))
    shot(page, "journey-findings-filtered")
    assert_no_secret(watched, console_server, secrets)
