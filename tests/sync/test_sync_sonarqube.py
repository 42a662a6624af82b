"""SonarQube syncs against the sandbox: every page of /api/issues/search, past its 10,000-result window,
closed issues resolved, incremental pulls by update date, a refused token."""

from __future__ import annotations

import time
from typing import Any

from pmap_sandbox.server import SandboxServer
from tests.conftest import Api, VirtualClock

from .conftest import integration, sync, unique

SQ = "sonarqube"


def test_a_first_sync_pages_every_issue_and_stores_closed_ones_resolved(
        api: Api, sandbox: SandboxServer, seed: Any, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(SQ, 1_203, fixed=[0, 1, 600])  # three pages of 500
    iid = integration(api, headers, sandbox, SQ, {"token": unique()}, project_key="shop")
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["format"] == "sonarqube_json" and result["full"] is True
    assert result["parsed"] == 1_203 and result["created"] == 1_203 and result["duplicates"] == 0
    assert result["created_resolved"] == 3 and result["unknown_severity"] == 0


def test_a_sync_gets_past_the_searchs_10000_result_window(api: Api, sandbox: SandboxServer, seed: Any,
                                                          virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(SQ, 10_050)
    iid = integration(api, headers, sandbox, SQ, {"token": unique()})
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded", job
    assert job["result"]["parsed"] == 10_050 and job["result"]["duplicates"] == 0


def test_an_incremental_sync_reads_what_changed_and_resolves_what_was_closed(
        api: Api, sandbox: SandboxServer, seed: Any, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(SQ, 30, at=time.time() - 3600)
    iid = integration(api, headers, sandbox, SQ, {"token": unique()})
    assert sync(api, headers, iid)["result"]["created"] == 30
    again = sync(api, headers, iid)
    assert again["result"]["parsed"] == 0 and again["result"]["full"] is False
    seed(SQ, 31, fixed=[3, 30])
    changed = sync(api, headers, iid)["result"]
    assert changed["parsed"] == 2 and changed["resolved"] == 1 and changed["created"] == 1
    assert changed["created_resolved"] == 1


def test_a_refused_token_fails_the_sync_at_step_auth(api: Api, sandbox: SandboxServer, seed: Any,
                                                     virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(SQ, 3)
    token = unique("echo")
    iid = integration(api, headers, sandbox, SQ, {"token": token})
    job = sync(api, headers, iid)
    assert job["status"] == "failed", job
    last = api.client.get(f"/api/v1/integrations/{iid}", headers=headers).json()["last_sync"]
    assert last["status"] == "failed" and last["step"] == "auth"
    assert token not in str(job) and token not in str(last)


def test_a_rate_limited_search_is_waited_out_with_the_vendors_retry_after(
        api: Api, sandbox: SandboxServer, seed: Any, virtual_clock: VirtualClock) -> None:
    headers = api.token(role="operator")
    seed(SQ, 7)
    iid = integration(api, headers, sandbox, SQ, {"token": unique("ratelimit")})
    job = sync(api, headers, iid)
    assert job["status"] == "succeeded", job
    assert job["result"]["created"] == 7
    assert 1.0 in virtual_clock.waits, "the sandbox's Retry-After: 1 was waited"
