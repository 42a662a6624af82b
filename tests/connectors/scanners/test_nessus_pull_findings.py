"""Nessus findings pulls against the sandbox: the latest completed run of each configured scan, exported and
read scan by scan (one export in memory), complete only when every scan was read.

Nessus keeps no fixed state and has no paging, so it is not in the generic CASES table; its export flow is
``GET /scans/{id}`` (history), ``POST /scans/{id}/export?history_id=``, two status polls and the download:
five counted requests per scan.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pmap.connectors.base import FindingsPull, Operation, OperationContext
from pmap.core.errors import UpstreamError, ValidationFailed
from pmap.core.settings import Settings
from pmap.findings.formats.registry import report_formats
from pmap_sandbox.scanners import _common
from pmap_sandbox.scanners import nessus as nessus_sandbox
from pmap_sandbox.server import SandboxServer
from tests.conftest import VirtualClock

from .cases import catalog_entry, implementation
from .conftest import pull_context

PER_SCAN = 5  # history, export, two status polls, download


def seeded_ctx(sandbox: SandboxServer, settings: Settings, scans: list[int], marker: str = "ok",
               configured: list[int] | None = None, **seed: Any) -> tuple[OperationContext, str]:
    """A pull context whose account holds ``scans`` of ``count`` findings each; ``configured`` are scan_ids."""
    scan_ids = scans if configured is None else configured
    return pull_context(sandbox, settings, "nessus", "access_key", marker, connection={"scan_ids": scan_ids},
                        scans=scans, **seed)


def test_the_catalog_offers_sync_findings() -> None:
    assert Operation.SYNC_FINDINGS in catalog_entry("nessus").operations


def test_every_configured_scan_is_read_and_the_pull_is_complete(sandbox: SandboxServer,
                                                                dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, [7, 8, 9], count=40)
    feed = implementation("nessus").pull_findings(ctx, FindingsPull())
    assert feed.format == "nessus" and feed.complete
    findings = list(feed.findings)
    assert len(findings) == 120
    assert len({f.fingerprint("nessus") for f in findings}) == 120
    assert _common.pulls(sandbox.app, "nessus", key) == 3 * PER_SCAN
    fmt = report_formats()["nessus"]
    assert all(f.status is None for f in findings)  # Nessus exposes no fixed state
    assert all(fmt.map_severity(f).source == "vendor" for f in findings)


def test_scans_are_exported_lazily_one_at_a_time(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, [7, 8], count=10)
    feed = implementation("nessus").pull_findings(ctx, FindingsPull())
    assert _common.pulls(sandbox.app, "nessus", key) == 2  # the two histories, no export yet
    for _ in range(10):
        next(feed.findings)
    assert _common.pulls(sandbox.app, "nessus", key) == 2 + 4  # the first scan's export only
    next(feed.findings)
    assert _common.pulls(sandbox.app, "nessus", key) == 2 + 8


def test_the_latest_completed_run_is_exported_not_a_running_one(sandbox: SandboxServer,
                                                                dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, [7], count=3, running=[7])
    feed = implementation("nessus").pull_findings(ctx, FindingsPull())
    assert feed.complete
    assert len(list(feed.findings)) == 3  # the sandbox refuses an export of a run that did not complete


def test_a_scan_without_a_completed_run_makes_the_pull_incomplete(sandbox: SandboxServer,
                                                                  dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, [7, 8], count=4, never=[8])
    feed = implementation("nessus").pull_findings(ctx, FindingsPull())
    assert not feed.complete
    assert len(list(feed.findings)) == 4


def test_an_incremental_pull_skips_scans_whose_latest_run_ended_before_since(sandbox: SandboxServer,
                                                                             dev_settings: Settings) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, [7, 8, 9], count=6)
    since = nessus_sandbox.SEED_EPOCH + timedelta(hours=2, minutes=30)  # scan 9 ended at hour 3
    feed = implementation("nessus").pull_findings(ctx, FindingsPull(since=since))
    assert not feed.complete
    assert len(list(feed.findings)) == 6
    assert _common.pulls(sandbox.app, "nessus", key) == 3 + 4


def test_no_configured_scan_is_a_validation_failure(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, [7], configured=[], count=1)
    with pytest.raises(ValidationFailed):
        implementation("nessus").pull_findings(ctx, FindingsPull())


def test_an_unknown_scan_fails_with_a_step(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, [7], configured=[7, 99], count=1)
    with pytest.raises(UpstreamError) as err:
        implementation("nessus").pull_findings(ctx, FindingsPull())
    assert err.value.step in {"response", "not_found", "http"}, err.value.step


def test_a_rate_limit_in_the_middle_of_a_pull_is_waited(sandbox: SandboxServer, dev_settings: Settings,
                                                        virtual_clock: VirtualClock) -> None:
    ctx, key = seeded_ctx(sandbox, dev_settings, [7, 8], count=5, limit_at=4)  # a status poll of scan 7
    findings = list(implementation("nessus").pull_findings(ctx, FindingsPull()).findings)
    assert len({f.fingerprint("nessus") for f in findings}) == len(findings) == 10
    assert 1.0 in virtual_clock.waits
    assert _common.pulls(sandbox.app, "nessus", key) == 2 * PER_SCAN + 1


def test_bad_credentials_fail_at_auth_without_the_secret(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, [7], marker="bad", count=1)
    with pytest.raises(UpstreamError) as err:
        implementation("nessus").pull_findings(ctx, FindingsPull())
    assert err.value.step == "auth"
    assert all(secret not in err.value.message for secret in ctx.secrets)


def test_scan_ids_are_positive_numbers() -> None:
    model = catalog_entry("nessus").connection_model
    assert model(base_url="https://nessus.example.test:8834", scan_ids=[3, 4]).model_dump()["scan_ids"] == [3, 4]
    with pytest.raises(ValueError):
        model(base_url="https://nessus.example.test:8834", scan_ids=[0])


def test_an_export_declaring_entities_is_refused(sandbox: SandboxServer, dev_settings: Settings) -> None:
    ctx, _key = seeded_ctx(sandbox, dev_settings, [7], count=2, entities=True)
    with pytest.raises(UpstreamError) as err:
        list(implementation("nessus").pull_findings(ctx, FindingsPull()).findings)
    assert err.value.step == "response" and "entit" in err.value.message.lower(), err.value.message
