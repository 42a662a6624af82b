"""Connection tests of work trackers and CI/CD vendors through PMAP's HTTP API (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from pmap_sandbox.server import SandboxServer
from tests.conftest import Api

from .cases import settings_for


@pytest.mark.parametrize("vendor", ["jira_cloud", "azure_pipelines"])
def test_unsaved_test_through_the_api(vendor: str, api: Api, sandbox: SandboxServer) -> None:
    h = api.token()
    connection, credentials = settings_for(vendor, sandbox.base_url)
    r = api.client.post("/api/v1/integrations/test", json={"vendor": vendor, "connection": connection,
                                                           "credentials": credentials}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["product"]
    for value in credentials.values():
        assert value not in r.text

    connection, credentials = settings_for(vendor, sandbox.base_url, "bad")
    r = api.client.post("/api/v1/integrations/test", json={"vendor": vendor, "connection": connection,
                                                           "credentials": credentials}, headers=h)
    assert r.status_code == 200 and r.json()["ok"] is False and r.json()["failed_step"] == "auth"


def test_saved_test_stamps_last_tested_and_guards_the_secret(api: Api, sandbox: SandboxServer,
                                                            closed_port: int) -> None:
    h = api.token()
    connection, credentials = settings_for("github_issues", sandbox.base_url)
    r = api.client.post("/api/v1/integrations", json={"name": "gh", "vendor": "github_issues",
                                                      "connection": connection, "credentials": credentials}, headers=h)
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    assert r.json()["last_tested_at"] is None

    r = api.client.post(f"/api/v1/integrations/{iid}/test", headers=h)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=h).json()["last_tested_at"] is not None

    # the saved token may not be sent to another host
    elsewhere = {"base_url": f"http://127.0.0.1:{closed_port}/github_issues"}
    r = api.client.post(f"/api/v1/integrations/{iid}/test", json={"connection": elsewhere}, headers=h)
    assert r.status_code == 422
    assert [f["field"] for f in r.json()["error"]["fields"]] == ["credentials.token"]

    # an edit on the same target runs with the saved token, and is not stamped as a test of the saved settings
    r = api.client.post(f"/api/v1/integrations/{iid}/test", json={"connection": {"repository": "acme/nope"}}, headers=h)
    assert r.status_code == 200 and r.json()["failed_step"] == "permission"
