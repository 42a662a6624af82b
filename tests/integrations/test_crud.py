"""Integration records over the REST API, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import event, func, select

from pmap.integrations.models import Integration
from tests.conftest import Api, canary

TENABLE = {"vendor": "tenable_vm", "connection": {}, "credentials": {"access_key": "a" * 20, "secret_key": "b" * 20}}


def _count(api: Api) -> int:
    with api.state.sessions() as s:
        return s.scalar(select(func.count()).select_from(Integration)) or 0


def test_create_read_list_delete(api: Api) -> None:
    h = api.token()
    r = api.client.post("/api/v1/integrations", json={"name": "tio", **TENABLE}, headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["vendor"] == "tenable_vm" and body["category"] == "vm"
    assert body["connection"]["base_url"] == "https://cloud.tenable.com"  # the vendor default
    assert body["credentials_set"] == ["access_key", "secret_key"]
    assert "credentials" not in body and "encrypted_credentials" not in body
    iid = body["id"]
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=h).json()["name"] == "tio"
    page = api.client.get("/api/v1/integrations", headers=h).json()
    assert [i["id"] for i in page["items"]] == [iid] and page["next_cursor"] is None
    assert api.client.delete(f"/api/v1/integrations/{iid}", headers=h).status_code == 204
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=h).status_code == 404
    assert _count(api) == 0


def test_pagination_walks_every_item_once(api: Api) -> None:
    h = api.token()
    for i in range(7):
        assert api.client.post("/api/v1/integrations", json={"name": f"n{i}", **TENABLE}, headers=h).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/api/v1/integrations", params=params, headers=h).json()
        seen += [i["name"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"n{i}" for i in range(7)] and len(seen) == 7
    assert api.client.get("/api/v1/integrations", params={"cursor": "garbage!"}, headers=h).status_code == 400


def test_update_semantics_keep_clear_replace(api: Api) -> None:
    h = api.token()
    body = {"name": "jira", "vendor": "jira_cloud", "connection": {"base_url": "https://acme.atlassian.net"},
            "credentials": {"email": "sec@acme.test", "api_token": canary()}}
    iid = api.client.post("/api/v1/integrations", json=body, headers=h).json()["id"]
    with api.state.sessions() as s:
        before = s.get_one(Integration, __import__("uuid").UUID(iid)).encrypted_credentials
    # omitted secret stays, other fields change
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"name": "jira2", "connection": {"project_key": "SEC"}},
                         headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["credentials_set"] == ["api_token", "email"] and r.json()["connection"]["project_key"] == "SEC"
    # a new value replaces and is encrypted afresh
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"credentials": {"api_token": canary()}}, headers=h)
    assert r.status_code == 200
    with api.state.sessions() as s:
        after = s.get_one(Integration, __import__("uuid").UUID(iid)).encrypted_credentials
    assert after is not None and before is not None
    assert after["n"] != before["n"] and after["ct"] != before["ct"]
    # null clears; a required field cleared is refused
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"credentials": {"api_token": None}}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "credentials.api_token"
    # placeholders are never accepted as "unchanged"
    for placeholder in ("********", "[REDACTED]", "unchanged"):
        r = api.client.patch(f"/api/v1/integrations/{iid}", json={"credentials": {"api_token": placeholder}}, headers=h)
        assert r.status_code == 422, placeholder


def test_optional_secret_cleared_by_null(api: Api) -> None:
    h = api.token()
    body = {"name": "x", **TENABLE, "connection": {"api_key": canary("legacy")}}
    r = api.client.post("/api/v1/integrations", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert "api_key" not in r.json()["connection"]
    assert r.json()["credentials_set"] == ["access_key", "secret_key", "connection.api_key"]
    r = api.client.patch(f"/api/v1/integrations/{r.json()['id']}", json={"connection": {"api_key": None}}, headers=h)
    assert r.json()["credentials_set"] == ["access_key", "secret_key"]


def test_changing_target_requires_secrets_again(api: Api) -> None:
    h = api.token()
    body: dict[str, Any] = {"name": "n", "vendor": "nessus", "connection": {"base_url": "https://nessus.acme.test:8834"},
            "credentials": {"access_key": "a" * 16, "secret_key": "b" * 16}}
    iid = api.client.post("/api/v1/integrations", json=body, headers=h).json()["id"]
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"base_url": "https://evil.test"}},
                         headers=h)
    assert r.status_code == 422
    assert {f["field"] for f in r.json()["error"]["fields"]} == {"credentials.access_key", "credentials.secret_key"}
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"base_url": "https://evil.test"},
                                                            "credentials": {"access_key": "c" * 16}}, headers=h)
    assert r.status_code == 422  # one new secret does not carry the stored other one to the new host
    assert {f["field"] for f in r.json()["error"]["fields"]} == {"credentials.secret_key"}
    r = api.client.patch(f"/api/v1/integrations/{iid}",
                         json={"connection": {"base_url": "https://nessus.acme.test:8834/"}}, headers=h)
    assert r.status_code == 200  # same target, trailing slash only
    for url in ("http://nessus.acme.test:8834", "https://nessus.acme.test:9443", "https://nessus.acme.test:8834/x"):
        r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"base_url": url}}, headers=h)
        assert r.status_code == 422, url  # scheme, port and base path are the target too
    # a weaker check of who answers at the same URL is a new target too: a network attacker could answer
    for weaker in ({"verify_tls": False},
                   {"ca_bundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}):
        r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": weaker}, headers=h)
        assert r.status_code == 422, weaker
        assert {f["field"] for f in r.json()["error"]["fields"]} == {"credentials.access_key", "credentials.secret_key"}
    r = api.client.patch(f"/api/v1/integrations/{iid}", headers=h,
                         json={"connection": {"verify_tls": False}, "credentials": body["credentials"]})
    assert r.status_code == 200 and r.json()["connection"]["verify_tls"] is False
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"verify_tls": True}}, headers=h)
    assert r.status_code == 200  # a stronger check needs nothing again
    legacy = api.client.post("/api/v1/integrations", headers=h, json={
        **body, "name": "legacy", "connection": {**body["connection"], "api_key": "l" * 16}}).json()["id"]
    r = api.client.patch(f"/api/v1/integrations/{legacy}", headers=h, json={
        "connection": {"base_url": "https://elsewhere.test"}, "credentials": body["credentials"]})
    assert r.status_code == 200 and "connection.api_key" not in r.json()["credentials_set"]  # not carried over


def test_removing_or_emptying_the_ca_bundle_is_a_target_change(api: Api) -> None:
    # without the pinned CA the system store decides who may answer: the stored secrets stay home
    h = api.token()
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    credentials = {"access_key": "a" * 16, "secret_key": "b" * 16}
    body = {"name": "pinned", "vendor": "nessus", "credentials": credentials,
            "connection": {"base_url": "https://nessus.acme.test:8834", "ca_bundle": pem}}
    iid = api.client.post("/api/v1/integrations", json=body, headers=h).json()["id"]
    for removed in (None, ""):
        r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"ca_bundle": removed}}, headers=h)
        assert r.status_code == 422, removed
        assert {f["field"] for f in r.json()["error"]["fields"]} == {"credentials.access_key", "credentials.secret_key"}
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=h).json()["connection"]["ca_bundle"] == pem
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"ca_bundle": None},
                                                            "credentials": credentials}, headers=h)
    assert r.status_code == 200 and "ca_bundle" not in r.json()["connection"]
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"ca_bundle": ""}}, headers=h)
    assert r.status_code == 200  # "" and no bundle are the same trust (the system store)


def test_bad_input_is_a_clear_4xx_and_writes_nothing(api: Api) -> None:
    h = api.token()
    secret = canary()
    keys = {"access_key": secret, "secret_key": secret}
    tenable = {"name": "a", "vendor": "tenable_vm"}
    cases = [
        ({"name": "a", "vendor": "nope", "credentials": {}}, 422, "vendor"),
        ({**tenable, "credentials": {"access_key": secret}}, 422, "credentials.secret_key"),
        ({**tenable, "credentials": {**keys, "x": secret}}, 422, "credentials.x"),
        ({**tenable, "credentials": {"access_key": 5, "secret_key": secret}}, 422, "credentials.access_key"),
        ({**tenable, "connection": {"base_url": "ftp://x"}, "credentials": keys}, 422, "connection.base_url"),
        ({**tenable, "connection": {"base_url": f"https://u:{secret}@h.test"}, "credentials": keys}, 422,
         "connection.base_url"),
        ({**tenable, "connection": {"colour": "red"}, "credentials": keys}, 422, "connection.colour"),
        ({"vendor": "tenable_vm"}, 422, "name"),
        ({"name": "a", "vendor": "tenable_vm", "credentials": secret}, 422, "credentials"),  # a token pasted as the map
    ]
    for body, status, field in cases:
        r = api.client.post("/api/v1/integrations", json=body, headers=h)
        assert r.status_code == status, (body, r.text)
        err = r.json()["error"]
        assert field in [f["field"] for f in err["fields"]], (field, err)
        assert all(f["reason"] for f in err["fields"])
        assert secret not in r.text
    r = api.client.post("/api/v1/integrations", content=b'{"name": "a", "vendor": ',
                        headers={**h, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    big = json.dumps({"name": "a", "vendor": "tenable_vm", "credentials": {"access_key": "x" * (1024 * 1024 + 10)}})
    r = api.client.post("/api/v1/integrations", content=big, headers={**h, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    raw = big.encode()
    chunks = iter([raw[:1024 * 1024], raw[1024 * 1024:]])  # no Content-Length: capped on the bytes received
    r = api.client.post("/api/v1/integrations", content=chunks, headers={**h, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert _count(api) == 0


def test_duplicate_name_is_409_within_org_only(api: Api) -> None:
    h, other = api.token("acme"), api.token("globex")
    assert api.client.post("/api/v1/integrations", json={"name": "same", **TENABLE}, headers=h).status_code == 201
    r = api.client.post("/api/v1/integrations", json={"name": "same", **TENABLE}, headers=h)
    assert r.status_code == 409
    assert r.json()["error"]["fields"] == [{"field": "name", "reason": "is already used in this organization"}]
    assert api.client.post("/api/v1/integrations", json={"name": "same", **TENABLE}, headers=other).status_code == 201
    assert _count(api) == 2


def test_connector_types_schemas(api: Api) -> None:
    types = {t["vendor"]: t for t in api.client.get("/api/v1/connector-types", headers=api.token(role="viewer")).json()}
    for key in ("tenable_vm", "nessus", "qualys_vmdr", "jira_cloud", "servicenow", "github"):
        assert key in types
    creds = types["tenable_vm"]["credentials_schema"]
    assert creds["required"] == ["access_key", "secret_key"]
    assert all(creds["properties"][k]["writeOnly"] is True for k in ("access_key", "secret_key"))
    assert types["jira_cloud"]["credentials_schema"]["properties"]["api_token"]["writeOnly"] is True
    assert "writeOnly" not in types["jira_cloud"]["credentials_schema"]["properties"]["email"]
    # every credential field of every vendor is write-only, except the few that name a user
    readable = {(v, name) for v, t in types.items()
                for name, prop in t["credentials_schema"].get("properties", {}).items()
                if prop.get("writeOnly") is not True}
    # or identify a client (an OAuth client id, a GitHub App and its installation: the key is the secret)
    assert {name for _v, name in readable} <= {"username", "email", "user_id", "client_id", "app_id",
                                               "installation_id"}, readable
    assert {t["category"] for t in types.values()} <= {"vm", "dast", "sast", "sca", "network_discovery", "mobile",
                                                       "itsm", "ticketing", "cicd"}


def test_listing_reads_no_secret_column_and_decrypts_nothing(api: Api) -> None:
    h = api.token()
    for i in range(3):
        assert api.client.post("/api/v1/integrations", json={"name": f"t{i}", **TENABLE}, headers=h).status_code == 201
    statements: list[str] = []

    def seen(_conn, _cursor, statement, _params, _context, _many) -> None:
        statements.append(statement)

    event.listen(api.state.engine, "before_cursor_execute", seen)
    try:
        r = api.client.get("/api/v1/integrations", headers=h)
    finally:
        event.remove(api.state.engine, "before_cursor_execute", seen)
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    assert any("integrations" in st for st in statements)
    assert not [st for st in statements if "encrypted_" in st]
    decrypts = api.client.get("/api/v1/audit-events", params={"action": "credentials.decrypt"},
                              headers=h).json()["items"]
    assert decrypts == []


def test_create_update_and_delete_are_audited_with_field_names_only(api: Api) -> None:
    h = api.token()
    secret = canary("s")
    body = {"name": "tio", "vendor": "tenable_vm", "connection": {},
            "credentials": {"access_key": canary("a"), "secret_key": secret}}
    iid = api.client.post("/api/v1/integrations", json=body, headers=h).json()["id"]
    new_secret = canary("n")
    assert api.client.patch(f"/api/v1/integrations/{iid}", headers=h, json={
        "severity_threshold": "high", "credentials": {"secret_key": new_secret},
        "connection": {"timeout_seconds": 5}}).status_code == 200
    assert api.client.delete(f"/api/v1/integrations/{iid}", headers=h).status_code == 204
    events = api.client.get("/api/v1/audit-events", headers=h).json()["items"]
    mine = {e["action"]: e for e in events if e["integration_id"] == iid and e["action"].startswith("integration.")}
    assert set(mine) == {"integration.create", "integration.update", "integration.delete"}
    assert mine["integration.create"]["detail"] == {"vendor": "tenable_vm",
                                                    "credentials_set": ["access_key", "secret_key"]}
    assert mine["integration.update"]["detail"]["changed"] == [
        "severity_threshold", "connection.timeout_seconds", "credentials.secret_key"]
    assert mine["integration.delete"]["detail"]["vendor"] == "tenable_vm"
    assert secret not in json.dumps(events) and new_secret not in json.dumps(events)
