"""An integration's sync_schedule through the API: validated, shown with its next due time, audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from pmap.integrations.models import Integration
from tests.conftest import Api

BODY = {"vendor": "tenable_vm", "connection": {}, "credentials": {"access_key": "a" * 20, "secret_key": "b" * 20}}


def _create(api: Api, h: dict[str, str], **extra: object) -> dict:
    r = api.client.post("/api/v1/integrations", headers=h, json={**BODY, "name": uuid.uuid4().hex[:8], **extra})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("bad", ["@hourly", "* * * *", "* * * * * *", "61 * * * *", "every day", 5])
def test_anything_but_five_cron_fields_is_a_422_naming_the_field(api: Api, bad: object) -> None:
    h = api.token(role="operator")
    r = api.client.post("/api/v1/integrations", headers=h, json={**BODY, "name": "x", "sync_schedule": bad})
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["error"]["fields"]] == ["sync_schedule"]
    iid = _create(api, h)["id"]
    r = api.client.patch(f"/api/v1/integrations/{iid}", headers=h, json={"sync_schedule": bad})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "sync_schedule"


def test_a_schedule_is_shown_with_its_next_due_time_and_cleared_by_null(api: Api) -> None:
    h = api.token(role="operator")
    out = _create(api, h, sync_schedule=" 0  3 * * 1 ")
    assert out["sync_schedule"] == "0 3 * * 1"
    due = datetime.fromisoformat(out["next_sync_at"])
    assert due > datetime.now(UTC) and due.weekday() == 0 and (due.hour, due.minute) == (3, 0)
    url = f"/api/v1/integrations/{out['id']}"
    assert api.client.patch(url, headers=h, json={"enabled": False}).json()["next_sync_at"] is None
    cleared = api.client.patch(url, headers=h, json={"enabled": True, "sync_schedule": None}).json()
    assert cleared["sync_schedule"] is None and cleared["next_sync_at"] is None
    assert _create(api, h)["sync_schedule"] is None  # none unless asked


def test_setting_a_schedule_starts_it_now_and_is_audited(api: Api) -> None:
    h = api.token(role="operator")
    iid = _create(api, h)["id"]
    before = datetime.now(UTC)
    r = api.client.patch(f"/api/v1/integrations/{iid}", headers=h, json={"sync_schedule": "*/15 * * * *"})
    assert r.status_code == 200, r.text
    with api.state.sessions() as s:
        since = s.get_one(Integration, uuid.UUID(iid)).sync_schedule_since
    assert since is not None and since >= before.replace(microsecond=0)
    events = api.client.get("/api/v1/audit-events", headers=api.token(),
                            params={"action": "integration.update"}).json()["items"]
    assert any("sync_schedule" in e["detail"]["changed"] for e in events if e["integration_id"] == iid)
    viewer = api.token(role="viewer")
    assert api.client.patch(f"/api/v1/integrations/{iid}", headers=viewer,
                            json={"sync_schedule": None}).status_code == 403
