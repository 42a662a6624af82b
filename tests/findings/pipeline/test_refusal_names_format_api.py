"""A refused report that PMAP recognises as another of its formats: the 422 names that format
(issue 13, item 5). The same SARIF file is sent under its own and under another format's key."""

from __future__ import annotations

from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, sarif_report, upload

SNYK_CODE = sarif_report([{"rule": "javascript/Sqli", "level": "error", "file": "app.js", "line": 12}],
                         tool="SnykCode")


def test_snyk_code_sarif_given_as_snyk_json_names_sarif(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="snyk", credentials={"token": "t" * 36}, connection={})
    r = upload(api, iid, SNYK_CODE, admin, filename="snyk-code.json", format="snyk_json")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "report_invalid" and err["format"] == "snyk_json"
    assert err["detected_format"] == "sarif"
    assert "looks like a sarif report: import it with format=sarif" in err["message"]
    assert findings(api, admin, integration_id=iid) == []
    ok = upload(api, iid, SNYK_CODE, admin, filename="snyk-code.json", format="sarif")
    assert ok.status_code == 200 and ok.json()["parsed"] == 1


def test_a_format_the_integration_does_not_import_is_named_as_such(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)  # tenable_vm: no SARIF
    r = upload(api, iid, SNYK_CODE, admin, filename="scan.nessus", format="nessus")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["format"] == "nessus" and err["detected_format"] == "sarif"
    assert "looks like a sarif report, which this integration does not import" in err["message"]


def test_a_broken_report_of_the_right_format_names_no_other(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="sarif")
    r = upload(api, iid, SNYK_CODE[:-40], admin, filename="cut.sarif", format="sarif")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["format"] == "sarif" and "detected_format" not in err and "looks like" not in err["message"]
