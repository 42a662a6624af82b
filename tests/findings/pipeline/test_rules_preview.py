"""POST /api/v1/rules/preview: what saving a rule would change on the organization's open findings, evaluated by
the import's own pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pmap.findings import rules_preview
from pmap.findings.rules_engine import ACTIONS
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration
from tests.findings.pipeline.stored import store

LAB = 'host != null && host.endsWith(".lab") && port == 23'


def _preview(api: Api, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    payload = {"name": "candidate", "condition": LAB, "action": "suppress", **body}
    r = api.client.post("/api/v1/rules/preview", json=payload, headers=headers or api.token("acme", "operator"))
    assert r.status_code == 200, r.text
    return r.json()


def _seed(api: Api) -> tuple[str, list[str], list[str]]:
    """acme's findings: two the LAB rule matches, and for each field it reads one that differs only there."""
    iid = create_integration(api, api.token("acme", "admin"), name="alpha")
    misses = store(api, "acme", iid, [
        {"host": "db1.lab", "port": 22},  # port
        {"host": "db1.labs", "port": 23},  # host
        {"host": None, "ip": "10.0.0.1", "port": 23},  # no host at all: undefined, not a match
        {"host": "db1.lab", "port": 23, "status": "resolved"},  # not open: not examined
    ])
    hits = store(api, "acme", iid, [{"host": "db1.lab", "port": 23, "title": "telnet 1"},
                                    {"host": "db2.lab", "port": 23, "title": "telnet 2"}])
    other = create_integration(api, api.token("globex", "admin"), name="alpha")
    store(api, "globex", other, [{"host": "db1.lab", "port": 23} for _ in range(3)])
    return iid, hits, misses


def test_the_rule_matches_exactly_the_findings_it_should(api: Api) -> None:
    _, hits, _ = _seed(api)
    body = _preview(api)
    assert body["examined"] == 5  # acme's open findings; not the resolved one, not globex's
    assert body["changed"] == 2 and body["truncated"] is False
    assert body["by_change"] == {"severity": 0, "suppressed": 2, "tags": 0}
    assert [s["finding_id"] for s in body["samples"]] == list(reversed(hits))  # newest first
    sample = body["samples"][0]
    assert sample["title"] == "telnet 2"
    assert sample["from"] == {"severity": "medium", "suppressed": False, "tags": []}
    assert sample["to"] == {"severity": "medium", "suppressed": True, "tags": []}
    severity = _preview(api, action="set_severity", value="CRITICAL")
    assert severity["by_change"] == {"severity": 2, "suppressed": 0, "tags": 0}
    assert {s["to"]["severity"] for s in severity["samples"]} == {"critical"}
    tagged = _preview(api, action="tag", value="lab")
    assert tagged["by_change"]["tags"] == 2 and tagged["samples"][0]["to"]["tags"] == ["lab"]
    assert _preview(api, enabled=False)["changed"] == 0  # saved disabled, it would change nothing
    # conditions see the mapped severity, as at import: not the severity a rule set
    assert _preview(api, condition='severity == "medium"', action="tag", value="m")["changed"] == 5


def test_a_rule_that_does_not_compile_is_the_422_of_validate(api: Api) -> None:
    _seed(api)
    operator = api.token("acme", "operator")
    payload = {"name": "bad", "condition": "port == 23 &&", "action": "suppress"}
    r = api.client.post("/api/v1/rules/preview", json=payload, headers=operator)
    assert r.status_code == 422, r.text
    checked = api.client.post("/api/v1/rules/validate", json=payload, headers=operator)
    assert checked.status_code == 422
    problem = r.json()["error"]["fields"][0]
    assert problem == checked.json()["error"]["fields"][0]
    assert problem["field"] == "condition" and "position" in problem["reason"]
    r = api.client.post("/api/v1/rules/preview", json={**payload, "condition": "port == 23", "value": "x"},
                        headers=operator)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "value"


def test_editing_a_rule_previews_the_replacement_not_an_addition(api: Api) -> None:
    admin = api.token("acme", "admin")
    iid = create_integration(api, admin, name="alpha")
    saved = api.client.post("/api/v1/rules", json={"name": "telnet", "condition": "port == 23",
                                                   "action": "set_severity", "value": "critical"}, headers=admin)
    assert saved.status_code == 201
    rule = saved.json()
    # as the saved rule left them at import: port 23 raised to critical, port 22 as mapped
    raised = {"port": 23, "severity": "critical", "mapped_severity": "medium", "severity_source": "rule",
              "severity_rule_id": uuid.UUID(rule["id"])}
    telnet = store(api, "acme", iid, [dict(raised) for _ in range(2)])
    ssh = store(api, "acme", iid, [{"port": 22} for _ in range(3)])
    edited = _preview(api, name="telnet", condition="port == 22", action="set_severity", value="critical",
                      rule_id=rule["id"])
    assert edited["examined"] == 5 and edited["changed"] == 5
    moved = {s["finding_id"]: (s["from"]["severity"], s["to"]["severity"]) for s in edited["samples"]}
    assert moved == {**dict.fromkeys(telnet, ("critical", "medium")), **dict.fromkeys(ssh, ("medium", "critical"))}
    added = _preview(api, name="ssh", condition="port == 22", action="set_severity", value="critical")
    assert added["changed"] == 3 and {s["finding_id"] for s in added["samples"]} == set(ssh)
    same = _preview(api, name="telnet", condition="port == 23", action="set_severity", value="critical",
                    rule_id=rule["id"])
    assert same["changed"] == 0
    off = _preview(api, name="telnet", condition="port == 23", action="set_severity", value="critical",
                   rule_id=rule["id"], enabled=False)
    assert off["changed"] == 2 and off["by_change"]["severity"] == 2
    # a later rule of the same position overrides an earlier one; the edited rule keeps its place
    first = _preview(api, name="low", condition="port == 23", action="set_severity", value="low", position=0)
    assert {s["to"]["severity"] for s in first["samples"]} == {"low"}  # created now: after the saved rule


def test_roles_other_organizations_and_the_bound(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(api)
    payload = {"name": "x", "condition": LAB, "action": "suppress"}
    viewer = api.client.post("/api/v1/rules/preview", json=payload, headers=api.token("acme", "viewer"))
    assert viewer.status_code == 403
    theirs = api.client.post("/api/v1/rules", json={**payload, "enabled": False},
                             headers=api.token("globex", "admin")).json()
    r = api.client.post("/api/v1/rules/preview", json={**payload, "rule_id": theirs["id"]},
                        headers=api.token("acme", "operator"))
    assert r.status_code == 404
    assert _preview(api, api.token("globex", "operator"))["changed"] == 3
    monkeypatch.setattr(rules_preview, "PREVIEW_MAX", 2)
    bounded = _preview(api)
    assert (bounded["examined"], bounded["truncated"], bounded["changed"]) == (2, True, 2)  # the newest two


def test_every_action_kind_has_a_change_kind() -> None:
    assert set(rules_preview.EFFECTS) == set(ACTIONS)


def test_conditions_read_every_kind_of_stored_field(api: Api) -> None:
    iid = create_integration(api, api.token("acme", "admin"), name="alpha")
    hit = store(api, "acme", iid, [{"cve_ids": ["CVE-2024-1"], "cwe_ids": [79], "description": "uses telnet",
                                    "cvss_score": 9.8, "port": 23}])
    store(api, "acme", iid, [{"cve_ids": ["CVE-2024-2"], "cwe_ids": [89], "description": "uses ssh",
                              "cvss_score": 5.0, "port": 22}])
    for condition in ['"CVE-2024-1" in cve_ids', "79 in cwe_ids", 'description.contains("telnet")',
                      "cvss_score > 9.0", 'vendor == "tenable_vm" && format == "nessus" && port == 23',
                      f'integration_id == "{iid}" && port == 23']:
        body = _preview(api, condition=condition)
        assert [s["finding_id"] for s in body["samples"]] == hit, condition
