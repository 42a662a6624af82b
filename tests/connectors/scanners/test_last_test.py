"""An integration keeps the outcome of the last test of its saved settings (``last_test``): a pass, then a
failure of the same settings, each recorded; never the test's message; cleared when the settings change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pmap_sandbox.server import SandboxServer, build_app

from ...conftest import Api
from .cases import settings_for

KEYS = {"ok", "at", "latency_ms", "step", "product", "version", "license_expires_at"}


def _create(api: Api, vendor: str, connection: dict[str, Any], credentials: dict[str, Any]) -> str:
    resp = api.client.post("/api/v1/integrations", headers=api.token(),
                           json={"name": f"{vendor} last test", "vendor": vendor, "connection": connection,
                                 "credentials": credentials})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _get(api: Api, row_id: str) -> dict[str, Any]:
    resp = api.client.get(f"/api/v1/integrations/{row_id}", headers=api.token("acme", "viewer"))
    assert resp.status_code == 200
    return resp.json()


def test_a_pass_then_a_failure_of_the_saved_settings(api: Api) -> None:
    with SandboxServer(build_app()) as vendor:  # a vendor of this test's own, to take down half-way
        connection, credentials = settings_for("sonarqube", vendor.base_url, "expiring")
        row_id = _create(api, "sonarqube", connection, credentials)
        assert _get(api, row_id)["last_test"] is None
        passed = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token())
        assert passed.status_code == 200 and passed.json()["ok"] is True, passed.text
        first = _get(api, row_id)
    last = first["last_test"]
    assert set(last) == KEYS
    assert (last["ok"], last["step"], last["product"], last["version"]) == (True, None, "SonarQube", "10.6.0.92116")
    assert isinstance(last["latency_ms"], int) and last["license_expires_at"]
    assert datetime.fromisoformat(last["at"]) == datetime.fromisoformat(first["last_tested_at"])
    # the vendor is gone: the same saved settings now fail, and the failure replaces the pass
    failed = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token())
    assert failed.status_code == 200 and failed.json()["ok"] is False, failed.text
    second = _get(api, row_id)
    now = second["last_test"]
    assert set(now) == KEYS and now["ok"] is False and now["step"] == failed.json()["failed_step"]
    assert now["product"] is None and now["version"] is None and now["license_expires_at"] is None
    assert datetime.fromisoformat(now["at"]) > datetime.fromisoformat(last["at"])
    assert second["last_tested_at"] == first["last_tested_at"]  # still the last success
    assert failed.json()["message"] not in str(now)


def test_edits_are_not_recorded_and_changed_secrets_clear_it(api: Api, sandbox: SandboxServer) -> None:
    connection, credentials = settings_for("tenable_vm", sandbox.base_url, "echo")
    row_id = _create(api, "tenable_vm", connection, credentials)
    echoed = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token())
    assert echoed.status_code == 200, echoed.text
    recorded = _get(api, row_id)["last_test"]
    assert recorded is not None and set(recorded) == KEYS
    for value in credentials.values():
        assert value not in str(recorded)
    # a test with unsaved edits is not a test of the saved settings: nothing recorded
    _, good = settings_for("tenable_vm", sandbox.base_url)
    edited = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token(), json={"credentials": good})
    assert edited.status_code == 200 and edited.json()["ok"] is True, edited.text
    assert _get(api, row_id)["last_test"] == recorded
    changed = api.client.patch(f"/api/v1/integrations/{row_id}", headers=api.token(), json={"credentials": good})
    assert changed.status_code == 200 and changed.json()["last_test"] is None
    assert api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token()).json()["ok"] is True
    assert _get(api, row_id)["last_test"]["ok"] is True
