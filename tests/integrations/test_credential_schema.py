"""Credential fields state their minimum length in the catalog's JSON Schema (``minLength``), and
that minimum is the one the API enforces, over the whole catalog."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from pmap.connectors.base import SECRET_MIN_CHARS, model_json_schema, secret_field_names
from pmap.connectors.catalog import connector_types
from pmap_sandbox.server import build_app
from tests.conftest import Api


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    """The sandbox's example integration of each vendor type (a valid body to shorten one field of)."""
    with TestClient(build_app(), base_url="http://127.0.0.1:8900") as sandbox:
        listed: dict[str, dict[str, Any]] = sandbox.get("/_sandbox/vendors").json()
    return {e["vendor"]: e for e in listed.values()}


def test_every_credential_field_states_its_minimum(api: Api) -> None:
    types = {t["vendor"]: t for t in api.client.get("/api/v1/connector-types", headers=api.token()).json()}
    assert set(types) == set(connector_types())
    seen_secrets = 0
    for vendor, ct in connector_types().items():
        props = types[vendor]["credentials_schema"].get("properties", {})
        assert set(props) == set(ct.credentials_model.model_fields), vendor
        for name, prop in props.items():
            assert prop.get("minLength", 0) >= SECRET_MIN_CHARS, (vendor, name, prop)
        for name in secret_field_names(ct.credentials_model):
            assert props[name]["writeOnly"] is True and props[name]["minLength"] == SECRET_MIN_CHARS, (vendor, name)
            seen_secrets += 1
    assert seen_secrets >= 30
    # connection settings are not credentials: no minimum imposed on them
    assert "minLength" not in types["tenable_vm"]["connection_schema"]["properties"]["base_url"]


def _post(api: Api, h: dict[str, str], example: dict[str, Any], field: str, value: str) -> Any:
    body = {"name": f"{example['vendor']}-{field}-{len(value)}", "vendor": example["vendor"],
            "connection": example["connection"], "credentials": {**example["valid_credentials"], field: value}}
    return api.client.post("/api/v1/integrations", json=body, headers=h)


def test_the_stated_minimum_is_the_enforced_one(api: Api, examples: dict[str, dict[str, Any]]) -> None:
    h = api.token()
    schema = {t["vendor"]: t["credentials_schema"] for t in api.client.get("/api/v1/connector-types", headers=h).json()}
    checked = 0
    for vendor, example in examples.items():
        for field in example["valid_credentials"]:
            least = schema[vendor]["properties"][field]["minLength"]
            short = _post(api, h, example, field, "k" * (least - 1))
            assert short.status_code == 422, (vendor, field, short.text)
            assert {"field": f"credentials.{field}",
                    "reason": f"is too short for a credential (at least {least} characters)"} in short.json()[
                        "error"]["fields"], (vendor, field, short.text)
            enough = _post(api, h, example, field, "k" * least)
            reasons = enough.json().get("error", {}).get("fields", []) if enough.status_code != 201 else []
            assert not [r for r in reasons if r["field"] == f"credentials.{field}" and "short" in r["reason"]], (
                vendor, field, enough.text)
            checked += 1
    assert checked >= 35


def test_schemas_read_as_forms_show_them() -> None:
    """Titles spelled as people spell them, and no reST literal markup in a description a form shows."""
    for vendor, ct in connector_types().items():
        for model, credentials in ((ct.connection_model, False), (ct.credentials_model, True)):
            schema = model_json_schema(model, credentials=credentials)
            for node in (schema, *schema.get("properties", {}).values()):
                assert "``" not in str(node.get("description", "")), vendor
            props = schema.get("properties", {})
            if "base_url" in props:
                assert props["base_url"]["title"] == "Base URL", vendor
                assert props["verify_tls"]["title"] == "Verify TLS", vendor
