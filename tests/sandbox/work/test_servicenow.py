"""ServiceNow Table API over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from pmap_sandbox.server import SandboxServer

from .conftest import basic, cred, vendor_url


def table(sandbox: SandboxServer, path: str) -> str:
    return vendor_url(sandbox, "servicenow") + "/api/now/table/" + path


def user_auth(marker: str = "ok", user: str = "pmap.integration") -> dict[str, str]:
    return basic(user, cred(marker))


def test_sys_user_probe_uses_the_result_envelope(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(table(sandbox, "sys_user"), params={"sysparm_limit": "1"}, headers=user_auth())
    assert response.status_code == 200
    assert len(response.json()["result"]) == 1
    assert int(response.headers["X-Total-Count"]) >= 2
    assert 'rel="next"' in response.headers["Link"]


def test_missing_credentials_answer_the_servicenow_401(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(table(sandbox, "sys_user"))
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "User Not Authenticated",
                                         "detail": "Required to provide Auth information"}, "status": "failure"}


@pytest.mark.parametrize(("marker", "user", "roles"), [
    ("ok", "svc.itil", {"itil", "snc_internal"}),
    ("noperm", "svc.weak", {"snc_internal"}),
    ("admin", "svc.super", {"admin", "itil", "snc_internal", "user_admin"}),
    ("security", "svc.secadm", {"itil", "security_admin", "snc_internal"}),  # vendor-specific marker
])
def test_role_grants_follow_the_scenario(sandbox: SandboxServer, client: httpx.Client, marker: str, user: str,
                                         roles: set[str]) -> None:
    response = client.get(table(sandbox, "sys_user_has_role"), headers=user_auth(marker, user), params={
        "sysparm_query": f"user.user_name={user}^state=active", "sysparm_display_value": "true",
        "sysparm_fields": "user,role,inherited,state"})
    rows = response.json()["result"]
    assert {r["role"]["display_value"] for r in rows} == roles
    assert set(rows[0]) == {"user", "role", "inherited", "state"}
    assert "link" in rows[0]["role"]


def test_display_value_all_and_false(sandbox: SandboxServer, client: httpx.Client) -> None:
    query = {"sysparm_query": "user.user_name=pmap.integration^role.name=itil"}
    raw = client.get(table(sandbox, "sys_user_has_role"), headers=user_auth(), params=query).json()["result"]
    assert len(raw[0]["role"]["value"]) == 32 and "display_value" not in raw[0]["role"]
    both = client.get(table(sandbox, "sys_user_has_role"), headers=user_auth(),
                      params={**query, "sysparm_display_value": "all"}).json()["result"]
    assert both[0]["role"]["display_value"] == "itil" and both[0]["role"]["value"] == raw[0]["role"]["value"]
    assert both[0]["inherited"] == {"display_value": "false", "value": "false"}


def test_incident_create_read_resolve(sandbox: SandboxServer, client: httpx.Client) -> None:
    auth = user_auth()
    created = client.post(table(sandbox, "incident"), headers=auth, json={
        "short_description": "CVE-2024-6387 on web-01", "correlation_id": "pmap-finding-42", "urgency": 2,
        "not_a_field": "ignored"})
    assert created.status_code == 201
    record = created.json()["result"]
    assert record["number"].startswith("INC") and record["state"] == "1" and record["urgency"] == "2"
    assert record["impact"] == "3" and record["priority"] == "4"  # the base priority lookup: 3 x 2 -> 4 Low
    assert "not_a_field" not in record
    sys_id = record["sys_id"]

    found = client.get(table(sandbox, "incident"), headers=auth,
                       params={"sysparm_query": "correlation_id=pmap-finding-42"}).json()["result"]
    assert [r["sys_id"] for r in found] == [sys_id]

    refused = client.patch(table(sandbox, f"incident/{sys_id}"), headers=auth, json={"state": "6"})
    assert refused.status_code == 403
    assert "Data Policy Exception" in refused.json()["error"]["detail"]
    resolved = client.patch(table(sandbox, f"incident/{sys_id}"), headers=auth, json={
        "state": "6", "close_code": "Solution provided", "close_notes": "Patched openssh"})
    assert resolved.status_code == 200
    assert resolved.json()["result"]["state"] == "6" and resolved.json()["result"]["resolved_at"]
    labelled = client.get(table(sandbox, f"incident/{sys_id}"), headers=auth,
                          params={"sysparm_display_value": "true"}).json()["result"]
    assert labelled["state"] == "Resolved"


@pytest.mark.parametrize(("impact", "urgency", "priority"), [
    ("1", "1", "1"), ("1", "2", "2"), ("2", "2", "3"), ("2", "3", "4"), ("3", "3", "5"), ("3", "1", "3")])
def test_priority_follows_the_base_lookup_rules(sandbox: SandboxServer, client: httpx.Client, impact: str,
                                                urgency: str, priority: str) -> None:
    created = client.post(table(sandbox, "incident"), headers=user_auth(), json={
        "short_description": "lookup", "impact": impact, "urgency": urgency}).json()["result"]
    assert created["priority"] == priority
    updated = client.patch(table(sandbox, f"incident/{created['sys_id']}"), headers=user_auth(),
                           json={"impact": "3", "urgency": "3"}).json()["result"]
    assert updated["priority"] == "5"


def test_noperm_reads_no_incidents_and_writes_none(sandbox: SandboxServer, client: httpx.Client) -> None:
    sys_id = client.post(table(sandbox, "incident"), headers=user_auth(),
                         json={"short_description": "hidden"}).json()["result"]["sys_id"]
    weak = user_auth("noperm", "svc.readonly")
    assert client.get(table(sandbox, "incident"), headers=weak).json()["result"] == []
    assert client.get(table(sandbox, f"incident/{sys_id}"), headers=weak).status_code == 404
    refused = client.post(table(sandbox, "incident"), headers=weak, json={"short_description": "x"})
    assert refused.status_code == 403
    assert "ACL Exception Insert Failed" in refused.json()["error"]["detail"]


def test_unknown_query_field_is_ignored_like_a_default_instance(sandbox: SandboxServer,
                                                                client: httpx.Client) -> None:
    auth = user_auth()
    client.post(table(sandbox, "incident"), headers=auth, json={"short_description": "one"})
    everything = client.get(table(sandbox, "incident"), headers=auth).json()["result"]
    ignored = client.get(table(sandbox, "incident"), headers=auth,
                         params={"sysparm_query": "no_such_field=1"}).json()["result"]
    assert len(ignored) == len(everything) > 0


def test_invalid_table_and_missing_record(sandbox: SandboxServer, client: httpx.Client) -> None:
    bad = client.get(table(sandbox, "not_a_table"), headers=user_auth())
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "Invalid table not_a_table"
    missing = client.get(table(sandbox, "incident/" + "0" * 32), headers=user_auth())
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "No Record found"
