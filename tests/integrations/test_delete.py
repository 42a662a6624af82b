"""Deleting an integration: admin-only, a dry run that counts what goes with it, and writes racing a delete."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import httpx

from tests.conftest import Api

TENABLE = {"vendor": "tenable_vm", "connection": {}, "credentials": {"access_key": "a" * 20, "secret_key": "b" * 20}}
GITHUB = {"vendor": "github_issues", "connection": {}, "credentials": {"token": "ghp_" + "a" * 36}}
RACES = 60


def _race(first: Callable[[], httpx.Response], second: Callable[[], httpx.Response]) -> tuple[int, int]:
    """Start both calls at once; their status codes."""
    barrier, out = threading.Barrier(2), {}

    def run(key: str, call: Callable[[], httpx.Response]) -> None:
        barrier.wait()
        out[key] = call().status_code

    threads = [threading.Thread(target=run, args=("a", first)), threading.Thread(target=run, args=("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out["a"], out["b"]


def test_a_patch_racing_a_delete_is_never_a_500(api: Api) -> None:
    h = api.token()
    seen: Counter[tuple[str, int]] = Counter()
    for i in range(RACES):
        iid = api.client.post("/api/v1/integrations", json={"name": f"r{i}", **TENABLE}, headers=h).json()["id"]
        patched, deleted = _race(
            lambda: api.client.patch(f"/api/v1/integrations/{iid}", json={"name": f"r{i}x", "enabled": False}, headers=h),
            lambda: api.client.delete(f"/api/v1/integrations/{iid}", headers=h))
        seen[("patch", patched)] += 1
        seen[("delete", deleted)] += 1
    assert {code for (_, code) in seen} <= {200, 204, 404, 409}, seen
    assert seen[("delete", 204)] == RACES  # the delete always wins or goes after the patch


def test_other_writes_racing_a_delete_are_never_a_500(api: Api) -> None:
    """Every write to an integration row that may race a delete answers 404 or 409 once the row is
    gone: a second delete, a webhook secret generated, a connection test's stamp."""
    h = api.token()
    seen: Counter[tuple[str, int]] = Counter()
    writes = {
        "delete": lambda iid: api.client.delete(f"/api/v1/integrations/{iid}", headers=h),
        "generate": lambda iid: api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h),
        "regenerate": lambda iid: api.client.post(f"/api/v1/integrations/{iid}/webhook/regenerate",
                                                  json={"grace_seconds": 0}, headers=h),
    }
    for i in range(RACES):
        kind = list(writes)[i % len(writes)]
        iid = api.client.post("/api/v1/integrations", json={"name": f"w{i}", **GITHUB}, headers=h).json()["id"]
        other, deleted = _race(lambda: writes[kind](iid),
                               lambda: api.client.delete(f"/api/v1/integrations/{iid}", headers=h))
        seen[(kind, other)] += 1
        seen[("delete", deleted)] += 1
    assert {code for (_, code) in seen} <= {200, 201, 204, 404, 409}, seen
    # two deletes of one integration: one deletes (and is audited), the other finds nothing
    deletes = api.client.get("/api/v1/audit-events", params={"action": "integration.delete", "limit": 200},
                             headers=h).json()["items"]
    assert len(deletes) == RACES
