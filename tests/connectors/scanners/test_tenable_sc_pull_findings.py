"""Tenable Security Center findings pulls against the sandbox: ``POST /analysis`` pages of the cumulative
database, then of the patched one (status "fixed"), read as ``tenable_csv`` rows.

SC pages by offsets and reads two source types, so its request counts differ from the link-paged vendors of
the generic CASES table (there are no next links to refuse, and its change filter counts in days).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pmap.connectors.base import FindingsPull, Operation, OperationContext
from pmap.connectors.vendors import _tenable_sc_pull
from pmap.core.errors import UpstreamError
from pmap.core.settings import Settings
from pmap.findings.formats.registry import report_formats
from pmap_sandbox.scanners import _common
from pmap_sandbox.scanners import tenable_sc as sc_sandbox
from pmap_sandbox.server import SandboxServer
from tests.conftest import VirtualClock

from .cases import catalog_entry, implementation
from .conftest import pull_context

VENDOR, PAGE = "tenable_sc", _tenable_sc_pull.PAGE


def seeded_ctx(sandbox: SandboxServer, settings: Settings, marker: str = "ok",
               **seed: Any) -> tuple[OperationContext, str]:
    """A pull context whose account holds the seeded analysis records ``seed``."""
    return pull_context(sandbox, settings, VENDOR, "access_key", marker, **seed)


def test_the_catalog_offers_sync_findings() -> None:
    assert Operation.SYNC_FINDINGS in catalog_entry(VENDOR).operations


def test_every_page_of_both_sources_is_read_and_patched_items_are_fixed(sandbox: SandboxServer,
                                                                        dev_settings: Settings) -> None:
    count = PAGE * 2 + 7  # 166 cumulative (two pages), 41 patched (one)
    ctx, key = seeded_ctx(sandbox, dev_settings, count=count, fixed_every=5)
    feed = implementation(VENDOR).pull_findings(ctx, FindingsPull())
    assert feed.format == "tenable_csv" and feed.complete
    findings = list(feed.findings)
    assert len(findings) == count
    assert _common.pulls(sandbox.app, VENDOR, key) == 3
    assert len({f.fingerprint("tenable_csv") for f in findings}) == count
    assert len([f for f in findings if f.status == "fixed"]) == count // 5
    fmt = report_formats()["tenable_csv"]
    assert all(fmt.map_severity(f).source == "vendor" for f in findings)
    first = findings[0]
    assert first.rule_id == "20000" and first.ip == "10.0.0.0" and first.host == "host0.example.test"
    assert first.port == 443 and first.cve_ids == ["CVE-2024-1000"] and first.last_seen is not None


def test_pages_are_fetched_lazily(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, count=PAGE * 3)
    feed = implementation(VENDOR).pull_findings(ctx, FindingsPull())
    assert _common.pulls(sandbox.app, VENDOR, key) == 0
    next(feed.findings)
    assert _common.pulls(sandbox.app, VENDOR, key) == 1
    for _ in range(PAGE):
        next(feed.findings)
    assert _common.pulls(sandbox.app, VENDOR, key) == 2
    assert len(list(feed.findings)) == PAGE * 2 - 1
    assert _common.pulls(sandbox.app, VENDOR, key) == 4  # three cumulative pages, one empty patched page


def test_an_incremental_pull_asks_for_the_days_since_and_is_not_complete(sandbox: SandboxServer,
                                                                         dev_settings: Settings) -> None:
    # record i was seen count-1-i days and an hour ago; since 2.5 days ago asks for "0:3" days
    ctx, key = seeded_ctx(sandbox, dev_settings, count=20, recent=True)
    since = datetime.now(UTC) - timedelta(days=2, hours=12)
    feed = implementation(VENDOR).pull_findings(ctx, FindingsPull(since=since))
    assert not feed.complete
    assert sorted(f.rule_id or "" for f in feed.findings) == ["20017", "20018", "20019"]
    assert _common.pulls(sandbox.app, VENDOR, key) == 2


def test_a_rate_limit_in_the_middle_of_a_pull_is_waited_and_no_page_is_lost_or_repeated(
        sandbox: SandboxServer, dev_settings: Settings, virtual_clock: VirtualClock) -> None:
    count = PAGE * 2 + 3
    ctx, key = seeded_ctx(sandbox, dev_settings, count=count, limit_at=2)
    findings = list(implementation(VENDOR).pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("tenable_csv") for f in findings}) == len(findings) == count
    assert 1.0 in virtual_clock.waits
    assert _common.pulls(sandbox.app, VENDOR, key) == 5  # three cumulative, one patched, the limited answer


def test_a_rate_limit_is_waited_and_the_pull_completes(sandbox: SandboxServer, dev_settings: Settings,
                                                       virtual_clock: VirtualClock) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, marker="ratelimit", count=PAGE + 5)
    assert len(list(implementation(VENDOR).pull_findings(ctx, FindingsPull()).findings)) == PAGE + 5
    assert 1.0 in virtual_clock.waits


def test_bad_credentials_fail_at_auth_without_the_secret(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, marker="bad", count=3)
    feed = implementation(VENDOR).pull_findings(ctx, FindingsPull())
    with pytest.raises(UpstreamError) as err:
        list(feed.findings)
    assert err.value.step == "auth"
    assert all(secret not in err.value.message for secret in ctx.secrets)


def test_a_record_reads_like_the_same_row_of_an_uploaded_csv() -> None:
    record = sc_sandbox.seeded_record(3, sc_sandbox.SEED_EPOCH + timedelta(hours=5))
    [synced] = list(_tenable_sc_pull.tenable_csv.findings_of_rows([_tenable_sc_pull.row_of(record, None)]))
    csv = (b"Plugin,Plugin Name,Family,Severity,IP Address,DNS Name,Port,Protocol,CVE,Synopsis,Description,"
           b"Solution,Plugin Text,First Discovered,Last Observed\n"
           b"20003,Generated plugin 3,General,High,10.0.0.3,host3.example.test,443,TCP,CVE-2024-1003,generated 3,"
           b"generated finding 3,Upgrade.,<plugin_output>output 3</plugin_output>,"
           b"\"Mar 1, 2024 00:00:00 UTC\",\"Mar 1, 2024 05:00:00 UTC\"\n")
    [uploaded] = list(report_formats()["tenable_csv"].parse(io.BytesIO(csv)))
    assert synced.fingerprint("tenable_csv") == uploaded.fingerprint("tenable_csv")
    assert (synced.title, synced.vendor_severity, synced.last_seen) == (
        uploaded.title, uploaded.vendor_severity, uploaded.last_seen)
