"""Scanner connection tests through the HTTP API: unsaved, saved (stamping last_tested_at), and a saved
test pointed at another target without its secrets (refused)."""

from __future__ import annotations

from typing import Any

import pytest

from pmap_sandbox.server import SandboxServer

from ...conftest import Api
from .cases import settings_for

UNSAVED = ["nessus", "checkmarx_one", "snyk", "veracode", "runzero", "qualys_vmdr"]


@pytest.mark.parametrize("vendor", UNSAVED)
def test_unsaved_test_through_the_api(vendor: str, api: Api, sandbox: SandboxServer) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    resp = api.client.post("/api/v1/integrations/test", headers=api.token(),
                           json={"vendor": vendor, "connection": connection, "credentials": credentials})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ok"] is True and body["product"] and body["failed_step"] is None
    for value in credentials.values():
        assert value not in resp.text


def _create(api: Api, vendor: str, connection: dict[str, Any], credentials: dict[str, Any]) -> str:
    resp = api.client.post("/api/v1/integrations", headers=api.token(),
                           json={"name": f"{vendor} test", "vendor": vendor, "connection": connection,
                                 "credentials": credentials})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_saved_test_stamps_last_tested_at(api: Api, sandbox: SandboxServer) -> None:
    row_id = _create(api, "sonarqube", *settings_for("sonarqube", sandbox.base_url))
    assert api.client.get(f"/api/v1/integrations/{row_id}", headers=api.token()).json()["last_tested_at"] is None
    resp = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token())
    assert resp.status_code == 200 and resp.json()["ok"] is True and resp.json()["version"] == "10.6.0.92116"
    assert api.client.get(f"/api/v1/integrations/{row_id}", headers=api.token()).json()["last_tested_at"]
    renamed = api.client.patch(f"/api/v1/integrations/{row_id}", headers=api.token(), json={"name": "renamed"})
    assert renamed.json()["last_tested_at"]  # a new name changes nothing that was tested
    new_token = api.client.patch(f"/api/v1/integrations/{row_id}", headers=api.token(),
                                 json={"credentials": settings_for("sonarqube", sandbox.base_url)[1]})
    assert new_token.status_code == 200 and new_token.json()["last_tested_at"] is None  # not tested with these


def test_failed_saved_test_does_not_stamp(api: Api, sandbox: SandboxServer) -> None:
    row_id = _create(api, "tenable_vm", *settings_for("tenable_vm", sandbox.base_url, "bad"))
    resp = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token())
    assert resp.status_code == 200 and resp.json()["failed_step"] == "auth"
    assert api.client.get(f"/api/v1/integrations/{row_id}", headers=api.token()).json()["last_tested_at"] is None


def test_saved_test_at_another_target_needs_the_secrets(api: Api, sandbox: SandboxServer,
                                                       tls_sandbox: SandboxServer) -> None:
    connection, credentials = settings_for("checkmarx_one", sandbox.base_url)
    row_id = _create(api, "checkmarx_one", connection, credentials)
    elsewhere = {"base_url": tls_sandbox.base_url + "/checkmarx_one", "ca_bundle": tls_sandbox.ca_pem}
    refused = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token(),
                              json={"connection": elsewhere})
    assert refused.status_code == 422
    assert "credentials.api_key" in refused.text
    again = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token(),
                            json={"connection": elsewhere, "credentials": {"api_key": credentials["api_key"]}})
    assert again.status_code == 200 and again.json()["ok"] is True, again.text
    # supplying some of the secrets does not let the stored others travel to the new target
    connection, credentials = settings_for("nessus", sandbox.base_url)
    row_id = _create(api, "nessus", connection, credentials)
    partial = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token(), json={
        "connection": {"base_url": tls_sandbox.base_url + "/nessus", "ca_bundle": tls_sandbox.ca_pem},
        "credentials": {"access_key": credentials["access_key"]}})
    assert partial.status_code == 422 and "credentials.secret_key" in partial.text, partial.text
    # the same URL with TLS verification off is not the same trust: the stored secrets stay home
    unverified = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token(),
                                 json={"connection": {"verify_tls": False}})
    assert unverified.status_code == 422 and "credentials.secret_key" in unverified.text, unverified.text


@pytest.mark.parametrize("removed", [None, ""])
def test_a_saved_test_without_the_pinned_ca_needs_the_secrets(
        api: Api, tls_sandbox: SandboxServer, removed: str | None) -> None:
    connection, credentials = settings_for("nessus", tls_sandbox.base_url)
    row_id = _create(api, "nessus", {**connection, "ca_bundle": tls_sandbox.ca_pem}, credentials)
    pinned = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token())
    assert pinned.status_code == 200 and pinned.json()["ok"] is True, pinned.text
    # the system store instead of the pinned CA is another check of who answers: not with the stored secrets
    unpinned = api.client.post(f"/api/v1/integrations/{row_id}/test", headers=api.token(),
                               json={"connection": {"ca_bundle": removed}})
    assert unpinned.status_code == 422, unpinned.text
    assert {f["field"] for f in unpinned.json()["error"]["fields"]} == {"credentials.access_key",
                                                                        "credentials.secret_key"}
