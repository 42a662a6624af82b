"""The scanner part of the catalog, and the small pure pieces the connectors rely on."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError

from pmap.connectors.base import ARCHETYPES, secret_field_names
from pmap.connectors.catalog import check_type
from pmap.connectors.vendors import _tenable_export
from pmap.connectors.vendors._support import days_until, expiry, parse_when
from pmap.connectors.vendors.checkmarx import (
    CheckmarxConnection,
    CheckmarxCredentials,
    claims_of,
    iam_base,
    role_checks,
)
from pmap.connectors.vendors.dast import _invicti_end
from pmap.connectors.vendors.snyk import v1_base
from pmap.connectors.vendors.veracode import VeracodeCredentials, VeracodeHmacAuth
from pmap.core.errors import ValidationFailed
from pmap.core.settings import Settings
from pmap.findings.formats.registry import report_formats
from pmap.integrations.service import validate_credentials
from pmap.webhooks.schemes import SCHEMES
from pmap_sandbox.scanners import SANDBOX_VENDORS
from pmap_sandbox.scanners import veracode as sandbox_veracode
from pmap_sandbox.server import SandboxServer

from .cases import VENDORS, catalog_entry, settings_for, unique
from .conftest import run_test


@pytest.mark.parametrize("vendor", VENDORS)
def test_catalog_entry_is_consistent(vendor: str) -> None:
    ct = check_type(catalog_entry(vendor))
    assert set(ct.operations) <= set(ARCHETYPES[ct.category])
    assert all(fmt in report_formats() for fmt in ct.report_formats)
    assert ct.webhook_scheme is None or ct.webhook_scheme in SCHEMES
    assert ct.docs_url and ct.docs_url.startswith("https://")
    # secrets carry the vendor's (and the sandbox descriptor's) field names, or those of another credential kind
    kinds = getattr(ct.credentials_model, "credential_kinds", {})
    other_kinds = {f for fields in kinds.values() for f in fields}
    assert set(secret_field_names(ct.credentials_model)) <= set(SANDBOX_VENDORS[vendor]["valid_credentials"]) | {
        "client_secret"} | other_kinds
    if ct.default_base_url:
        assert ct.connection_model.model_fields["base_url"].default == ct.default_base_url


def test_report_formats_follow_the_brief() -> None:
    expected = {
        "tenable_vm": ("nessus", "tenable_csv"), "nessus": ("nessus", "tenable_csv"),
        "qualys_vmdr": ("qualys_xml", "qualys_csv", "qualys_vmdr_csv"), "rapid7_insightvm": ("nexpose_xml",),
        "zap": ("zap_xml", "zap_json", "sarif"), "veracode": ("veracode_xml", "veracode_json"),
        "runzero": (), "nowsecure": (), "mobsf": ("mobsf_json",),
    }
    for vendor, formats in expected.items():
        assert catalog_entry(vendor).report_formats == formats


def test_veracode_signature_matches_the_sandboxs_independent_check() -> None:
    api_id = "vera-unit-0001"
    secret = sandbox_veracode.secret_for(api_id)
    request = httpx.Request("GET", "https://api.veracode.com:443/appsec/v1/applications?page=2&size=5")
    signed = next(VeracodeHmacAuth(api_id, secret).auth_flow(request))
    header = signed.headers["Authorization"]
    params = dict(re.findall(r"(\w+)=([^,]*)", header.split(" ", 1)[1]))
    assert header.startswith("VERACODE-HMAC-SHA-256 ") and params["id"] == api_id
    assert len(params["nonce"]) == 32 and abs(int(params["ts"]) - int(datetime.now(UTC).timestamp() * 1000)) < 60_000
    # host without port, path with its query: what Veracode's own libraries sign
    expected = sandbox_veracode.signature(api_id, secret, "api.veracode.com", "/appsec/v1/applications?page=2&size=5",
                                          "GET", params["ts"], params["nonce"])
    assert params["sig"] == expected
    again = next(VeracodeHmacAuth(api_id, secret).auth_flow(httpx.Request("GET", "https://api.veracode.com/x")))
    assert again.headers["Authorization"] != header  # a fresh nonce and signature per request


def test_veracode_wrong_secret_fails_at_auth(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("veracode", sandbox.base_url)
    credentials["api_key"] = sandbox_veracode.secret_for(unique("other"))  # valid hex, wrong pair
    assert run_test(dev_settings, "veracode", connection, credentials).failed_step == "auth"


def test_veracode_secret_must_be_hex_and_the_refusal_does_not_echo_it() -> None:
    with pytest.raises(ValidationError):
        VeracodeCredentials(api_id="id", api_key="abc")  # odd length
    with pytest.raises(ValidationFailed) as err:
        validate_credentials(catalog_entry("veracode"), {"api_id": "id", "api_key": "not-hex-but-secret-value"})
    assert [f.field for f in err.value.fields] == ["credentials.api_key"]
    assert "not-hex-but-secret-value" not in repr(err.value.fields) + err.value.message


def test_checkmarx_view_roles_behind_a_composite_role_are_unknown_not_missing() -> None:
    listed, warnings = role_checks({"view-projects", "view-scans", "view-results"})
    assert [granted for _n, _w, granted in listed] == [True, True, True] and warnings == []
    composite, warnings = role_checks({"ast-scanner"})  # Checkmarx's out-of-the-box composite
    assert [granted for _n, _w, granted in composite] == [None, None, None] and "ast-scanner" in warnings[0]
    bare, warnings = role_checks({"create-project"})
    assert [granted for _n, _w, granted in bare] == [False, False, False] and warnings == []


def test_checkmarx_needs_a_key_or_a_client_and_derives_its_iam_host() -> None:
    with pytest.raises(ValidationError):
        CheckmarxCredentials()
    with pytest.raises(ValidationError):
        CheckmarxCredentials(client_id="only-the-id")
    assert CheckmarxCredentials(client_id="c", client_secret="s").api_key is None
    eu = CheckmarxConnection(base_url="https://eu.ast.checkmarx.net", tenant="acme")
    assert iam_base(eu) == "https://eu.iam.checkmarx.net"
    single = CheckmarxConnection(base_url="https://cx.example.com/prefix", tenant="acme")
    assert iam_base(single) == "https://cx.example.com/prefix"
    with pytest.raises(ValidationError):
        CheckmarxConnection(base_url="https://eu.ast.checkmarx.net", tenant="../admin")


def test_checkmarx_claims_are_read_only_from_a_jwt_shape() -> None:
    assert claims_of("not-a-jwt") == {}
    assert claims_of("a.!!!.c") == {}
    assert claims_of("e30.eyJyb2xlc19hc3QiOlsiYSJdfQ.sig") == {"roles_ast": ["a"]}


def test_snyk_v1_base_sits_beside_rest() -> None:
    assert v1_base("https://api.snyk.io/rest") == "https://api.snyk.io/v1"
    assert v1_base("https://api.eu.snyk.io/rest/") == "https://api.eu.snyk.io/v1"
    assert v1_base("http://127.0.0.1:8900/snyk/rest") == "http://127.0.0.1:8900/snyk/v1"


def test_parse_when_reads_vendor_date_shapes() -> None:
    expected = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    for raw in (1704164645, "1704164645", 1704164645000, "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000+0000",
                "2024-01-02 03:04:05 UTC", "2024-01-02T03:04:05"):
        assert parse_when(raw) == expected, raw
    assert parse_when("2024-01-02") == datetime(2024, 1, 2, tzinfo=UTC)
    assert parse_when("soon") is None and parse_when(None) is None and parse_when(True) is None


def test_invicti_license_dates_as_netsparker_documents_them() -> None:
    # GET /account/license as in Netsparker's API reference sample: subscription dates in the account's
    # own format, ISO dates (with offset) per license entry
    sample = {"SubscriptionEndDate": "12/30/2022 04:00 PM", "SubscriptionStartDate": "03/02/2020 04:00 PM",
              "IsSubscriptionEnabled": True,
              "Licenses": [{"EndDate": "2022-12-30T21:00:00+00:00", "MaximumSiteLimit": 8, "ProductDefinition": "Team",
                            "StartDate": "2020-03-02T21:00:00+00:00", "IsActive": True}]}
    assert _invicti_end(sample) == (datetime(2022, 12, 30, 21, tzinfo=UTC), "Team")
    # entries without dates (older generated models): the subscription date, when it reads one way only
    assert _invicti_end({"SubscriptionEndDate": "12/30/2022 04:00 PM", "Licenses": [{"IsActive": True}]}) \
        == (datetime(2022, 12, 30, 16, tzinfo=UTC), None)
    assert _invicti_end({"SubscriptionEndDate": "30/12/2022 04:00 PM"})[0] == datetime(2022, 12, 30, 16, tzinfo=UTC)
    assert _invicti_end({"SubscriptionEndDate": "03/04/2025 04:00 PM"}) == (None, None)  # March 4 or 3 April
    assert _invicti_end({"SubscriptionEndDate": "01/01/1999 01:00 AM"})[0] == datetime(1999, 1, 1, 1, tzinfo=UTC)


def test_expiry_states_and_warnings() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    info, warnings = expiry(now + timedelta(days=400), now=now)
    assert info["status"] == "valid" and info["days_left"] == 400 and warnings == []
    info, warnings = expiry(now + timedelta(days=30), now=now)
    assert info["status"] == "expiring" and "in 30 days" in warnings[0]
    info, warnings = expiry(now - timedelta(hours=1), now=now, status="Expired")
    assert info["status"] == "expired" and info["vendor_status"] == "Expired"
    assert "expired on 2023-12-31" in warnings[0]
    info, warnings = expiry(None, expired=True, now=now)
    assert info == {"type": None, "status": "expired"} and warnings
    assert days_until(now + timedelta(hours=1), now) == 1 and days_until(now - timedelta(hours=1), now) == -1


def test_tenable_export_rows_skip_records_without_a_plugin() -> None:
    data = _tenable_export.to_csv([{"asset": {"ipv4": ["10.0.0.1"]}}, {"plugin": {"id": 1, "name": "x"}, "port": {}}])
    lines = data.decode().splitlines()
    assert len(lines) == 2 and lines[0].startswith("definition.id,definition.name")
    assert lines[1].startswith("1,x,")
