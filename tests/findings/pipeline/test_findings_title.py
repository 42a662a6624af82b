"""GET /api/v1/findings?title=: a case-insensitive substring of the title, LIKE wildcards literal,
on SQLite and PostgreSQL; and the imports list's ``total``."""

from __future__ import annotations

from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, upload

TITLES = ["Apache Log4j RCE", "OpenSSH user enumeration", "100% CPU in log parser", "Weak_Cipher suites",
          "Weak cipher SUITES"]


def _seed(api: Api, admin: dict[str, str]) -> str:
    iid = create_integration(api, admin)
    items = [{"plugin": 200 + i, "name": title, "host": "10.0.0.9"} for i, title in enumerate(TITLES)]
    assert upload(api, iid, nessus_report(items), admin).status_code == 200
    return iid


def _titles(api: Api, admin: dict[str, str], **params: str) -> list[str]:
    return sorted(f["title"] for f in findings(api, admin, **params))


def test_title_contains_any_case(api: Api, admin: dict[str, str]) -> None:
    _seed(api, admin)
    assert _titles(api, admin, title="log") == ["100% CPU in log parser", "Apache Log4j RCE"]
    assert _titles(api, admin, title="LOG4J") == ["Apache Log4j RCE"]
    assert _titles(api, admin, title="openssh user") == ["OpenSSH user enumeration"]
    assert _titles(api, admin, title="nothing of the kind") == []


def test_title_wildcards_are_literal(api: Api, admin: dict[str, str]) -> None:
    _seed(api, admin)
    assert _titles(api, admin, title="%") == ["100% CPU in log parser"]  # not "anything"
    assert _titles(api, admin, title="weak_cipher") == ["Weak_Cipher suites"]  # _ is not "any character"
    assert _titles(api, admin, title="k_c") == ["Weak_Cipher suites"]
    assert _titles(api, admin, title="\\") == []
    assert _titles(api, admin, title="weak cipher") == ["Weak cipher SUITES"]


def test_title_combines_with_other_filters_and_the_organization(api: Api, admin: dict[str, str]) -> None:
    _seed(api, admin)
    assert _titles(api, admin, title="cipher", severity="medium") == ["Weak cipher SUITES", "Weak_Cipher suites"]
    assert _titles(api, admin, title="cipher", severity="critical") == []
    assert _titles(api, api.token("other"), title="cipher") == []
    r = api.client.get("/api/v1/findings", params={"title": ""}, headers=admin)
    assert r.status_code == 422


def test_imports_total_on_every_page(api: Api, admin: dict[str, str]) -> None:
    iid = _seed(api, admin)
    for n in range(2):
        items = [{"plugin": 300 + n, "host": "10.0.0.8"}]
        assert upload(api, iid, nessus_report(items), admin).status_code == 200
    first = api.client.get(f"/api/v1/integrations/{iid}/imports", params={"limit": 2}, headers=admin).json()
    last = api.client.get(f"/api/v1/integrations/{iid}/imports",
                          params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin).json()
    assert first["total"] == last["total"] == 3
    assert len(last["items"]) == 1 and last["next_cursor"] is None
