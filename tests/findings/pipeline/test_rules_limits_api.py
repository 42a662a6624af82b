"""/api/v1/rules bounds (count, compiled size) and the cost report: what rules cost before an import pays it."""

from __future__ import annotations

from typing import Any

import pytest

from pmap.findings import rules_cost
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, nessus_report, upload

BIG = 'title.matches("[a-z]{100}")'  # ~100 RE2 instructions


def _post(api: Api, headers: dict[str, str], condition: str = "port == 23", **body: object):
    return api.client.post("/api/v1/rules", json={"name": "r", "condition": condition, "action": "tag", "value": "t",
                                                  **body}, headers=headers)


def _refused(r, setting: str, field: str) -> dict:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["fields"][0]["field"] == field and setting in error["fields"][0]["reason"]
    assert error["limit"]["setting"] == setting and error["limit"]["measured"] > error["limit"]["max"]
    return error["limit"]


def test_rules_over_the_organization_count_are_422_naming_the_limit(api: Api, admin: dict[str, str]) -> None:
    api.state.settings.rules_max_per_org = 2
    first = _post(api, admin).json()
    assert _post(api, admin, 'host == "a"').status_code == 201
    limit = _refused(_post(api, admin, 'host == "b"'), "PMAP_RULES_MAX_PER_ORG", "rules")
    assert (limit["max"], limit["measured"]) == (2, 3)
    assert len(api.client.get("/api/v1/rules", headers=admin).json()["items"]) == 2
    # editing a rule does not add one; another organization has its own count
    assert api.client.patch(f"/api/v1/rules/{first['id']}", json={"condition": "port == 22"},
                            headers=admin).status_code == 200
    assert _post(api, api.token("globex", "admin")).status_code == 201


def test_a_rule_over_the_compiled_size_limit_is_422_naming_it(api: Api, admin: dict[str, str]) -> None:
    api.state.settings.rules_max_rule_size = 50
    limit = _refused(_post(api, admin, BIG), "PMAP_RULES_MAX_RULE_SIZE", "condition")
    assert limit["max"] == 50 and limit["measured"] > 100
    rule = _post(api, admin).json()
    _refused(api.client.patch(f"/api/v1/rules/{rule['id']}", json={"condition": BIG}, headers=admin),
             "PMAP_RULES_MAX_RULE_SIZE", "condition")
    assert api.client.get(f"/api/v1/rules/{rule['id']}", headers=admin).json()["condition"] == "port == 23"
    # a preview runs the rule over many findings: it is bounded as saving it would be, new or in place of one
    body = {"name": "big", "condition": BIG, "action": "suppress"}
    _refused(api.client.post("/api/v1/rules/preview", json=body, headers=admin), "PMAP_RULES_MAX_RULE_SIZE",
             "condition")
    _refused(api.client.post("/api/v1/rules/preview", json={**body, "rule_id": rule["id"]}, headers=admin),
             "PMAP_RULES_MAX_RULE_SIZE", "condition")


def test_the_organization_size_limit_sums_its_rules_and_lets_a_rule_shrink(api: Api, admin: dict[str, str]) -> None:
    api.state.settings.rules_max_org_size = 150
    big = _post(api, admin, BIG, enabled=False).json()  # disabled rules count: enabling one is not checked again
    limit = _refused(_post(api, admin, BIG.replace("a-z", "0-9")), "PMAP_RULES_MAX_ORG_SIZE", "condition")
    assert limit["max"] == 150 and limit["measured"] > 200
    assert _post(api, admin, "port == 1").status_code == 201  # small enough to fit beside it
    api.state.settings.rules_max_org_size = 10  # lowered below what is stored: stored rules stay
    url = f"/api/v1/rules/{big['id']}"
    assert api.client.patch(url, json={"name": "renamed"}, headers=admin).status_code == 200
    assert api.client.patch(url, json={"condition": 'title.matches("[a-z]{50}")'}, headers=admin).status_code == 200
    _refused(api.client.patch(url, json={"condition": BIG}, headers=admin), "PMAP_RULES_MAX_ORG_SIZE", "condition")


def test_rules_saved_before_a_bound_was_lowered_still_run_on_import(api: Api, admin: dict[str, str]) -> None:
    for i in range(3):
        assert _post(api, admin, f"port == {i}").status_code == 201
    api.state.settings.rules_max_per_org = 1
    api.state.settings.rules_max_org_size = 10
    iid = create_integration(api, admin)
    s = upload(api, iid, nessus_report([{"plugin": 1, "port": 1}]), admin).json()
    assert s["created"] == 1 and s["rules_applied"] == 3


def test_the_cost_report_names_each_rule_its_size_cost_and_share(api: Api, admin: dict[str, str]) -> None:
    viewer = api.token("acme", "viewer")
    cheap = _post(api, admin, "port == 23").json()
    costly = _post(api, admin, 'description.lowerAscii().matches("(?i)x.*y.*z")').json()
    off = _post(api, admin, 'title.contains("x")', enabled=False).json()
    r = api.client.get("/api/v1/rules/cost", headers=viewer)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["sample"] == {"source": "synthetic", "findings": api.state.settings.rules_cost_sample}
    assert (report["rules"], report["enabled"], report["partial"]) == (3, 2, False)
    assert report["limits"] == {"max_rules": 100, "max_rule_size": 5000, "max_org_size": 20000}
    items = {i["id"]: i for i in report["items"]}
    assert [i["id"] for i in report["items"]] == [cheap["id"], costly["id"], off["id"]]
    assert items[costly["id"]]["us_per_finding"] > items[cheap["id"]]["us_per_finding"] >= 0
    assert items[costly["id"]]["size"] > items[cheap["id"]]["size"] == 3
    assert report["size"] == sum(i["size"] for i in report["items"])
    assert items[off["id"]]["share"] is None and items[off["id"]]["us_per_finding"] is not None
    assert items[cheap["id"]]["share"] + items[costly["id"]]["share"] == pytest.approx(1.0)
    assert report["us_per_finding"] > 0
    assert report["seconds_per_100k_findings"] == pytest.approx(report["us_per_finding"] / 10, rel=0.01)
    assert api.client.get("/api/v1/rules/cost").status_code == 401


def test_the_cost_is_measured_on_the_organizations_findings_when_it_has_some(api: Api, admin: dict[str, str]) -> None:
    _post(api, admin, 'host != null && host.endsWith(".lab")')
    iid = create_integration(api, admin)
    upload(api, iid, nessus_report([{"plugin": i, "host": f"h{i}.lab"} for i in range(5)]), admin)
    report = api.client.get("/api/v1/rules/cost", headers=admin).json()
    assert report["sample"] == {"source": "findings", "findings": 5}


def test_a_costly_rule_set_is_reported_above_a_cheap_one(api: Api) -> None:
    cheap, costly = api.token("cheap-org", "admin"), api.token("costly-org", "admin")
    _post(api, cheap, "port == 23")
    for i in range(20):  # computed text is not shared between rules: each pays its own pass
        _post(api, costly, f'description.lowerAscii().contains("word{i}")')
    low = api.client.get("/api/v1/rules/cost", headers=cheap).json()["us_per_finding"]
    high = api.client.get("/api/v1/rules/cost", headers=costly).json()["us_per_finding"]
    assert high > 5 * low


def test_saving_a_rule_answers_what_it_costs(api: Api, admin: dict[str, str]) -> None:
    _post(api, admin, 'title.contains("SQL")')
    r = _post(api, admin, 'description.matches("(?i)outdated")')
    assert r.status_code == 201
    cost = r.json()["cost"]
    assert cost["sample"]["source"] == "synthetic" and cost["size"] > 3
    assert cost["rule_set_us_per_finding"] >= 0 and cost["rule_us_per_finding"] >= 0
    assert cost["rule_adds_us_per_finding"] >= 0
    r = api.client.patch(f"/api/v1/rules/{r.json()['id']}", json={"enabled": False}, headers=admin)
    assert r.status_code == 200 and r.json()["cost"]["rule_us_per_finding"] is not None


def test_the_cost_is_remembered_per_rule_set_version(api: Api, admin: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = rules_cost.measure
    def counted(rules: Any, sample: Any, **kw: Any) -> Any:
        calls.append(len(rules))
        return real(rules, sample, **kw)

    monkeypatch.setattr(rules_cost, "measure", counted)
    rule = _post(api, admin).json()
    assert calls == [1]
    for _ in range(2):
        assert api.client.get("/api/v1/rules/cost", headers=admin).status_code == 200
    assert calls == [1, 1]  # the report without a rule in focus is measured once
    api.client.patch(f"/api/v1/rules/{rule['id']}", json={"position": 7}, headers=admin)  # same set, same cost
    assert calls == [1, 1]
    api.client.patch(f"/api/v1/rules/{rule['id']}", json={"condition": "port == 1"}, headers=admin)
    assert calls == [1, 1, 1]


def test_validate_answers_the_cost_of_an_unsaved_rule_and_saves_nothing(api: Api, admin: dict[str, str]) -> None:
    _post(api, admin, 'description.matches("(?i)outdated")')
    body = {"name": "try", "condition": 'description.matches("(?i)update")', "action": "set_severity", "value": "LOW"}
    r = api.client.post("/api/v1/rules/validate", json=body, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["value"] == "low"
    cost = r.json()["cost"]
    assert cost["size"] > 3 and cost["rule_us_per_finding"] >= 0 and cost["rule_adds_us_per_finding"] >= 0
    assert cost["sample"]["source"] == "synthetic"
    assert len(api.client.get("/api/v1/rules", headers=admin).json()["items"]) == 1
    assert api.client.post("/api/v1/rules/validate", json={**body, "condition": "port == 'x'"},
                           headers=admin).status_code == 422
    api.state.settings.rules_max_rule_size = 5
    _refused(api.client.post("/api/v1/rules/validate", json=body, headers=admin), "PMAP_RULES_MAX_RULE_SIZE",
             "condition")
    assert api.client.post("/api/v1/rules/validate", json=body, headers=api.token("acme", "viewer")).status_code == 403
