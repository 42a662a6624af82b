"""Every example integration the sandbox lists (``GET /_sandbox/vendors``) fits its PMAP vendor
type: the credentials validate against the credentials model, the connection against the connection
model, and PMAP creates the integration from them as they are."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from pmap.connectors.catalog import connector_types
from pmap_sandbox.server import build_app
from tests.conftest import Api


@pytest.fixture(scope="module")
def listed() -> dict[str, dict[str, Any]]:
    with TestClient(build_app(), base_url="http://127.0.0.1:8900") as sandbox:
        vendors: dict[str, dict[str, Any]] = sandbox.get("/_sandbox/vendors").json()
    return vendors


def test_every_example_names_a_vendor_type_of_the_catalog(listed: dict[str, dict[str, Any]]) -> None:
    assert len(listed) >= 30
    for key, example in listed.items():
        assert example["vendor"] in connector_types(), key
        base_url = "http://127.0.0.1:8900" + example["base_path"]
        assert example["connection"]["base_url"] == example["base_url"] == base_url


def test_examples_validate_against_the_vendor_models(listed: dict[str, dict[str, Any]]) -> None:
    for key, example in listed.items():
        ct = connector_types()[example["vendor"]]
        # extra="forbid" on both models: a setting listed as a credential (Snyk's org_id) fails here
        ct.credentials_model.model_validate(example["valid_credentials"])
        ct.connection_model.model_validate(example["connection"])
        assert set(example["valid_credentials"]) <= set(ct.credentials_model.model_fields), key


def test_settings_are_not_listed_as_credentials(listed: dict[str, dict[str, Any]]) -> None:
    assert "org_id" not in listed["snyk"]["valid_credentials"]
    assert listed["snyk"]["connection"]["org_id"]
    assert listed["checkmarx_one"]["connection"]["tenant"] == "sandbox"
    assert listed["github_actions"]["vendor"] == "github"


def test_pmap_creates_every_example_integration(api: Api, listed: dict[str, dict[str, Any]]) -> None:
    h = api.token()
    for key, example in listed.items():
        body = {"name": f"sandbox {key}", "vendor": example["vendor"], "connection": example["connection"],
                "credentials": example["valid_credentials"]}
        r = api.client.post("/api/v1/integrations", json=body, headers=h)
        assert r.status_code == 201, (key, r.text)
        assert r.json()["credentials_set"] == sorted(example["valid_credentials"]), key
