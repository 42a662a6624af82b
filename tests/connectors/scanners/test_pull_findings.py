"""Findings pulls (``pull_findings``) of Snyk, GitHub code scanning, Qualys VMDR, Dependency-Track, Semgrep,
Checkmarx One, ZAP, Acunetix, Invicti, Burp Suite DAST, Veracode, MobSF, Black Duck and JFrog Xray against the
sandbox.

Each vendor's sandbox serves a seeded, deterministic data set for one credential (item ``i`` updated
``i`` hours after the vendor module's ``SEED_EPOCH``, every ``fixed_every``-th one fixed where the vendor keeps
a fixed state: ZAP, Burp, MobSF and Xray do not) over its documented paging, and counts the requests it
answered, so the tests see every page read, pages fetched lazily, the incremental filter, fixed items, rate-limit
waits and refused links.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from pmap.connectors.base import FindingsPull, Operation, OperationContext
from pmap.connectors.vendors._pull import link_rel, under_base
from pmap.core.errors import UpstreamError, ValidationFailed
from pmap.core.settings import Settings
from pmap.findings.formats.registry import report_formats
from pmap.findings.rows import REPORT_STATES
from pmap_sandbox.scanners import _common
from pmap_sandbox.scanners import acunetix as acunetix_sandbox
from pmap_sandbox.scanners import burp as burp_sandbox
from pmap_sandbox.scanners import checkmarx as checkmarx_sandbox
from pmap_sandbox.scanners import dependency_track as dependency_track_sandbox
from pmap_sandbox.scanners import github as github_sandbox
from pmap_sandbox.scanners import invicti as invicti_sandbox
from pmap_sandbox.scanners import qualys as qualys_sandbox
from pmap_sandbox.scanners import semgrep as semgrep_sandbox
from pmap_sandbox.scanners import snyk as snyk_sandbox
from pmap_sandbox.scanners import veracode as veracode_sandbox
from pmap_sandbox.scanners import zap as zap_sandbox
from pmap_sandbox.server import SandboxServer
from tests.conftest import VirtualClock

from .cases import catalog_entry, implementation
from .conftest import pull_context


def _pages(page: int) -> Callable[[int], int]:
    """Requests of a vendor that pages its findings by ``page``: one per page begun."""
    return lambda findings: -(-findings // page)


def _two_lists_then_pages(page: int) -> Callable[[int], int]:
    """Requests of a vendor that lists its projects (one page) and a project's latest scan, then pages the scan's
    ``page`` results."""
    return lambda findings: 2 + -(-findings // page)


def _one_list_then_pages(page: int) -> Callable[[int], int]:
    """Requests of a vendor that lists its projects (one page) and then reads each project's ``page`` findings."""
    return lambda findings: 1 + -(-findings // page)


@dataclass(frozen=True)
class Case:
    """One vendor's pull: its sandbox key, the credential its seed is keyed on, the page size it asks for."""

    vendor: str
    format: str
    epoch: datetime
    page: int  # findings per page the connector asks for (or per project, where a project's findings come whole)
    key_field: str  # the credential the sandbox keys the seeded data set by
    retry_wait: float  # the wait the sandbox's rate-limit answer names
    requests: Callable[[int], int] = field(default=lambda n: -(-n // 100))  # requests to read n findings
    incremental: bool = True  # the vendor documents a change-time filter
    links: bool = True  # the vendor's paging follows next-page links it sends
    fixed: bool = True  # the vendor reports a fixed state (else a fixed finding is only absent from a full pull)


CASES = {
    "snyk": Case("snyk", "snyk_json", snyk_sandbox.SEED_EPOCH, 100, "token", 1.0),
    "github_code_scanning": Case("github_code_scanning", "github_vulnerability_json", github_sandbox.SEED_EPOCH,
                                 100, "token", 1.0),
    "qualys_vmdr": Case("qualys_vmdr", "qualys_xml", qualys_sandbox.SEED_EPOCH, 100, "username", 1.0),
    # projects of 100 seeded findings each, listed on one page; no change-time filter, no next links
    "dependency_track": Case("dependency_track", "dependency_track_fpf", dependency_track_sandbox.SEED_EPOCH, 100,
                             "api_key", 1.0, _one_list_then_pages(100), incremental=False,
                             links=False),
    # page numbers from 0; Semgrep's since filters on detection time, not on change: full pulls
    "semgrep": Case("semgrep", "semgrep_json", semgrep_sandbox.SEED_EPOCH, 100, "token", 1.0,
                    _pages(100), incremental=False, links=False),
    # one project holding every seeded result: its list, its latest completed scan, the scan's result pages
    "checkmarx_one": Case("checkmarx_one", "checkmarx_json", datetime(2024, 3, 1), 100, "api_key", 1.0,
                          _two_lists_then_pages(100), incremental=False, links=False),
    # the session's alerts by start/count; ZAP keeps no fixed state and no change time: full pulls
    "zap": Case("zap", "zap_json", datetime(2024, 3, 1), 500, "api_key", 1.0, _pages(500), incremental=False,
                links=False, fixed=False),
    # every status on one cursor-paged list (c/l, pagination.next_cursor); its date filter is on detection: full
    "acunetix": Case("acunetix", "acunetix_xml", acunetix_sandbox.SEED_EPOCH, 100, "api_key", 1.0, _pages(100),
                     incremental=False, links=False),
    # page numbers from 1 until IsLastPage; lastSeenDate filters on sightings, not on changes: full pulls
    "invicti": Case("invicti", "invicti_json", invicti_sandbox.SEED_EPOCH, 100, "api_token", 1.0, _pages(100),
                    incremental=False, links=False),
    # one site: the site tree, its scans (the latest succeeded on the first page), the scan's issue pages; a scan's
    # issues are the site's state, with no fixed state and no change-time filter: full pulls
    "burp_dast": Case("burp_dast", "burp_xml", datetime(2024, 3, 1), 100, "api_key", 1.0, _two_lists_then_pages(100),
                      incremental=False, links=False, fixed=False),
    # one application holding every seeded finding: the application list, its (empty) SCA findings, its other
    # findings' HAL pages; no change-time filter
    "veracode": Case("veracode", "veracode_json", veracode_sandbox.SEED_EPOCH, 100, "api_id", 1.0,
                     _two_lists_then_pages(100), incremental=False, links=False),
    # one project and version holding every seeded item: the project list, its versions, the vulnerable BOM's pages
    "black_duck": Case("black_duck", "cyclonedx", datetime(2024, 3, 1), 100, "api_token", 1.0,
                       _two_lists_then_pages(100), incremental=False, links=False),
    # a vulnerabilities report on the configured repository: started, its status read once, its row pages; no fixed
    # state, no change-time filter
    "jfrog_xray": Case("jfrog_xray", "jfrog_xray_json", datetime(2024, 3, 1), 100, "access_token", 1.0,
                       _two_lists_then_pages(100), incremental=False, links=False, fixed=False),
    # apps of 100 seeded findings each, their latest scans listed on one page, one report per app; no fixed state
    "mobsf": Case("mobsf", "mobsf_json", datetime(2024, 3, 1), 100, "api_key", 1.0, _one_list_then_pages(100),
                  incremental=False, links=False, fixed=False),
}
assert all(c.requests(250) == _pages(c.page)(250) for c in CASES.values() if c.links)


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def seeded_ctx(sandbox: SandboxServer, settings: Settings, case: Case, marker: str = "ok",
               **seed: Any) -> tuple[OperationContext, str]:
    """A findings-pull context for ``case.vendor`` whose account holds the seeded data set ``seed``."""
    return pull_context(sandbox, settings, case.vendor, case.key_field, marker, **seed)


def test_the_catalog_offers_sync_findings(case: Case) -> None:
    assert Operation.SYNC_FINDINGS in catalog_entry(case.vendor).operations


def test_every_page_is_read_and_fixed_items_are_fixed(sandbox: SandboxServer, dev_settings: Settings,
                                                      case: Case) -> None:
    count = case.page * 2 + 7  # two full pages and a short one
    ctx, key = seeded_ctx(sandbox, dev_settings, case, count=count, fixed_every=5)
    feed = implementation(case.vendor).pull_findings(ctx, FindingsPull())
    assert feed.format == case.format and feed.format in report_formats() and feed.complete
    findings = list(feed.findings)
    assert len(findings) == count
    assert _common.pulls(sandbox.app, case.vendor, key) == case.requests(count)
    fmt = report_formats()[case.format]
    assert len({f.fingerprint(case.format) for f in findings}) == count
    fixed = [f for f in findings if f.status == "fixed"]
    assert len(fixed) == (count // 5 if case.fixed else 0)
    assert all(fmt.map_severity(f).source == "vendor" for f in findings)


def test_pages_are_fetched_lazily(sandbox: SandboxServer, dev_settings: Settings, case: Case) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, case, count=case.page * 3)
    feed = implementation(case.vendor).pull_findings(ctx, FindingsPull())
    assert _common.pulls(sandbox.app, case.vendor, key) == 0
    next(feed.findings)
    assert _common.pulls(sandbox.app, case.vendor, key) == case.requests(1)
    for _ in range(case.page):
        next(feed.findings)
    assert _common.pulls(sandbox.app, case.vendor, key) == case.requests(case.page + 1)


def test_an_incremental_pull_returns_only_the_changed_and_is_not_complete(
        sandbox: SandboxServer, dev_settings: Settings, case: Case) -> None:
    if not case.incremental:
        pytest.skip(f"{case.vendor} documents no change-time filter (see the full-pull test)")
    count, changed = case.page + 30, 12
    ctx, key = seeded_ctx(sandbox, dev_settings, case, count=count, fixed_every=5)
    since = case.epoch + timedelta(hours=count - changed - 1, minutes=30)
    feed = implementation(case.vendor).pull_findings(ctx, FindingsPull(since=since))
    assert not feed.complete
    findings = list(feed.findings)
    assert len(findings) == changed
    assert _common.pulls(sandbox.app, case.vendor, key) == 1


def test_a_vendor_without_a_change_filter_pulls_everything_and_is_complete_even_with_since(
        sandbox: SandboxServer, dev_settings: Settings, case: Case) -> None:
    if case.incremental:
        pytest.skip(f"{case.vendor} pulls incrementally (see the incremental test)")
    count = case.page + 30
    ctx, key = seeded_ctx(sandbox, dev_settings, case, count=count)
    feed = implementation(case.vendor).pull_findings(ctx, FindingsPull(since=case.epoch + timedelta(hours=count)))
    assert feed.complete
    assert len(list(feed.findings)) == count
    assert _common.pulls(sandbox.app, case.vendor, key) == case.requests(count)


def test_a_rate_limit_is_waited_and_the_pull_completes(sandbox: SandboxServer, dev_settings: Settings, case: Case,
                                                       virtual_clock: VirtualClock) -> None:
    count = case.page + 5
    ctx, key = seeded_ctx(sandbox, dev_settings, case, marker="ratelimit", count=count)
    findings = list(implementation(case.vendor).pull_findings(ctx, FindingsPull()).findings)
    assert len(findings) == count
    assert case.retry_wait in virtual_clock.waits


def test_a_rate_limit_in_the_middle_of_a_pull_is_waited_and_no_page_is_lost_or_repeated(
        sandbox: SandboxServer, dev_settings: Settings, case: Case, virtual_clock: VirtualClock) -> None:
    count = case.page * 2 + 3
    ctx, key = seeded_ctx(sandbox, dev_settings, case, count=count, limit_at=2)  # the second page's first answer
    findings = list(implementation(case.vendor).pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint(case.format) for f in findings}) == len(findings) == count
    assert case.retry_wait in virtual_clock.waits
    assert _common.pulls(sandbox.app, case.vendor, key) == case.requests(count) + 1  # every page and the limited one


def test_bad_credentials_fail_at_auth_without_the_secret(sandbox: SandboxServer, dev_settings: Settings,
                                                         case: Case) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, case, marker="bad", count=3)
    feed = implementation(case.vendor).pull_findings(ctx, FindingsPull())
    with pytest.raises(UpstreamError) as err:
        list(feed.findings)
    assert err.value.step == "auth"
    assert all(secret not in err.value.message for secret in ctx.secrets)


def test_a_next_page_on_another_host_is_refused(sandbox: SandboxServer, dev_settings: Settings, case: Case) -> None:
    if not case.links:
        pytest.skip(f"{case.vendor} pages by number: it sends no next-page link")
    ctx, key = seeded_ctx(sandbox, dev_settings, case, count=case.page + 5, foreign_next="https://attacker.example")
    feed = implementation(case.vendor).pull_findings(ctx, FindingsPull())
    with pytest.raises(UpstreamError) as err:
        list(feed.findings)
    assert err.value.step == "egress" and "attacker.example" in err.value.message
    assert _common.pulls(sandbox.app, case.vendor, key) == 1


def test_github_dismissed_alerts_are_suppressed_not_fixed(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, CASES["github_code_scanning"], count=40, fixed_every=5,
                           dismissed_every=3)
    findings = list(implementation("github_code_scanning").pull_findings(ctx, FindingsPull()).findings)
    by_number = {f.extra["number"]: f.status for f in findings}
    assert by_number[5] == "fixed"  # alert i=4: fixed
    assert by_number[3] == "false_positive"  # i=2, an odd number: dismissed as a false positive
    assert by_number[6] == "accepted"  # i=5, an even number: dismissed as won't fix
    assert by_number[1] is None  # open
    assert [f.extra["number"] for f in findings[:3]] == [40, 39, 38]  # newest update first


def test_dependency_track_pulls_suppressed_findings_as_suppressed_and_resolved_as_fixed(
        sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["dependency_track"], count=250, per_project=100,
                          fixed_every=5, suppressed_every=7)
    findings = list(implementation("dependency_track").pull_findings(ctx, FindingsPull()).findings)
    assert len(findings) == 250  # suppressed ones are asked for (suppressed=true)
    by_id = {f.rule_id: f for f in findings}
    assert by_id["CVE-2024-10006"].status == "suppressed"  # i=6: every 7th suppressed
    assert by_id["CVE-2024-10004"].status == "fixed"  # i=4: every 5th RESOLVED
    assert by_id["CVE-2024-10000"].status is None
    assert {f.repository for f in findings} == {"app0 1.0.0", "app1 1.0.0", "app2 1.0.0"}
    assert _common.pulls(sandbox.app, "dependency_track", key) == 4  # the project list and three projects


def test_dependency_track_pages_the_project_list(sandbox: SandboxServer, dev_settings: Settings,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from pmap.connectors.vendors import dependency_track
    monkeypatch.setattr(dependency_track, "PROJECT_PAGE", 2)
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["dependency_track"], count=50, per_project=10)
    findings = list(implementation("dependency_track").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("dependency_track_fpf") for f in findings}) == len(findings) == 50
    assert _common.pulls(sandbox.app, "dependency_track", key) == 3 + 5  # pages of 2, 2 and 1 projects; 5 projects


def test_semgrep_fixed_findings_are_fixed_and_ignored_ones_suppressed(sandbox: SandboxServer,
                                                                      dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, CASES["semgrep"], count=40, fixed_every=5, ignored_every=3)
    findings = list(implementation("semgrep").pull_findings(ctx, FindingsPull()).findings)
    by_rule = {f.rule_id: f for f in findings}
    assert by_rule["generated.rule-4"].status == "fixed"
    assert by_rule["generated.rule-2"].status == "false_positive"  # ignored, as a false positive
    assert by_rule["generated.rule-5"].status == "accepted"  # ignored, acceptable risk
    assert by_rule["generated.rule-0"].status is None
    assert by_rule["generated.rule-0"].repository == "example/shop" and by_rule["generated.rule-0"].line == 1


def test_checkmarx_reads_each_projects_latest_scan_fixed_and_not_exploitable(sandbox: SandboxServer,
                                                                             dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["checkmarx_one"], count=60, per_project=25, unscanned=2,
                          fixed_every=5, not_exploitable_every=4)
    findings = list(implementation("checkmarx_one").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("checkmarx_json") for f in findings}) == len(findings) == 60
    by_id = {f.extra["id"]: f for f in findings}
    assert by_id["res-4"].status == "fixed"  # status FIXED
    assert by_id["res-3"].status == "false_positive"  # state NOT_EXPLOITABLE
    assert by_id["res-0"].status is None and by_id["res-0"].file_path == "/src/Sink0.java"
    assert by_id["res-6"].extra["type"] == "kics" and by_id["res-6"].file_path == "/infra/main6.tf"
    assert by_id["res-10"].cve_ids == ["CVE-2024-20010"] and by_id["res-10"].package_name == "pkg10"
    assert {f.repository for f in findings} == {"app0", "app1", "app2"}
    # the project list, five projects' latest scans (two never completed one), three scans' results
    assert _common.pulls(sandbox.app, "checkmarx_one", key) == 1 + 5 + 3
    assert checkmarx_sandbox.KEY == "checkmarx_one"


def test_checkmarx_exchanges_a_new_token_when_the_old_one_expires_mid_pull(sandbox: SandboxServer,
                                                                           dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["checkmarx_one"], count=250, expire_at=3)
    findings = list(implementation("checkmarx_one").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("checkmarx_json") for f in findings}) == len(findings) == 250
    assert _common.pulls(sandbox.app, "checkmarx_one", key) == 2 + 3 + 1  # the refused request, asked again


def test_veracode_reads_each_applications_sca_and_other_findings_closed_and_mitigated(
        sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["veracode"], count=60, per_app=25, sca_every=4,
                          fixed_every=5, mitigated_every=7)
    findings = list(implementation("veracode").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("veracode_json") for f in findings}) == len(findings) == 60
    by_issue = {f.extra["issue_id"]: f for f in findings}
    assert by_issue["1004"].status == "fixed"  # i=4: CLOSED
    assert by_issue["1006"].status == "mitigated"  # i=6: an approved mitigation
    assert by_issue["1000"].status is None and by_issue["1000"].file_path == "src/main/java/Handler0.java"
    sca = by_issue["1003"]  # i=3: every 4th is SCA
    assert sca.cve_ids == ["CVE-2024-30003"] and sca.package_name == "lib3.jar" and sca.package_version == "1.0.3"
    assert {f.repository for f in findings} == {"app0", "app1", "app2"}
    # the application list, then per application its SCA findings and its other findings (one page each)
    assert _common.pulls(sandbox.app, "veracode", key) == 1 + 3 * 2


def test_veracode_pages_the_application_list(sandbox: SandboxServer, dev_settings: Settings,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from pmap.connectors.vendors import veracode
    monkeypatch.setattr(veracode, "PAGE_SIZE", 2)
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["veracode"], count=10, per_app=2)
    findings = list(implementation("veracode").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("veracode_json") for f in findings}) == len(findings) == 10
    # application pages of 2, 2 and 1; five applications' SCA (empty) and other findings (one page of 2)
    assert _common.pulls(sandbox.app, "veracode", key) == 3 + 5 * 2


def test_mobsf_reads_only_the_latest_report_of_each_app(sandbox: SandboxServer, dev_settings: Settings,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pmap.connectors.vendors import mobile
    monkeypatch.setattr(mobile, "SCANS_PAGE", 2)
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["mobsf"], count=50, per_app=20, rescanned=True)
    feed = implementation("mobsf").pull_findings(ctx, FindingsPull())
    findings = list(feed.findings)
    assert len({f.fingerprint("mobsf_json") for f in findings}) == len(findings) == 50
    # each latest report's secure check is counted as the format counts it in an upload (older reports unread)
    assert feed.skipped == {"secure check": 3}
    assert {f.repository for f in findings} == {"com.example.app0", "com.example.app1", "com.example.app2"}
    assert not any(f.rule_id == "code_analysis:generated_rule_gone" for f in findings)  # only in older reports
    assert not any(f.rule_id == "code_analysis:generated_secure_check" for f in findings)  # a check that holds
    first = next(f for f in findings if f.rule_id == "code_analysis:generated_rule_0")
    assert first.extra["files"] == ["com/example/app0/Class0.java"] and first.vendor_severity == "high"
    # scan pages of 2 (three latest, three older scans: 3 pages) and the three latest reports
    assert _common.pulls(sandbox.app, "mobsf", key) == 3 + 3


def test_black_duck_remediation_statuses_and_project_versions(sandbox: SandboxServer, dev_settings: Settings) -> None:
    statuses = ["NEW", "PATCHED", "MITIGATED", "IGNORED", "NOT_AFFECTED", "DUPLICATE", "REMEDIATION_REQUIRED"]
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["black_duck"], count=60, per_project=25, fixed_every=10,
                          statuses=statuses)
    findings = list(implementation("black_duck").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("cyclonedx") for f in findings}) == len(findings) == 60
    by_package = {f.package_name: f for f in findings}
    assert by_package["comp9"].status == "fixed"  # REMEDIATION_COMPLETE
    assert by_package["comp1"].status == "fixed"  # PATCHED
    assert by_package["comp2"].status == "mitigated"
    assert by_package["comp3"].status == "ignored"
    assert by_package["comp4"].status == "not_affected"
    assert by_package["comp5"].status == "suppressed"  # DUPLICATE
    assert by_package["comp0"].status is None and by_package["comp6"].status is None
    first = by_package["comp0"]
    assert first.cve_ids == ["CVE-2024-40000"] and first.package_version == "1.0.0" and first.cwe_ids == [502]
    assert first.vendor_severity == "critical" and first.cvss_score == 7.5
    assert by_package["comp2"].rule_id == "BDSA-2024-0002" and not by_package["comp2"].cve_ids
    assert {f.repository for f in findings} == {"app0 1.0.0", "app1 1.0.0", "app2 1.0.0"}
    # the project list, then per project its versions and its one version's vulnerable components
    assert _common.pulls(sandbox.app, "black_duck", key) == 1 + 3 * 2


def test_xray_waits_for_its_report_reads_its_rows_and_deletes_it(sandbox: SandboxServer, dev_settings: Settings,
                                                                 virtual_clock: VirtualClock) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["jfrog_xray"], count=150, pending_polls=3)
    findings = list(implementation("jfrog_xray").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("jfrog_xray_json") for f in findings}) == len(findings) == 150
    first = next(f for f in findings if f.rule_id == "XRAY-100000")
    assert first.cve_ids == ["CVE-2024-50000"] and first.package_name == "pkg0" and first.package_version == "1.0.0"
    assert first.repository == "default/libs-release-local/app-0.tgz" and first.fixed_version == "1.1.0"
    assert len(virtual_clock.waits) >= 3  # three "running" answers waited out
    # the report started, its status read four times, two pages of rows; then deleted (not counted)
    assert _common.pulls(sandbox.app, "jfrog_xray", key) == 1 + 4 + 2
    assert len(sandbox.app.state.sandbox_store["jfrog_xray"]["deleted"]) >= 1


def test_a_failed_xray_report_fails_the_pull_at_response(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["jfrog_xray"], count=5, end_status="failed")
    with pytest.raises(UpstreamError) as err:
        list(implementation("jfrog_xray").pull_findings(ctx, FindingsPull()).findings)
    assert err.value.step == "response" and "failed" in err.value.message
    assert _common.pulls(sandbox.app, "jfrog_xray", key) == 2  # started, its status read: no rows asked for


def test_an_xray_sync_without_repositories_is_refused_before_anything_is_sent(
        sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, key = pull_context(sandbox, dev_settings, "jfrog_xray", "access_token", connection={"repositories": []},
                            count=5)
    with pytest.raises(ValidationFailed) as err:
        implementation("jfrog_xray").pull_findings(ctx, FindingsPull())
    assert "repositories" in str(err.value)
    assert _common.pulls(sandbox.app, "jfrog_xray", key) == 0


def test_a_qualys_batch_declaring_entities_is_refused(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, CASES["qualys_vmdr"], count=5, entities=True)
    with pytest.raises(UpstreamError) as err:
        list(implementation("qualys_vmdr").pull_findings(ctx, FindingsPull()).findings)
    assert err.value.step == "response" and "entit" in err.value.message.lower()


def test_the_catalog_lists_what_each_pulling_vendor_offers() -> None:
    assert catalog_entry("snyk").offered() == [
        "test_connection", "check_permissions", "sync_findings", "register_webhook"]
    assert catalog_entry("github_code_scanning").offered() == [
        "test_connection", "check_permissions", "sync_findings", "register_webhook"]
    assert catalog_entry("qualys_vmdr").offered() == ["test_connection", "sync_findings", "fetch_findings",
                                                      "launch_scan", "scan_status"]
    assert catalog_entry("dependency_track").offered() == ["test_connection", "check_permissions", "sync_findings"]
    assert catalog_entry("semgrep").offered() == ["test_connection", "sync_findings"]
    assert catalog_entry("checkmarx_one").offered() == ["test_connection", "check_permissions", "sync_findings"]
    assert catalog_entry("acunetix").offered() == ["test_connection", "check_permissions", "sync_findings",
                                                   "fetch_findings", "launch_scan", "scan_status"]
    assert catalog_entry("invicti").offered() == ["test_connection", "sync_findings", "fetch_findings",
                                                  "launch_scan", "scan_status"]
    assert catalog_entry("burp_dast").offered() == ["test_connection", "sync_findings", "fetch_findings",
                                                    "launch_scan", "scan_status"]
    assert catalog_entry("zap").offered() == ["test_connection", "sync_findings", "fetch_findings", "launch_scan",
                                              "scan_status"]
    assert catalog_entry("black_duck").offered() == ["test_connection", "check_permissions", "sync_findings"]
    assert catalog_entry("jfrog_xray").offered() == ["test_connection", "sync_findings"]
    assert catalog_entry("mobsf").offered() == ["test_connection", "sync_findings"]
    assert catalog_entry("veracode").offered() == ["test_connection", "check_permissions", "sync_findings"]


def test_github_primary_rate_limit_is_waited_until_its_reset(sandbox: SandboxServer, dev_settings: Settings,
                                                              virtual_clock: VirtualClock) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, CASES["github_code_scanning"], count=5, primary_limit_seconds=4)
    findings = list(implementation("github_code_scanning").pull_findings(ctx, FindingsPull()).findings)
    assert len(findings) == 5
    assert any(3 <= wait <= 6 for wait in virtual_clock.waits), virtual_clock.waits


def test_github_primary_rate_limit_beyond_the_budget_is_an_http_failure(sandbox: SandboxServer,
                                                                        dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, CASES["github_code_scanning"], count=5, primary_limit_seconds=3600)
    with pytest.raises(UpstreamError) as err:
        list(implementation("github_code_scanning").pull_findings(ctx, FindingsPull()).findings)
    assert err.value.step == "http" and "rate limit" in err.value.message


@pytest.mark.parametrize(("link", "target"), [
    pytest.param("/orgs/o/issues?starting_after=x", "/orgs/o/issues?starting_after=x", id="relative-to-the-rest-base"),
    pytest.param("/rest/orgs/o/issues?starting_after=x", "https://api.snyk.io/rest/orgs/o/issues?starting_after=x",
                 id="host-relative-with-the-base-path"),
    pytest.param("https://elsewhere.example/rest/x", "https://elsewhere.example/rest/x",
                 id="absolute-left-to-the-client"),
])
def test_snyk_links_resolve_under_the_rest_base(link: str, target: str) -> None:
    assert under_base("https://api.snyk.io/rest", link) == target


def test_link_header_next_is_found_among_other_relations() -> None:
    header = ('<https://api.github.com/repositories/1/code-scanning/alerts?page=1>; rel="prev", '
              '<https://api.github.com/repositories/1/code-scanning/alerts?page=3>; rel="next", '
              '<https://api.github.com/repositories/1/code-scanning/alerts?page=9>; rel="last"')
    assert link_rel(header) == "https://api.github.com/repositories/1/code-scanning/alerts?page=3"
    assert link_rel('<https://x.example/?page=2>; rel="last"') is None and link_rel(None) is None


def test_zap_false_positive_alerts_are_false_positives_and_each_alert_url_is_a_finding(
        sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["zap"], count=40, false_positive_every=4)
    findings = list(implementation("zap").pull_findings(ctx, FindingsPull()).findings)
    by_url = {f.url: f for f in findings}
    assert by_url[f"{zap_sandbox.SEED_SITE}/page3"].status == "false_positive"  # confidence "False Positive"
    assert by_url[f"{zap_sandbox.SEED_SITE}/page0"].status is None
    assert by_url[f"{zap_sandbox.SEED_SITE}/page0"].parameter == "q0"
    assert by_url[f"{zap_sandbox.SEED_SITE}/page0"].host == "app.example.test"
    assert _common.pulls(sandbox.app, "zap", key) == 1


def test_acunetix_fixed_is_fixed_ignored_and_false_positive_are_suppressed(sandbox: SandboxServer,
                                                                          dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["acunetix"], count=40, fixed_every=5, ignored_every=3)
    findings = list(implementation("acunetix").pull_findings(ctx, FindingsPull()).findings)
    by_url = {f.url: f for f in findings}
    page = "https://shop.example.test/page{}".format
    assert by_url[page(4)].status == "fixed"
    assert by_url[page(2)].status == "false_positive"  # ignored_every: an even number is a false positive
    assert by_url[page(5)].status == "ignored"
    assert by_url[page(0)].status is None and by_url[page(0)].parameter == "p0"
    assert by_url[page(3)].vendor_severity == "high" and by_url[page(4)].vendor_severity == "critical"
    assert by_url[page(0)].host == "shop.example.test" and by_url[page(0)].extra["vuln_id"] == "2640598393345600000"
    assert _common.pulls(sandbox.app, "acunetix", key) == 1


def test_invicti_states_fixed_accepted_false_positive_and_revived(sandbox: SandboxServer,
                                                                  dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["invicti"], count=40, fixed_every=5, accepted_every=3,
                          revived_every=7)
    findings = list(implementation("invicti").pull_findings(ctx, FindingsPull()).findings)
    by_url = {f.url: f for f in findings}
    page = "http://php.testsparker.com/page{}.php".format
    assert by_url[page(4)].status == "fixed"  # FixedConfirmed
    assert by_url[page(9)].status == "fixed"  # FixedUnconfirmed
    assert by_url[page(2)].status == "false_positive"  # FalsePositive
    assert by_url[page(5)].status == "risk_accepted"  # AcceptedRisk
    assert REPORT_STATES["risk_accepted"] == REPORT_STATES["accepted"] == "suppressed"  # stored suppressed
    assert by_url[page(6)].status == "reopened"  # Revived: open
    assert by_url[page(0)].status == "open"  # Present
    first = by_url[page(0)]
    assert first.vendor_severity == "Critical" and first.rule_id == "GeneratedType0" and first.parameter == "id0"
    assert first.cwe_ids == [89] and first.host == "php.testsparker.com"
    assert first.last_seen == invicti_sandbox.SEED_EPOCH  # the account's MM/dd/yyyy hh:mm tt, read one way only
    assert first.extra["website"] == "PHP testsparker"
    assert _common.pulls(sandbox.app, "invicti", key) == 1


def test_burp_reads_each_sites_latest_succeeded_scan_only(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["burp_dast"], count=30, unscanned=True)
    findings = list(implementation("burp_dast").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("burp_xml") for f in findings}) == len(findings) == 30
    assert not any("/old" in (f.url or "") for f in findings)  # the older scan's issues are not read
    first = next(f for f in findings if f.url == f"{burp_sandbox.SEED_ORIGIN}/page0")
    assert first.rule_id == "1049088" and first.title == "Generated issue type 0" and first.vendor_severity == "high"
    assert first.host == "shop.example.test" and first.cwe_ids == [79] and first.status is None
    assert first.extra["serial_number"] == "7000000000000000000" and first.extra["confidence"] == "certain"
    assert {f.vendor_severity for f in findings} == {"high", "medium", "low", "info"}
    # the site tree, the seeded site's scans, its latest scan's one page of issues, the unscanned site's scans
    assert _common.pulls(sandbox.app, "burp_dast", key) == 4


def test_acunetix_pages_on_by_offset_when_an_answer_names_no_next_cursor(sandbox: SandboxServer,
                                                                          dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, CASES["acunetix"], count=250, no_next_cursor=True)
    findings = list(implementation("acunetix").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("acunetix_xml") for f in findings}) == len(findings) == 250  # not one page taken as all
    assert _common.pulls(sandbox.app, "acunetix", key) == 3
