"""GitHub's REST alert lists (issue 13, item 5): Dependabot, code scanning and secret scanning alerts, as a
repository's list and as an organization's (whose alerts name their ``repository``). The alerts are
constructed with the fields of GitHub's REST reference (``dependabot-alert``, ``code-scanning-alert-items``,
``secret-scanning-alert`` with ``first_location_detected``, GA in June 2025)."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from pmap.findings.formats.base import ParsedFinding, Severity
from pmap.findings.formats.registry import detect_format
from pmap.findings.formats.sast_sca import github

REPO = {"id": 1296269, "name": "shop", "full_name": "acme/shop", "private": True}
OTHER = {**REPO, "id": 1296270, "name": "web", "full_name": "acme/web"}

DEPENDABOT = {
    "number": 2, "state": "open", "created_at": "2024-03-01T10:00:00Z", "updated_at": "2024-03-01T10:00:00Z",
    "html_url": "https://github.com/acme/shop/security/dependabot/2", "dismissed_at": None,
    "dismissed_reason": None, "fixed_at": None,
    "dependency": {"package": {"ecosystem": "npm", "name": "lodash"}, "manifest_path": "package-lock.json",
                   "scope": "runtime"},
    "security_advisory": {"ghsa_id": "GHSA-35jh-r3h4-6jhm", "cve_id": "CVE-2021-23337",
                          "summary": "Command Injection in lodash", "description": "d", "severity": "high",
                          "identifiers": [{"value": "GHSA-35jh-r3h4-6jhm", "type": "GHSA"},
                                          {"value": "CVE-2021-23337", "type": "CVE"}],
                          "cvss": {"vector_string": "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", "score": 7.2},
                          "cwes": [{"cwe_id": "CWE-77", "name": "Command Injection"}]},
    "security_vulnerability": {"package": {"ecosystem": "npm", "name": "lodash"}, "severity": "high",
                               "vulnerable_version_range": "< 4.17.21",
                               "first_patched_version": {"identifier": "4.17.21"}},
}
CODE_SCANNING = {
    "number": 4, "created_at": "2024-03-02T10:00:00Z", "html_url": "https://github.com/acme/shop/code-scanning/4",
    "state": "dismissed", "dismissed_at": "2024-03-05T10:00:00Z", "dismissed_reason": "false positive",
    "rule": {"id": "js/zipslip", "severity": "error", "security_severity_level": "high", "tags": [
        "security", "external/cwe/cwe-022"], "description": "Arbitrary file write during zip extraction",
        "name": "js/zipslip"},
    "tool": {"name": "CodeQL", "version": "2.16.0"},
    "most_recent_instance": {"ref": "refs/heads/main", "state": "dismissed",
                             "message": {"text": "Unsanitized archive entry"},
                             "location": {"path": "src/unzip.js", "start_line": 42, "end_line": 42}},
}
SECRET = {
    "number": 7, "created_at": "2024-03-03T10:00:00Z", "updated_at": "2024-03-03T10:00:00Z",
    "url": "https://api.github.com/repos/acme/shop/secret-scanning/alerts/7",
    "html_url": "https://github.com/acme/shop/security/secret-scanning/7",
    "locations_url": "https://api.github.com/repos/acme/shop/secret-scanning/alerts/7/locations",
    "state": "open", "resolution": None, "resolved_at": None, "resolved_by": None,
    "secret_type": "mailchimp_api_key", "secret_type_display_name": "Mailchimp API Key",
    "secret": "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX-us2", "validity": "active",
    "push_protection_bypassed": False, "publicly_leaked": False, "multi_repo": False,
    "first_location_detected": {"path": "config/mail.yml", "start_line": 3, "end_line": 3, "start_column": 9,
                                "end_column": 45, "blob_sha": "af5626b4", "commit_sha": "f14d7debf"},
    "has_more_locations": False,
}


def _parse(doc: Any) -> list[ParsedFinding]:
    body = orjson.dumps(doc)
    fmt = detect_format(body[:65536], "alerts.json")
    assert fmt is not None and fmt.key == "github_vulnerability_json"
    return list(github.FORMAT.parse(io.BytesIO(body)))


def _severity(f: ParsedFinding) -> Severity:
    return github.FORMAT.map_severity(f).severity


def test_dependabot_repository_list() -> None:
    (f,) = _parse([DEPENDABOT])
    assert (f.rule_id, f.cve_ids, f.cwe_ids, f.package_name, f.fixed_version, f.file_path) == (
        "GHSA-35jh-r3h4-6jhm", ["CVE-2021-23337"], [77], "lodash", "4.17.21", "package-lock.json")
    assert (f.cvss_score, _severity(f), f.repository, f.status) == (7.2, Severity.HIGH, None, None)


def test_code_scanning_repository_list() -> None:
    (f,) = _parse([CODE_SCANNING])
    assert (f.rule_id, f.tool, f.file_path, f.line, f.cwe_ids) == ("js/zipslip", "CodeQL", "src/unzip.js", 42, [22])
    assert (f.status, _severity(f), f.description) == ("false_positive", Severity.HIGH, "Unsanitized archive entry")


def test_secret_scanning_repository_list() -> None:
    resolved = {**SECRET, "number": 8, "state": "resolved", "resolution": "revoked",
                "resolved_at": "2024-03-04T10:00:00Z", "first_location_detected": None}
    found = _parse([SECRET, resolved])
    assert [f.title for f in found] == ["Leaked secret: Mailchimp API Key"] * 2
    first, second = found
    assert (first.rule_id, first.file_path, first.line, first.cwe_ids, first.status) == (
        "mailchimp_api_key", "config/mail.yml", 3, [798], None)
    assert first.extra == {"number": 7, "validity": "active"} and first.repository is None
    assert (second.file_path, second.status) == (None, "fixed")
    # the secret is never kept; the alert number keeps two alerts of one type apart even without a location
    assert "XXXXXXXX" not in repr(found)
    assert first.fingerprint(github.KEY) != second.fingerprint(github.KEY)
    unlocated = {**SECRET, "first_location_detected": None}
    assert _parse([unlocated])[0].fingerprint(github.KEY) != _parse([{**unlocated, "number": 9}])[0].fingerprint(
        github.KEY)
    # GitHub rates no secret alert: unmapped, never invented
    assert github.FORMAT.map_severity(first).source == "unmapped"


@pytest.mark.parametrize(("resolution", "status"), [
    ("revoked", "fixed"), (None, "fixed"), ("false_positive", "false_positive"), ("pattern_edited", "false_positive"),
    ("pattern_deleted", "false_positive"), ("wont_fix", "accepted"), ("used_in_tests", "accepted")])
def test_secret_scanning_resolutions(resolution: str | None, status: str) -> None:
    (f,) = _parse([{**SECRET, "state": "resolved", "resolution": resolution}])
    assert f.status == status


@pytest.mark.parametrize("alert", [DEPENDABOT, CODE_SCANNING, SECRET], ids=["dependabot", "code_scanning", "secret"])
def test_organization_lists_keep_repositories_apart(alert: dict[str, Any]) -> None:
    found = _parse([{**alert, "repository": REPO}, {**alert, "repository": OTHER}])
    assert [f.repository for f in found] == ["acme/shop", "acme/web"]
    assert found[0].fingerprint(github.KEY) != found[1].fingerprint(github.KEY)


def test_a_list_of_every_kind_at_once() -> None:
    found = _parse([{**DEPENDABOT, "repository": REPO}, {**CODE_SCANNING, "repository": REPO},
                    {**SECRET, "repository": REPO}])
    assert [f.rule_id for f in found] == ["GHSA-35jh-r3h4-6jhm", "js/zipslip", "mailchimp_api_key"]


def test_empty_lists_are_no_findings() -> None:
    assert list(github.FORMAT.parse(io.BytesIO(b"[]"))) == []
