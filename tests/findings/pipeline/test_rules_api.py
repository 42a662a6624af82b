"""/api/v1/rules: roles, validation on save, ordering, and what rules do to imported findings."""

from __future__ import annotations

from typing import Any

import pytest

from pmap.findings import severity
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, upload


def _rule(api: Api, headers: dict[str, str], **body: object) -> dict:
    r = api.client.post("/api/v1/rules", json={"name": "r", "action": "tag", "value": "t", **body}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def test_crud_roles_and_order(api: Api, admin: dict[str, str]) -> None:
    viewer, operator = api.token("acme", "viewer"), api.token("acme", "operator")
    body = {"name": "x", "condition": "port == 23", "action": "set_severity", "value": "HIGH"}
    assert api.client.post("/api/v1/rules", json=body, headers=viewer).status_code == 403
    first = _rule(api, operator, **body)
    assert first["value"] == "high" and first["position"] == 0 and first["enabled"] is True
    second = _rule(api, operator, name="y", condition='host == "a"')
    early = _rule(api, operator, name="z", condition='host == "b"', position=0)
    listed = api.client.get("/api/v1/rules", headers=viewer).json()["items"]
    assert [r["name"] for r in listed] == ["x", "z", "y"]  # position, then creation order
    assert second["position"] == 1 and early["position"] == 0
    r = api.client.patch(f"/api/v1/rules/{first['id']}", json={"enabled": False, "position": 5}, headers=operator)
    assert r.status_code == 200 and (r.json()["enabled"], r.json()["position"]) == (False, 5)
    assert api.client.patch(f"/api/v1/rules/{first['id']}", json={"enabled": False}, headers=viewer).status_code == 403
    assert api.client.get(f"/api/v1/rules/{first['id']}", headers=api.token("globex", "admin")).status_code == 404
    assert api.client.delete(f"/api/v1/rules/{first['id']}", headers=operator).status_code == 204
    assert api.client.get(f"/api/v1/rules/{first['id']}", headers=viewer).status_code == 404
    assert len(api.client.get("/api/v1/rules", headers=viewer).json()["items"]) == 2


@pytest.mark.parametrize(("body", "field", "fragment"), [
    ({"condition": 'port == "443"'}, "condition", "cannot compare int with string"),
    ({"condition": "hots == 1"}, "condition", "did you mean 'host'"),
    ({"condition": "severity == "}, "condition", "position"),
    ({"action": "set_severity", "value": "urgent"}, "value", "set_severity needs one of"),
    ({"action": "suppress", "value": "x"}, "value", "suppress takes no value"),
    ({"action": "delete"}, "action", ""),
])
def test_a_rule_that_does_not_compile_is_422_naming_the_error(api: Api, admin: dict[str, str], body: dict,
                                                              field: str, fragment: str) -> None:
    payload = {"name": "bad", "condition": "port == 23", "action": "tag", "value": "t", **body}
    r = api.client.post("/api/v1/rules", json=payload, headers=admin)
    assert r.status_code == 422, r.text
    problem = r.json()["error"]["fields"][0]
    assert problem["field"] == field and fragment in problem["reason"]
    assert api.client.get("/api/v1/rules", headers=admin).json()["items"] == []


def test_update_is_validated_as_a_whole(api: Api, admin: dict[str, str]) -> None:
    rule = _rule(api, admin, condition="port == 23", action="set_severity", value="low")
    r = api.client.patch(f"/api/v1/rules/{rule['id']}", json={"condition": "port == 'x'"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "condition"
    r = api.client.patch(f"/api/v1/rules/{rule['id']}", json={"action": "suppress"}, headers=admin)
    assert r.status_code == 200 and r.json()["value"] is None  # the old severity value does not carry over
    r = api.client.patch(f"/api/v1/rules/{rule['id']}", json={"action": None}, headers=admin)
    assert r.status_code == 422
    assert api.client.get(f"/api/v1/rules/{rule['id']}", headers=admin).json()["condition"] == "port == 23"


def test_rules_set_severity_suppress_and_tag_imported_findings(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    raise_rule = _rule(api, admin, name="log4j", condition='"CVE-2021-44228" in cve_ids', action="set_severity",
                       value="critical")
    lower = _rule(api, admin, name="lab", condition='host != null && host.startsWith("10.9.")', action="set_severity",
                  value="info")
    hide = _rule(api, admin, name="noise", condition='rule_id == "99"', action="suppress", value=None)
    _rule(api, admin, name="tag", condition='vendor == "tenable_vm" && severity_rank >= sev("medium")', value="triage")
    _rule(api, admin, name="off", condition="true", action="set_severity", value="low", enabled=False)
    items: list[dict[str, Any]] = [{"plugin": 1, "severity": 2, "cve": "CVE-2021-44228", "host": "10.0.0.1"},
             {"plugin": 2, "severity": 3, "host": "10.9.0.1", "cve": "CVE-2021-44228"},
             {"plugin": 99, "severity": 1},
             {"plugin": 4, "severity": 1}]
    s = upload(api, iid, nessus_report(items), admin).json()
    assert (s["created"], s["suppressed"], s["rules_applied"]) == (4, 1, 4)
    got = {f["rule_id"]: f for f in findings(api, admin)}
    assert (got["1"]["severity"], got["1"]["severity_source"], got["1"]["severity_rule_id"]) == \
        ("critical", "rule", raise_rule["id"])
    assert got["1"]["mapped_severity"] == "medium" and got["1"]["tags"] == ["triage"]
    # both severity rules match: the later one (by position) wins and is recorded
    assert (got["2"]["severity"], got["2"]["severity_rule_id"]) == ("info", lower["id"])
    assert got["99"]["status"] == "suppressed" and got["99"]["suppressed_by_rule_id"] == hide["id"]
    assert got["4"]["severity_source"] == "vendor" and got["4"]["severity_rule_id"] is None and got["4"]["tags"] == []
    assert sorted(f["rule_id"] for f in findings(api, admin, tag="triage")) == ["1", "2"]


def test_rules_compile_once_per_import(api: Api, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        _rule(api, admin, name=f"r{i}", condition=f"port == {i}")
    calls: list[str] = []
    real = severity.compile_rule
    def counted(spec: Any, *a: Any) -> Any:
        calls.append(spec.id)
        return real(spec, *a)

    monkeypatch.setattr(severity, "compile_rule", counted)
    iid = create_integration(api, admin)
    upload(api, iid, nessus_report([{"plugin": i, "port": i % 3} for i in range(30)]), admin)
    assert len(calls) == 3


def test_undefined_rule_evaluations_are_counted_not_fatal(api: Api, admin: dict[str, str]) -> None:
    _rule(api, admin, name="unguarded", condition='url.startsWith("https://")', value="web")
    iid = create_integration(api, admin)
    s = upload(api, iid, nessus_report([{"plugin": 1}, {"plugin": 2}]), admin).json()
    assert s["created"] == 2 and s["rules_undefined"] == 2 and "null" in s["warnings"][0]
