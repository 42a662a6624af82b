"""The connector detail page in a real browser against the vendor sandbox: re-test and see the last-tested time
change, sync now and watch the job finish with its summary, import a report with upload progress, the
least-privilege report's four groups, schedules with their errors next to the field, what each role sees, and
markup in a name or a vendor error drawn as text."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from playwright.sync_api import Page, Route, expect

from pmap_sandbox.server import SandboxServer
from tests.console.harness import Server, Watched, assert_no_secret, create_integration_with_secrets, settle, shot

VENDOR_TIMEOUT = 30_000  # vendor operations on a busy machine
JOB_TIMEOUT = 90_000  # a sync or a background import, polled every 2 s


def make(server: Server, sandbox: SandboxServer, vendor: str, *, marker: str = "ok",
         name: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Create an integration through the API; its JSON and the secret values it was given (the canaries)."""
    made = create_integration_with_secrets(server, sandbox.base_url, vendor, marker=marker,
                                           name=name or f"detail-{vendor}-{uuid.uuid4().hex[:8]}")
    assert made[1]
    return made


def open_detail(watched: Watched, integration_id: str) -> Page:
    page = watched.page
    page.goto(f"/integrations/{integration_id}")
    settle(page)
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    return page


def nessus_report(host: str, plugins: list[int], output: str = "out") -> bytes:
    out = ['<?xml version="1.0" ?>\n<NessusClientData_v2><Report name="detail">',
           f'<ReportHost name="{host}"><HostProperties><tag name="host-ip">{host}</tag></HostProperties>']
    for plugin in plugins:
        out.append(f'<ReportItem port="443" svc_name="www" protocol="tcp" severity="3" pluginID="{plugin}" '
                   f'pluginName="Detail plugin {plugin}" pluginFamily="General"><description>A finding.</description>'
                   f'<plugin_output>{escape(output)}</plugin_output></ReportItem>')
    out.append("</ReportHost></Report></NessusClientData_v2>\n")
    return "".join(out).encode()


def test_a_saved_integration_is_retested_and_its_last_tested_time_changes(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    integration, secrets = make(console_server, console_sandbox, "nessus")
    watched = signed_in("operator")
    page = open_detail(watched, integration["id"])
    last = page.locator("#last-tested")
    expect(last).to_contain_text("never")
    # settings show the connection and only the names of the stored secrets
    settings = page.locator("#settings")
    expect(settings).to_contain_text(integration["connection"]["base_url"])
    expect(settings).to_contain_text("stored, write-only")
    shot(page, "detail-operator")

    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#health .test-result")
    expect(result).to_contain_text("Connection OK.", timeout=VENDOR_TIMEOUT)
    expect(result).to_contain_text("Latency")
    expect(result).to_contain_text("Version")
    first = last.locator("time")
    expect(first).to_have_count(1)
    first_at = first.get_attribute("datetime")
    assert first_at
    shot(page, "detail-tested")

    page.get_by_role("button", name="Test connection").click()
    expect(last.locator("time")).not_to_have_attribute("datetime", first_at, timeout=VENDOR_TIMEOUT)
    stored = console_server.api("GET", f"/integrations/{integration['id']}").json()
    expect(last.locator("time")).to_have_attribute("datetime", re.compile(re.escape(stored["last_tested_at"][:19])))
    assert watched.errors == []
    assert_no_secret(watched, console_server, secrets)


def test_a_failing_test_shows_its_step_and_markup_in_a_name_shows_as_text(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f'<img src=x id="inj-{tag}"><script>window.pwned=1</script>detail-{tag}'
    integration, secrets = make(console_server, console_sandbox, "nessus", marker="bad", name=name)
    watched = signed_in("operator")
    page = open_detail(watched, integration["id"])
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    assert page.locator(f"#inj-{tag}").count() == 0
    page.get_by_role("button", name="Test connection").click()
    failed = page.locator("#health").get_by_role("alert")
    expect(failed).to_contain_text("Failed step", timeout=VENDOR_TIMEOUT)
    expect(page.locator("#last-tested")).to_contain_text("never")
    assert page.locator("#app img, #app script").count() == 0
    assert page.evaluate("() => window.pwned") is None
    shot(page, "detail-test-failed")
    assert_no_secret(watched, console_server, secrets)


def test_the_last_test_outcome_the_api_gives_is_shown_and_its_markup_as_text(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    """IntegrationOut is gaining ``last_test`` (the outcome of the last test): the page draws it when present. The
    API's answer is extended here in the browser (route) with a failed test whose step holds markup."""
    integration, secrets = make(console_server, console_sandbox, "nessus")
    watched = signed_in("operator")
    page = watched.page
    tag = uuid.uuid4().hex[:8]
    step = f'<img src=x id="step-{tag}">authenticate'

    def extend(route: Route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        response = route.fetch()
        body = response.json()
        body["last_test"] = {"ok": False, "at": "2026-01-02T03:04:05+00:00", "latency_ms": 12.4, "step": step,
                             "product": "Nessus Manager", "version": "10.7.2",
                             "license_expires_at": "2027-01-01T00:00:00+00:00"}
        route.fulfill(response=response, json=body)

    page.route(f"**/api/v1/integrations/{integration['id']}", extend)
    open_detail(watched, integration["id"])
    health = page.locator("#health")
    expect(health).to_contain_text("failed")
    expect(health).to_contain_text("12 ms")
    expect(health).to_contain_text("Nessus Manager")
    expect(health).to_contain_text("10.7.2")
    expect(health).to_contain_text("Licence expires")
    expect(health.locator("code")).to_have_text(step)
    assert page.locator(f"#step-{tag}").count() == 0
    shot(page, "detail-last-test")
    assert_no_secret(watched, console_server, secrets)


def test_a_failing_sync_shows_its_failed_step(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    integration, secrets = make(console_server, console_sandbox, "tenable_vm", marker="bad")
    watched = signed_in("operator")
    page = open_detail(watched, integration["id"])
    page.get_by_role("button", name="Sync now").click()
    job = page.locator("#sync .job")
    expect(job).to_have_attribute("data-status", "failed", timeout=JOB_TIMEOUT)
    expect(job.get_by_role("alert")).to_contain_text("Failed step")
    expect(page.locator("#sync")).to_contain_text("Last sync")
    expect(page.locator("#sync .badge.bad").first).to_have_text("failed")
    shot(page, "detail-sync-failed")
    assert_no_secret(watched, console_server, secrets)


def test_sync_now_follows_the_job_until_its_summary(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    integration, secrets = make(console_server, console_sandbox, "tenable_vm")
    watched = signed_in("operator")
    page = open_detail(watched, integration["id"])
    expect(page.locator("#last-synced")).to_contain_text("never")
    page.get_by_role("button", name="Sync now").click()
    job = page.locator("#sync .job")
    expect(job).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT)
    summary = page.get_by_role("group", name="Sync summary", exact=True)
    expect(summary).to_contain_text("Created")
    expect(page.locator("#last-synced time")).to_have_count(1)
    expect(page.locator("#sync")).to_contain_text("Last sync summary")
    # the job is listed among the integration's jobs with its summary
    expect(page.locator("#jobs")).to_contain_text("sync")
    expect(page.locator("#jobs")).to_contain_text("succeeded")
    r = console_server.api("GET", "/findings", params={"integration_id": integration["id"]})
    assert r.status_code == 200 and r.json()["items"], r.text
    shot(page, "detail-synced")
    assert_no_secret(watched, console_server, secrets)


def test_a_report_is_uploaded_with_progress_and_its_summary_shown(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer,
        tmp_path: Path) -> None:
    integration, secrets = make(console_server, console_sandbox, "nessus")
    report = tmp_path / "detail.nessus"
    report.write_bytes(nessus_report("10.9.8.7", [91001, 91002, 91003]))
    watched = signed_in("operator")
    page = open_detail(watched, integration["id"])
    imports = page.locator("#imports")
    page.get_by_label("Report file").set_input_files(str(report))
    page.get_by_label("Format").select_option("nessus")
    expect(page.get_by_label("Resolve")).to_have_value("covered")
    page.get_by_role("button", name="Import report").click()
    summary = page.get_by_role("group", name="Import summary", exact=True)
    expect(summary).to_contain_text("Created", timeout=JOB_TIMEOUT)
    expect(summary.locator("dt", has_text=re.compile(r"^Created$")).locator("xpath=following-sibling::dd[1]")
           ).to_have_text("3")
    bar = page.get_by_label("Upload progress")
    expect(bar).to_have_attribute("value", "1")
    expect(imports.get_by_role("table")).to_contain_text("detail.nessus")
    expect(imports.get_by_role("link", name="Findings of this integration").first).to_have_attribute(
        "href", f"/findings?integration_id={integration['id']}")
    shot(page, "detail-imported")
    r = console_server.api("GET", "/findings", params={"integration_id": integration["id"]})
    assert r.status_code == 200
    titles = {f["title"] for f in r.json()["items"]}
    assert {"Detail plugin 91001", "Detail plugin 91002", "Detail plugin 91003"} <= titles
    assert_no_secret(watched, console_server, secrets)


def test_a_large_report_is_imported_by_a_background_job_followed_to_its_summary(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer,
        tmp_path: Path) -> None:
    integration, secrets = make(console_server, console_sandbox, "nessus")
    report = tmp_path / "large.nessus"
    # past PMAP_IMPORT_BACKGROUND_BYTES (8 MiB by default): the API answers 202 with the job
    report.write_bytes(nessus_report("10.9.8.6", list(range(92000, 92300)), output="x" * 30_000))
    assert report.stat().st_size > 8 * 1024 * 1024
    watched = signed_in("operator")
    page = open_detail(watched, integration["id"])
    imports = page.locator("#imports")
    page.get_by_label("Report file").set_input_files(str(report))
    page.get_by_role("button", name="Import report").click()
    expect(imports.locator(".job")).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT)
    summary = page.get_by_role("group", name="Import summary", exact=True)
    expect(summary.locator("dt", has_text=re.compile(r"^Created$")).locator("xpath=following-sibling::dd[1]")
           ).to_have_text("300")
    expect(page.get_by_label("Upload progress")).to_have_attribute("value", "1")
    expect(page.locator("#jobs")).to_contain_text("import")
    shot(page, "detail-imported-background")
    assert_no_secret(watched, console_server, secrets)


def test_the_permissions_check_shows_its_four_groups(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    integration, secrets = make(console_server, console_sandbox, "nessus", marker="manager-admin")
    watched = signed_in("operator")
    page = open_detail(watched, integration["id"])
    page.get_by_role("button", name="Check permissions").click()
    report = page.locator("#permissions .permission-report")
    expect(report).to_be_visible(timeout=VENDOR_TIMEOUT)
    for group in ("Granted", "Missing", "Excess", "Unknown"):
        expect(report.get_by_role("heading", name=re.compile(rf"^{group} \(\d+\)$"))).to_be_visible()
    r = console_server.api("POST", f"/integrations/{integration['id']}/permissions-check")
    assert r.status_code == 200, r.text
    body = r.json()
    granted = [p for p in body["permissions"] if p["state"] == "granted"]
    expect(report.get_by_role("heading", name=f"Granted ({len(granted)})")).to_be_visible()
    assert body["excess"], "an administrator account has more rights than PMAP needs"
    expect(report.get_by_role("heading", name=f"Excess ({len(body['excess'])})")).to_be_visible()
    expect(report.locator(".perm-excess")).to_contain_text(body["excess"][0])
    shot(page, "detail-permissions")
    assert_no_secret(watched, console_server, secrets)


def test_a_scan_is_launched_and_followed_to_its_summary(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    integration, secrets = make(console_server, console_sandbox, "tenable_vm")
    watched = signed_in("operator")
    page = open_detail(watched, integration["id"])
    scans = page.locator("#scans")
    page.get_by_role("button", name="Launch scan").click()
    expect(page.locator("#scan-id-error")).to_have_text("Enter the vendor's scan id.")
    page.get_by_label("Scan ID").fill("17")
    page.get_by_role("button", name="Launch scan").click()
    expect(scans.get_by_role("table")).to_contain_text("17")
    # PMAP polls the vendor's scan status every PMAP_SCAN_POLL_SECONDS (30 s by default) before importing
    expect(scans.locator(".job")).to_have_attribute("data-status", "succeeded", timeout=240_000)
    expect(page.get_by_role("group", name="Scan summary", exact=True)).to_contain_text("scan:17")
    expect(scans.get_by_role("table")).to_contain_text("completed")
    shot(page, "detail-scan")
    assert_no_secret(watched, console_server, secrets)


def test_schedules_are_edited_with_errors_next_to_the_field(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    integration, secrets = make(console_server, console_sandbox, "nessus")
    watched = signed_in("operator")
    page = open_detail(watched, integration["id"])
    schedules = page.locator("#schedules")
    # an operator does not set the webhook rotation (an admin's decision): no such field
    expect(page.get_by_label("Webhook secret rotation schedule (cron)")).to_have_count(0)
    cron = page.get_by_label("Sync schedule (cron)")
    cron.fill("every day please")
    page.get_by_role("button", name="Save schedules").click()
    expect(page.locator("#sync_schedule-error")).to_contain_text("cron", timeout=VENDOR_TIMEOUT)
    expect(cron).to_have_attribute("aria-invalid", "true")
    shot(page, "detail-schedule-error")
    cron.fill("0 3 * * 1")
    page.get_by_role("button", name="Save schedules").click()
    expect(schedules.get_by_role("status")).to_contain_text("Schedules saved.")
    expect(schedules.locator("dl")).to_contain_text("0 3 * * 1")
    stored = console_server.api("GET", f"/integrations/{integration['id']}").json()
    assert stored["sync_schedule"] == "0 3 * * 1" and stored["next_sync_at"]
    expect(page.locator("#sync")).not_to_contain_text("none scheduled")
    assert_no_secret(watched, console_server, secrets)


def test_a_viewer_sees_the_detail_and_no_control_an_operator_sees_them(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    integration, secrets = make(console_server, console_sandbox, "tenable_vm")
    controls = ["Test connection", "Sync now", "Check permissions", "Import report", "Delete", "Launch scan",
                "Save schedules"]
    viewer = signed_in("viewer")
    page = open_detail(viewer, integration["id"])
    expect(page.locator("#settings")).to_contain_text("stored, write-only")
    expect(page.locator("#last-tested")).to_be_visible()
    for name in controls:
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    expect(page.get_by_label("Report file")).to_have_count(0)
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(page.get_by_role("heading", name="Webhook")).to_be_visible()
    shot(page, "detail-viewer")
    page.set_viewport_size({"width": 420, "height": 800})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 420
    shot(page, "detail-viewer-narrow")
    assert_no_secret(viewer, console_server, secrets)

    operator = signed_in("operator")
    page = open_detail(operator, integration["id"])
    for name in ["Test connection", "Sync now", "Check permissions", "Import report", "Launch scan", "Save schedules"]:
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Edit", exact=True)).to_have_attribute(
        "href", f"/integrations/{integration['id']}/edit")
    expect(page.get_by_label("Report file")).to_be_visible()
    expect(page.get_by_role("button", name="Delete", exact=True)).to_have_count(0)  # the API lets admins only
    assert_no_secret(operator, console_server, secrets)


def test_an_admin_deletes_after_confirming(
        signed_in: Callable[[str], Watched], console_server: Server, console_sandbox: SandboxServer) -> None:
    integration, secrets = make(console_server, console_sandbox, "nessus")
    watched = signed_in("admin")
    page = open_detail(watched, integration["id"])
    # an admin also schedules the webhook secret's rotation
    page.get_by_label("Webhook secret rotation schedule (cron)").fill("0 4 * * *")
    page.get_by_role("button", name="Save schedules").click()
    expect(page.locator("#schedules").get_by_role("status")).to_contain_text("Schedules saved.")
    expect(page.locator("#schedules dl")).to_contain_text("0 4 * * *")
    stored = console_server.api("GET", f"/integrations/{integration['id']}").json()
    assert stored["webhook_rotation_schedule"] == "0 4 * * *" and stored["next_webhook_rotation_at"]
    page.get_by_role("button", name="Delete", exact=True).click()
    confirm = page.get_by_role("button", name="Delete integration")
    expect(confirm).to_be_visible()
    shot(page, "detail-delete-confirm")
    page.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    assert console_server.api("GET", f"/integrations/{integration['id']}").status_code == 200
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Delete integration").click()
    expect(page).to_have_url(re.compile(r"/integrations$"))
    assert console_server.api("GET", f"/integrations/{integration['id']}").status_code == 404
    assert_no_secret(watched, console_server, secrets)
