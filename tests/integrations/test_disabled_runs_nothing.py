"""A disabled integration runs nothing: no import, no saved connection test, no sync (409
integration_disabled), and nothing is called or written."""

from __future__ import annotations

from sqlalchemy import func, select

from pmap.findings.models import Finding
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, nessus_report, upload


def test_a_disabled_integration_imports_tests_and_syncs_nothing(api: Api) -> None:
    h = api.token(role="operator")
    iid = create_integration(api, h)
    assert api.client.patch(f"/api/v1/integrations/{iid}", headers=h, json={"enabled": False}).status_code == 200
    answers = [
        upload(api, iid, nessus_report([{"plugin": 1}]), h),
        api.client.post(f"/api/v1/integrations/{iid}/test", headers=h, json={}),
        api.client.post(f"/api/v1/integrations/{iid}/sync", headers=h),
    ]
    assert [(r.status_code, r.json()["error"]["code"]) for r in answers] == [(409, "integration_disabled")] * 3
    with api.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Finding)) == 0
    assert api.client.patch(f"/api/v1/integrations/{iid}", headers=h, json={"enabled": True}).status_code == 200
    assert upload(api, iid, nessus_report([{"plugin": 1}]), h).status_code == 200  # enabled again: it imports
