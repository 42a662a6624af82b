"""The audit log's actor and time filters narrow it, on both databases."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.conftest import Api


def test_actor_and_time_range_filters(api: Api) -> None:
    admin = api.token(role="admin")
    time.sleep(0.05)  # the admin token's own creation stays before `before`
    before = datetime.now(UTC)
    for name in ("alpha-laptop", "beta-ci"):
        r = api.client.post("/api/v1/tokens", json={"name": name, "role": "viewer"}, headers=admin)
        assert r.status_code == 201
    after = datetime.now(UTC) + timedelta(seconds=1)

    def listed(**params: str) -> list[dict[str, object]]:
        r = api.client.get("/api/v1/audit-events", params=params, headers=admin)
        assert r.status_code == 200, r.text
        items: list[dict[str, object]] = r.json()["items"]
        return items

    creations = [e for e in listed(action="token.create", since=before.isoformat()) if e["detail"]]
    assert {e["detail"]["name"] for e in creations} == {"alpha-laptop", "beta-ci"}  # type: ignore[index]
    assert listed(action="token.create", since=after.isoformat()) == []
    earlier = listed(action="token.create", until=before.isoformat())
    assert [e["detail"]["name"] for e in earlier] == ["test-admin"]  # type: ignore[index]
    assert all("TEST-ADMIN".lower() in str(e["actor"]).lower() for e in listed(actor="TEST-ADMIN"))
    assert listed(actor="nobody-by-this-name") == []
    naive = api.client.get("/api/v1/audit-events", params={"since": "2026-01-01T00:00:00"}, headers=admin)
    assert naive.status_code == 422  # an instant needs its time zone
