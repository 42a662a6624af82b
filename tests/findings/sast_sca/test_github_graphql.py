"""GitHub vulnerability alerts at every GraphQL nesting the API produces (issue 13, item 5): one
repository, a search, an organization's (or user's) repositories, connections as ``nodes`` or
``edges[].node``. The same alert is put at each nesting, so the reports differ only in that."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.registry import detect_format
from pmap.findings.formats.sast_sca import github

ALERT = {
    "id": "RVA_kwDOAbc", "createdAt": "2024-03-01T10:00:00Z", "state": "OPEN",
    "vulnerableManifestPath": "package-lock.json", "vulnerableRequirements": "= 4.17.20",
    "securityVulnerability": {
        "severity": "HIGH", "package": {"name": "lodash", "ecosystem": "NPM"},
        "firstPatchedVersion": {"identifier": "4.17.21"},
        "advisory": {"summary": "Command Injection in lodash", "description": "d",
                     "identifiers": [{"type": "GHSA", "value": "GHSA-35jh-r3h4-6jhm"},
                                     {"type": "CVE", "value": "CVE-2021-23337"}]},
    },
}
SECOND = {**ALERT, "id": "RVA_kwDOAbd", "vulnerableManifestPath": "web/package-lock.json"}


def _repo(name: str, alerts: list[dict[str, Any]], edges: bool = False) -> dict[str, Any]:
    conn = {"edges": [{"node": a} for a in alerts]} if edges else {"nodes": alerts}
    return {"name": name, "vulnerabilityAlerts": {"totalCount": len(alerts), **conn}}


def _parse(doc: Any) -> list[ParsedFinding]:
    return list(github.FORMAT.parse(io.BytesIO(orjson.dumps(doc))))


def _shapes() -> dict[str, dict[str, Any]]:
    return {
        "repository": {"data": {"repository": {**_repo("shop", [ALERT, SECOND]), "nameWithOwner": "acme/shop"}}},
        "search": {"data": {"search": {"nodes": [{**_repo("shop", [ALERT, SECOND]), "nameWithOwner": "acme/shop"}]}}},
        "organization": {"data": {"organization": {"login": "acme", "repositories": {
            "pageInfo": {"hasNextPage": False}, "nodes": [_repo("shop", [ALERT, SECOND])]}}}},
        "organization_edges": {"data": {"organization": {"login": "acme", "repositories": {
            "edges": [{"node": _repo("shop", [ALERT], edges=True)}, {"node": _repo("shop", [SECOND], edges=True)}]}}}},
        "user": {"data": {"user": {"login": "acme", "repositories": {"nodes": [_repo("shop", [ALERT, SECOND])]}}}},
        "viewer": {"data": {"viewer": {"repositories": {"nodes": [
            {**_repo("shop", [ALERT, SECOND]), "owner": {"login": "acme"}}]}}}},
    }


@pytest.mark.parametrize("shape", sorted(_shapes()))
def test_every_nesting_reads_the_same_alerts(shape: str) -> None:
    found = _parse(_shapes()[shape])
    assert [(f.repository, f.file_path) for f in found] == [("acme/shop", "package-lock.json"),
                                                            ("acme/shop", "web/package-lock.json")]
    first = found[0]
    assert (first.rule_id, first.cve_ids, first.package_name, first.fixed_version, first.vendor_severity) == \
        ("GHSA-35jh-r3h4-6jhm", ["CVE-2021-23337"], "lodash", "4.17.21", "HIGH")
    reference = {f.fingerprint(github.KEY) for f in _parse(_shapes()["repository"])}
    assert {f.fingerprint(github.KEY) for f in found} == reference


@pytest.mark.parametrize("shape", ["organization", "user", "viewer"])
def test_organization_pages_are_detected(shape: str) -> None:
    fmt = detect_format(orjson.dumps(_shapes()[shape]), "alerts.json")
    assert fmt is not None and fmt.key == github.KEY


def test_several_repositories_of_an_organization() -> None:
    doc = {"data": {"organization": {"login": "acme", "repositories": {"nodes": [
        _repo("shop", [ALERT]), _repo("api", [ALERT]), _repo("empty", [])]}}}}
    assert [f.repository for f in _parse(doc)] == ["acme/shop", "acme/api"]


def test_a_page_without_alerts_is_refused() -> None:
    with pytest.raises(ReportError, match="no 'vulnerabilityAlerts'"):
        _parse({"data": {"organization": {"login": "acme", "repositories": {"nodes": [{"name": "shop"}]}}}})
    with pytest.raises(ReportError, match="no 'data' object"):
        _parse({"data": None, "errors": [{"message": "rate limited"}]})
