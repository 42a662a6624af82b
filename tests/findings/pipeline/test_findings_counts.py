"""GET /api/v1/findings/counts: the listing's filters, counted by the database per integration and severity, one
organization only, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration
from tests.findings.pipeline.stored import store

ORDER = ["critical", "high", "medium", "low", "info", "unknown"]
#: each finding of acme differs from the others in the field its filter tests; globex's match every filter
ALPHA: list[dict[str, Any]] = [
    {"severity": "critical", "host": "h1", "ip": "10.0.0.1", "port": 443, "cve_ids": ["CVE-2024-1"], "tags": ["pci"],
     "title": "Apache Log4j RCE"},
    {"severity": "high", "host": "h2", "url": "https://app.test/x", "scope": "weekly"},
    {"severity": "medium", "status": "resolved", "repository": "acme/web", "file_path": "src/a.py"},
    {"severity": "low", "package_name": "lodash", "format": "sarif"},
]
BETA: list[dict[str, Any]] = [{"severity": "critical", "asset": "srv-9"},
                              {"severity": "info", "status": "suppressed"}, {"severity": "unknown"}]
EVERYTHING: dict[str, Any] = {
    "severity": "critical", "host": "h1", "ip": "10.0.0.1", "port": 443, "cve_ids": ["CVE-2024-1"], "tags": ["pci"],
    "title": "Apache Log4j RCE", "url": "https://app.test/x", "scope": "weekly", "repository": "acme/web",
    "file_path": "src/a.py", "package_name": "lodash", "format": "sarif", "asset": "srv-9"}


def _seed(api: Api) -> dict[str, str]:
    admin = api.token("acme", "admin")
    alpha = create_integration(api, admin, "tenable_vm", name="alpha")
    beta = create_integration(api, admin, "nessus", name="beta", connection={"base_url": "https://nessus.test:8834"})
    store(api, "acme", alpha, [dict(f) for f in ALPHA])
    store(api, "acme", beta, [dict(f) for f in BETA])
    other = create_integration(api, api.token("globex", "admin"), "tenable_vm", name="alpha")
    store(api, "globex", other, [dict(EVERYTHING) for _ in range(3)])
    return {"alpha": alpha, "beta": beta, "other": other}


def _counts(api: Api, org: str = "acme", **params: Any) -> dict[str, Any]:
    r = api.client.get("/api/v1/findings/counts", params=params, headers=api.token(org, "viewer"))
    assert r.status_code == 200, r.text
    return r.json()


def test_counts_by_severity_and_integration(api: Api) -> None:
    ids = _seed(api)
    body = _counts(api)
    assert body["total"] == 7
    assert list(body["by_severity"]) == ORDER
    assert body["by_severity"] == {"critical": 2, "high": 1, "medium": 1, "low": 1, "info": 1, "unknown": 1}
    alpha, beta = body["by_integration"]  # most findings first
    assert alpha == {"integration_id": ids["alpha"], "name": "alpha", "vendor": "tenable_vm", "total": 4,
                     "by_severity": {"critical": 1, "high": 1, "medium": 1, "low": 1, "info": 0, "unknown": 0}}
    assert (beta["integration_id"], beta["name"], beta["vendor"], beta["total"]) == (ids["beta"], "beta", "nessus", 3)
    assert list(beta["by_severity"]) == ORDER and beta["by_severity"]["high"] == 0
    # the other organization sees its own findings only, and acme's are never in its counts
    theirs = _counts(api, "globex")
    assert theirs["total"] == 3 and [e["integration_id"] for e in theirs["by_integration"]] == [ids["other"]]


@pytest.mark.parametrize(("params", "total"), [
    ({"severity": "critical"}, 2),
    ({"severity": "critical,high"}, 3),
    ({"status": "open"}, 5),
    ({"status": "resolved"}, 1),
    ({"vuln_id": "cve-2024-1"}, 1),
    ({"host": "h1"}, 1),
    ({"ip": "10.0.0.1"}, 1),
    ({"port": 443}, 1),
    ({"url": "https://app.test/x"}, 1),
    ({"repository": "acme/web"}, 1),
    ({"file_path": "src/a.py"}, 1),
    ({"package_name": "lodash"}, 1),
    ({"resource": "srv-9"}, 1),
    ({"scope": "weekly"}, 1),
    ({"format": "sarif"}, 1),
    ({"tag": "pci"}, 1),
    ({"title": "log4j"}, 1),
    ({"severity": "critical", "status": "open", "host": "h2"}, 0),
])
def test_each_filter_changes_the_counts(api: Api, params: dict[str, Any], total: int) -> None:
    _seed(api)
    body = _counts(api, **params)
    assert body["total"] == total == sum(body["by_severity"].values())
    assert sum(e["total"] for e in body["by_integration"]) == total
    assert all(e["total"] > 0 for e in body["by_integration"])


def test_integration_filter_and_refusals(api: Api) -> None:
    ids = _seed(api)
    body = _counts(api, integration_id=ids["beta"])
    assert body["total"] == 3 and [e["name"] for e in body["by_integration"]] == ["beta"]
    assert _counts(api, integration_id=ids["other"])["total"] == 0  # another organization's integration
    headers = api.token("acme", "viewer")
    bad = api.client.get("/api/v1/findings/counts", params={"severity": "urgent"}, headers=headers)
    assert bad.status_code == 422 and "severity" in bad.text  # the listing's own filter checks
    assert api.client.get("/api/v1/findings/counts").status_code == 401
