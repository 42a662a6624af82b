"""Rapid7 InsightVM findings pulls against the sandbox: assets paged, each asset's vulnerabilities paged, each
definition read once through a bounded cache; not-vulnerable results "fixed", excepted ones "accepted".

The console documents no change-time filter for asset vulnerabilities, so every pull is complete and full, and
its request count (asset pages, one vulnerability page per asset, one read per definition) differs from the
link-paged vendors of the generic CASES table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pmap.connectors.base import FindingsPull, Operation, OperationContext
from pmap.connectors.vendors import _insightvm_pull
from pmap.core.errors import UpstreamError
from pmap.core.settings import Settings
from pmap.findings.formats.registry import report_formats
from pmap_sandbox.scanners import _common
from pmap_sandbox.server import SandboxServer
from tests.conftest import VirtualClock

from .cases import catalog_entry, implementation
from .conftest import pull_context

VENDOR, PAGE = "rapid7_insightvm", _insightvm_pull.PAGE


def seeded_ctx(sandbox: SandboxServer, settings: Settings, marker: str = "ok",
               **seed: Any) -> tuple[OperationContext, str]:
    """A pull context whose account holds ``count`` generated assets (see the sandbox's seed options)."""
    return pull_context(sandbox, settings, VENDOR, "username", marker, **seed)


def test_the_catalog_offers_sync_findings() -> None:
    assert Operation.SYNC_FINDINGS in catalog_entry(VENDOR).operations


def test_every_asset_and_vulnerability_is_read_with_the_vendor_status(sandbox: SandboxServer,
                                                                      dev_settings: Settings) -> None:
    count = PAGE + 7  # two asset pages
    ctx, key = seeded_ctx(sandbox, dev_settings, count=count, fixed_every=5, excepted_every=3, kinds=10)
    feed = implementation(VENDOR).pull_findings(ctx, FindingsPull())
    assert feed.format == "nexpose_xml" and feed.complete
    findings = list(feed.findings)
    assert len(findings) == len({f.fingerprint("nexpose_xml") for f in findings}) == count
    assert _common.pulls(sandbox.app, VENDOR, key) == 2 + count + 10  # asset pages, vulnerability pages, definitions
    statuses = [f.status for f in findings]
    assert statuses.count("fixed") == count // 5
    assert statuses[2] == "accepted" and statuses[0] is None and statuses[4] == "fixed"
    fmt = report_formats()["nexpose_xml"]
    assert all(fmt.map_severity(f).source == "vendor" for f in findings)
    first = findings[0]
    assert (first.rule_id, first.host, first.ip, first.port, first.protocol) == (
        "generated-vuln-0", "host0.example.test", "10.0.0.0", 443, "tcp")
    assert first.cve_ids == ["CVE-2024-2000"] and first.cvss_score == 6.5 and first.extra["proof"] == "proof 0"


def test_pages_are_fetched_lazily(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, count=3, per_asset=PAGE + 1, kinds=500)
    feed = implementation(VENDOR).pull_findings(ctx, FindingsPull())
    assert _common.pulls(sandbox.app, VENDOR, key) == 0
    next(feed.findings)
    assert _common.pulls(sandbox.app, VENDOR, key) == 3  # the asset page, its first vulnerability page, a definition
    for _ in range(PAGE):
        next(feed.findings)
    # the first page's other 99 definitions, then the second vulnerability page and its first definition
    assert _common.pulls(sandbox.app, VENDOR, key) == 3 + (PAGE - 1) + 2


def test_definitions_are_cached_but_bounded(sandbox: SandboxServer, dev_settings: Settings,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, count=20, kinds=4)
    assert len(list(implementation(VENDOR).pull_findings(ctx, FindingsPull()).findings)) == 20
    assert _common.pulls(sandbox.app, VENDOR, key) == 1 + 20 + 4  # each definition read once
    monkeypatch.setattr(_insightvm_pull, "DEFINITIONS_KEPT", 2)
    ctx, key = seeded_ctx(sandbox, dev_settings, count=20, kinds=4)
    assert len(list(implementation(VENDOR).pull_findings(ctx, FindingsPull()).findings)) == 20
    assert _common.pulls(sandbox.app, VENDOR, key) == 1 + 20 + 20  # four kinds in turn never fit in two


def test_a_pull_since_a_time_is_still_a_complete_full_pull(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, count=5)
    feed = implementation(VENDOR).pull_findings(ctx, FindingsPull(since=datetime(2024, 3, 2, tzinfo=UTC)))
    assert feed.complete and len(list(feed.findings)) == 5


def test_a_rate_limit_in_the_middle_of_a_pull_is_waited_and_nothing_is_lost_or_repeated(
        sandbox: SandboxServer, dev_settings: Settings, virtual_clock: VirtualClock) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, count=6, kinds=2, limit_at=3)  # the first definition read
    findings = list(implementation(VENDOR).pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("nexpose_xml") for f in findings}) == len(findings) == 6
    assert 1.0 in virtual_clock.waits
    assert _common.pulls(sandbox.app, VENDOR, key) == 1 + 6 + 2 + 1


def test_bad_credentials_fail_at_auth_without_the_secret(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, marker="bad", count=3)
    feed = implementation(VENDOR).pull_findings(ctx, FindingsPull())
    with pytest.raises(UpstreamError) as err:
        list(feed.findings)
    assert err.value.step == "auth"
    assert all(secret not in err.value.message for secret in ctx.secrets)
