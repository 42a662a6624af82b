"""Hostile values in credentials, settings, names and cursors: a clear 4xx (or a failed test step),
never a 500, never the value echoed back, never stored in a form PostgreSQL refuses."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from pmap.core import redaction
from pmap.core.seams import Actor, Purpose
from pmap.integrations.models import Integration
from tests.conftest import Api, canary

SNYK = {"base_url": "http://127.0.0.1:9/snyk/rest"}  # nothing listens: these fail before any packet


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("shape", ["{}\nrest-of-token", "{}\x00", "{}\ttab", "{}\r\nX-Injected: 1", "{}\x85nel"])
def test_credentials_with_control_characters_are_refused_without_echo(api: Api, shape: str) -> None:
    h = api.token()
    planted = canary("ctl")
    value = shape.format(planted)
    bodies = [
        ("/api/v1/integrations/test", {"vendor": "snyk", "connection": SNYK, "credentials": {"token": value}}),
        ("/api/v1/integrations", {"name": "snyk-ctl", "vendor": "snyk", "connection": SNYK,
                                  "credentials": {"token": value}}),
        ("/api/v1/integrations", {"name": "nessus-ctl", "vendor": "nessus",
                                  "connection": {"base_url": "http://127.0.0.1:9/nessus", "api_key": value},
                                  "credentials": {}}),
    ]
    for path, body in bodies:
        r = api.client.post(path, json=body, headers=h)
        assert r.status_code == 422, r.text
        assert "control characters" in r.text and planted not in r.text


def test_a_pasted_token_loses_its_surrounding_whitespace_and_short_values_are_refused(api: Api) -> None:
    h = api.token()
    token = canary("ws")
    r = api.client.post("/api/v1/integrations", json={"name": "snyk-ws", "vendor": "snyk", "connection": SNYK,
                                                      "credentials": {"token": f"  {token}\n"}}, headers=h)
    assert r.status_code == 201, r.text
    with api.state.sessions() as session:
        row = session.get_one(Integration, uuid.UUID(r.json()["id"]))
        actor = Actor("system", "test", row.organization_id)
        with api.state.resolver.resolve(row, purpose=Purpose.SYNC, actor=actor) as resolved:
            assert resolved.get("token") == token
    for short in ("abc", "", "   "):
        r = api.client.post("/api/v1/integrations/test",
                            json={"vendor": "snyk", "connection": SNYK, "credentials": {"token": short}}, headers=h)
        assert r.status_code == 422 and "too short" in r.text, r.text


def test_a_non_ascii_credential_fails_the_test_at_auth_not_with_a_500(api: Api) -> None:
    h = api.token()
    value = canary("é") + "é"
    r = api.client.post("/api/v1/integrations/test",
                        json={"vendor": "snyk", "connection": SNYK, "credentials": {"token": value}}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False and r.json()["failed_step"] == "auth"
    assert value not in r.text and value[:-1] not in r.text


def test_a_ca_bundle_that_is_not_ascii_fails_the_test_at_tls(api: Api) -> None:
    h = api.token()
    connection = {**SNYK, "base_url": "https://127.0.0.1:9/snyk/rest", "ca_bundle": "é not a PEM"}
    r = api.client.post("/api/v1/integrations/test",
                        json={"vendor": "snyk", "connection": connection, "credentials": {"token": canary()}},
                        headers=h)
    assert r.status_code == 200 and r.json()["failed_step"] == "tls", r.text
    nul = {**connection, "ca_bundle": "-----BEGIN CERTIFICATE-----\x00"}
    r = api.client.post("/api/v1/integrations",
                        json={"name": "nul-ca", "vendor": "snyk", "connection": nul,
                              "credentials": {"token": canary()}}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "connection.ca_bundle", r.text


def _create_nessus_at(api: Api, headers: dict[str, str], base_url: str) -> Any:
    """Try to create a Nessus integration at ``base_url`` (fresh canary secrets); the answer."""
    return api.client.post("/api/v1/integrations", headers=headers, json={
        "name": "url-check", "vendor": "nessus", "connection": {"base_url": base_url},
        "credentials": {"access_key": canary(), "secret_key": canary()}})


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9/nessus?token={}", "http://127.0.0.1:9/nessus#{}",
                                      "http:// 127.0.0.1/{}", "http://" + "a" * 64 + ".example/{}",
                                      "http://pmap:{}@127.0.0.1:9/nessus", "http://127.0.0.1:9/nessus {}"])
def test_base_urls_that_could_carry_a_secret_or_name_no_host_are_refused(api: Api, base_url: str) -> None:
    h = api.token()
    planted = canary("url")
    r = _create_nessus_at(api, h, base_url.format(planted))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["fields"][0]["field"] == "connection.base_url" and planted not in r.text
    assert api.client.get("/api/v1/integrations", headers=h).json()["items"] == []


@pytest.mark.parametrize("base_url", ["http://admin:{}@127.0.0.1:9/nessus", "http://admin:{}/x@127.0.0.1:9/nessus",
                                      "http://admin:a@{}@127.0.0.1:9/nessus", "http://{}@127.0.0.1:9/nessus",
                                      "http://admin:{}@[::1]:9/nessus"])
def test_a_base_url_with_user_and_password_is_refused_saying_why(api: Api, base_url: str) -> None:
    planted = canary("pw")
    r = _create_nessus_at(api, api.token(), base_url.format(planted))
    assert r.status_code == 422, r.text
    problem = r.json()["error"]["fields"][0]
    assert problem["field"] == "connection.base_url" and "credentials" in problem["reason"], r.text
    assert planted not in r.text


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9/api/@scope", "http://127.0.0.1:9/a/@b", "http://[::1]:9/a@b"])
def test_an_at_sign_in_a_base_url_path_is_not_mistaken_for_credentials(api: Api, base_url: str) -> None:
    r = _create_nessus_at(api, api.token(), base_url)
    assert r.status_code == 201, r.text


def test_names_labels_and_settings_with_nul_or_line_breaks_are_refused(api: Api) -> None:
    h = api.token()
    creds = {"access_key": canary(), "secret_key": canary()}
    conn = {"base_url": "http://127.0.0.1:9/nessus"}
    cases = [
        ("post", "/api/v1/integrations", {"name": "a\x00b", "vendor": "nessus", "connection": conn,
                                          "credentials": creds}),
        ("post", "/api/v1/integrations", {"name": "a\nforged log line", "vendor": "nessus", "connection": conn,
                                          "credentials": creds}),
        ("post", "/api/v1/integrations", {"name": "c1\x85next line", "vendor": "nessus", "connection": conn,
                                          "credentials": creds}),
        ("post", "/api/v1/integrations", {"name": "ok", "vendor": "jira_cloud",
                                          "connection": {"base_url": "http://127.0.0.1:9/jira", "project_key": "S\x00"},
                                          "credentials": {"email": "a@b.test", "api_token": canary()}}),
        ("post", "/api/v1/tokens", {"name": "t\x00", "role": "viewer"}),
        ("post", "/api/v1/rules", {"name": "r\x00", "condition": 'severity == "low"', "action": "suppress"}),
        ("post", "/api/v1/rules", {"name": "r", "condition": 'severity == "low"\x00', "action": "suppress"}),
        ("post", "/api/v1/rules", {"name": "r", "condition": 'title.contains("a\x00b")', "action": "suppress"}),
        ("post", "/api/v1/rules", {"name": "r", "condition": 'severity == "low"', "action": "tag", "value": "a\nb"}),
    ]
    for method, path, body in cases:
        r = getattr(api.client, method)(path, json=body, headers=h)
        assert r.status_code == 422, (path, body, r.text)
    assert api.client.get("/api/v1/integrations", headers=h).json()["items"] == []
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    fine = api.client.post("/api/v1/integrations", headers=h, json={"name": "multi-line CA is fine", "vendor": "nessus",
                           "connection": {**conn, "ca_bundle": pem}, "credentials": creds})
    assert fine.status_code == 201, fine.text


def test_ticket_labels_are_bounded_one_line_text(api: Api) -> None:
    h = api.token()
    fake = "00000000-0000-0000-0000-000000000000"
    for labels in (["\x00"], ["a\nb"], ["x" * 101], [""], ["l"] * 21):
        r = api.client.post(f"/api/v1/findings/{fake}/tickets", headers=h,
                            json={"integration_id": fake, "labels": labels})
        assert r.status_code == 422, (labels, r.text)


@pytest.mark.parametrize("cursor", [
    _b64(["2026-11-29T07:02:33+00:00", 123]),
    _b64([123, "835282be-34c8-4cab-aa2c-fd3dcda98374"]),
    _b64(["9999-12-31T23:59:59-23:59", "835282be-34c8-4cab-aa2c-fd3dcda98374"]),
    _b64(["0001-01-01T00:00:00+23:59", "835282be-34c8-4cab-aa2c-fd3dcda98374"]),
    _b64({"a": 1}), _b64(["x", "y", "z"]), _b64(None), "%%%", "",
])
def test_crafted_cursors_are_a_400_on_every_paginated_list(api: Api, cursor: str) -> None:
    h = api.token()
    iid = api.client.post("/api/v1/integrations", headers=h, json={
        "name": "n", "vendor": "nessus", "connection": {"base_url": "http://127.0.0.1:9/nessus"},
        "credentials": {"access_key": canary(), "secret_key": canary()}}).json()["id"]
    for path in ("/api/v1/integrations", "/api/v1/jobs", "/api/v1/findings", "/api/v1/audit-events", "/api/v1/tokens",
                 f"/api/v1/integrations/{iid}/imports", f"/api/v1/integrations/{iid}/webhook/deliveries",
                 f"/api/v1/integrations/{iid}/webhook/ticket-events"):
        r = api.client.get(path, params={"cursor": cursor}, headers=h)
        assert r.status_code in ((200,) if cursor == "" else (400,)), (path, r.text)


def test_masking_also_catches_the_escaped_forms_errors_print() -> None:
    planted = canary("esc")
    value = planted + "\nrest\x00é"  # a value stored before such values were refused (non-ASCII: each form differs)
    with redaction.secrets_in_use([value]):
        for printed in (repr(value), repr(value.encode()), value.encode("unicode_escape").decode()):
            masked = redaction.scrub(f"Illegal header value {printed} (is the port serving HTTPS?)")
            assert planted not in masked and redaction.REDACTED in masked


def test_identifiers_in_a_credential_map_are_not_masked_in_logs_secrets_are(api: Api) -> None:
    h = api.token()
    password = canary("pw")
    r = api.client.post("/api/v1/integrations", headers=h, json={
        "name": "qualys", "vendor": "qualys_vmdr", "connection": {"base_url": "http://127.0.0.1:9/qualys_vmdr"},
        "credentials": {"username": "admin", "password": password}})
    assert r.status_code == 201, r.text
    with api.state.sessions() as session:
        row = session.get_one(Integration, uuid.UUID(r.json()["id"]))
        with api.state.resolver.resolve(row, purpose=Purpose.SYNC, actor=Actor("system", "t", row.organization_id)):
            masked = redaction.scrub(f"role admin asked; password {password}")
    assert masked == f"role admin asked; password {redaction.REDACTED}"  # a user name is not a secret


@pytest.mark.parametrize("value", ["ab", "ab\r\nX-Evil: 1", "abc\u0000def", "********", "   ", 12345, {"a": 1}])
def test_a_legacy_api_key_set_by_patch_is_checked_like_any_credential(api: Api, value: object) -> None:
    h = api.token()
    iid = api.client.post("/api/v1/integrations", headers=h, json={
        "name": "n", "vendor": "nessus", "connection": {"base_url": "http://127.0.0.1:9/nessus"},
        "credentials": {"access_key": canary(), "secret_key": canary()}}).json()["id"]
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"api_key": value}}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "connection.api_key", r.text
    detail = api.client.get(f"/api/v1/integrations/{iid}", headers=h).json()
    assert "connection.api_key" not in detail["credentials_set"]


def test_a_value_that_is_not_text_never_breaks_masking() -> None:
    with redaction.secrets_in_use([12345, None, {"a": 1}, canary("t")]):
        assert redaction.scrub("nothing secret here") == "nothing secret here"
    assert redaction.scrub("still fine", extra=[7, None]) == "still fine"


def test_invisible_and_direction_changing_characters_are_refused_in_one_line_values(api: Api) -> None:
    h = api.token()
    conn = {"base_url": "http://127.0.0.1:9/nessus"}
    creds = {"access_key": canary(), "secret_key": canary()}
    for name in ("a\u2028b", "evil\u202etxt.exe", "zero\u200bwidth", "\ufeffbom", "iso\u2067late"):
        r = api.client.post("/api/v1/integrations", json={"name": name, "vendor": "nessus", "connection": conn,
                                                          "credentials": creds}, headers=h)
        assert r.status_code == 422, (name, r.text)
    r = api.client.post("/api/v1/integrations", json={"name": "x", "vendor": "nessus", "credentials": creds,
                                                      "connection": {"base_url": "https://h.example/a\u202eb"}},
                        headers=h)
    assert r.status_code == 422, r.text
    for condition in ('title.contains("a\u009bb")',):  # C1 controls in multi-line text too
        r = api.client.post("/api/v1/rules", json={"name": "c", "condition": condition, "action": "suppress"},
                            headers=h)
        assert r.status_code == 422, r.text
    for name in ("Équipe sécurité 👨\u200d👩\u200d👧", "می\u200cخواهم", "脆弱性スキャナー"):  # joiners stay
        r = api.client.post("/api/v1/integrations", json={"name": name, "vendor": "nessus", "connection": conn,
                                                          "credentials": creds}, headers=h)
        assert r.status_code == 201, (name, r.text)
