"""POST /integrations/{id}/imports: summaries, de-duplication, resolution, scope, formats, threshold."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pmap.core.errors import Conflict
from pmap.findings.importer import ImportOptions, run_import, target_for
from pmap.findings.storage import lock_stream
from pmap.integrations.models import Integration
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, sarif_report, upload

THREE = [{"plugin": 1, "host": "10.0.0.1", "severity": 3, "cve": "CVE-2021-44228"},
         {"plugin": 2, "host": "10.0.0.1", "severity": 2},
         {"plugin": 3, "host": "10.0.0.2", "severity": 4, "cvss": 9.8}]


def test_import_summary_and_reimport_creates_no_duplicates(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    r = upload(api, iid, nessus_report(THREE), admin)
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["format"], s["parsed"], s["kept"], s["created"], s["updated"], s["resolved"]) == ("nessus", 3, 3, 3, 0, 0)
    assert s["filtered_out"] == 0 and s["unknown_severity"] == 0 and s["scope"] == "default"
    again = upload(api, iid, nessus_report(THREE), admin).json()
    assert (again["created"], again["updated"], again["resolved"], again["parsed"]) == (0, 3, 0, 3)
    rows = findings(api, admin, integration_id=iid)
    assert len(rows) == 3 and {f["status"] for f in rows} == {"open"}
    log4j = next(f for f in rows if f["rule_id"] == "1")
    assert log4j["cve_ids"] == ["CVE-2021-44228"] and log4j["severity"] == "high" and log4j["vendor_severity"] == "3"
    assert log4j["severity_source"] == "vendor" and log4j["ip"] == "10.0.0.1" and log4j["port"] == 443
    assert log4j["first_import_id"] == s["import_id"] and log4j["last_import_id"] == again["import_id"]
    imports = api.client.get(f"/api/v1/integrations/{iid}/imports", headers=admin).json()["items"]
    assert [i["id"] for i in imports] == [again["import_id"], s["import_id"]]
    assert imports[0]["summary"]["updated"] == 3 and imports[0]["filename"] == "report.nessus"


def test_repeats_within_one_report_count_once(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    s = upload(api, iid, nessus_report(THREE + THREE[:2]), admin).json()
    assert (s["parsed"], s["created"], s["merged"], s["duplicates"]) == (3, 3, 2, 2)


def test_absent_findings_resolve_and_reappearing_ones_reopen(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    upload(api, iid, nessus_report(THREE), admin)
    # the newer scan covers both hosts again (a full report resolves only on the hosts it covered)
    newer = [THREE[0], THREE[1], {"plugin": 4, "host": "10.0.0.2", "severity": 1}]
    s = upload(api, iid, nessus_report(newer), admin).json()
    assert (s["created"], s["updated"], s["resolved"], s["reopened"]) == (1, 2, 1, 0)
    gone = findings(api, admin, integration_id=iid, status="resolved")
    assert [f["rule_id"] for f in gone] == ["3"] and gone[0]["resolved_at"] is not None
    back = upload(api, iid, nessus_report(THREE), admin).json()
    assert (back["created"], back["updated"], back["reopened"], back["resolved"]) == (0, 3, 1, 1)
    reopened = next(f for f in findings(api, admin, integration_id=iid) if f["rule_id"] == "3")
    assert reopened["status"] == "open" and reopened["resolved_at"] is None


def test_the_first_sighting_is_the_earliest_any_report_gave(api: Api, admin: dict[str, str]) -> None:
    import json

    iid = create_integration(api, admin, vendor="gitleaks")

    def report(date: str) -> bytes:  # Gitleaks dates each finding by its commit
        return json.dumps([{"Description": "AWS key", "StartLine": 3, "EndLine": 3, "File": "app/config.py",
                            "RuleID": "aws", "Commit": "abc", "Date": date, "Fingerprint": "abc:app/config.py:aws:3",
                            "Secret": "x", "Match": "x"}]).encode()

    def first_seen() -> str:
        [f] = findings(api, admin, integration_id=iid)
        return str(f["first_seen"])[:10]

    assert upload(api, iid, report("2024-05-01T00:00:00Z"), admin, filename="gitleaks.json").json()["created"] == 1
    assert first_seen() == "2024-05-01"
    upload(api, iid, report("2023-01-02T00:00:00Z"), admin, filename="gitleaks.json")  # an older report, later
    assert first_seen() == "2023-01-02"
    assert upload(api, iid, report("2025-03-04T00:00:00Z"), admin, filename="gitleaks.json").json()["updated"] == 1
    assert first_seen() == "2023-01-02"


def test_partial_report_resolves_nothing(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    upload(api, iid, nessus_report(THREE), admin)
    s = upload(api, iid, nessus_report(THREE[:1]), admin, full="false").json()
    assert s["resolved"] == 0 and s["full"] is False
    assert len(findings(api, admin, integration_id=iid, status="open")) == 3


def test_scopes_are_independent_streams(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    assert upload(api, iid, nessus_report(THREE), admin, scope="dmz").json()["created"] == 3
    s = upload(api, iid, nessus_report(THREE[:1]), admin, scope="internal").json()
    assert (s["created"], s["resolved"]) == (1, 0)  # the dmz findings are another stream
    assert len(findings(api, admin, integration_id=iid, scope="dmz", status="open")) == 3
    # in its own scope, a rescan of 10.0.0.1 resolves what it lacks there; 10.0.0.2 was not scanned
    assert upload(api, iid, nessus_report(THREE[:1]), admin, scope="dmz").json()["resolved"] == 1
    assert upload(api, iid, nessus_report(THREE[:1]), admin, scope="dmz", resolve="scope").json()["resolved"] == 1
    assert len(findings(api, admin, integration_id=iid, scope="dmz", status="open")) == 1


def test_explicit_format_detection_and_accepted_formats(api: Api, admin: dict[str, str]) -> None:
    tenable = create_integration(api, admin)
    sarif = sarif_report([{"rule": "R1"}])
    r = upload(api, tenable, sarif, admin, filename="x.sarif")
    assert r.status_code == 422
    err = r.json()["error"]
    assert "sarif" in err["message"] and "nessus, tenable_csv" in err["message"]
    r = upload(api, tenable, nessus_report(THREE), admin, format="sarif")
    assert r.status_code == 422 and "accepted: nessus, tenable_csv" in r.json()["error"]["message"]
    r = upload(api, tenable, nessus_report(THREE), admin, format="no_such_format")
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "format"
    r = upload(api, tenable, b"just some text\nnothing to see\n", admin, filename="notes.txt")
    assert r.status_code == 422 and "could not be recognised" in r.json()["error"]["message"]
    # an explicit format overrides detection: the nessus parser then names what is wrong
    r = upload(api, tenable, sarif, admin, filename="x.sarif", format="nessus")
    assert r.status_code == 422 and r.json()["error"]["format"] == "nessus"
    generic = create_integration(api, admin, vendor="sarif")
    s = upload(api, generic, sarif, admin, filename="scan.json").json()
    assert s["format"] == "sarif" and s["created"] == 1
    jira = create_integration(api, admin, vendor="jira_cloud", connection={"base_url": "https://acme.atlassian.net"},
                              credentials={"email": "a@acme.test", "api_token": "t" * 24})
    r = upload(api, jira, sarif, admin)
    assert r.status_code == 422 and "imports no report" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "operation_not_supported"


def test_threshold_drops_below_counts_and_keeps_unknown(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, severity_threshold="high")
    items: list[dict[str, Any]] = [{"plugin": 10, "severity": 4}, {"plugin": 11, "severity": 3},
                                   {"plugin": 12, "severity": 1},
             {"plugin": 13, "severity": 0}, {"plugin": 14, "severity": "bogus"}]
    s = upload(api, iid, nessus_report(items), admin).json()
    assert (s["parsed"], s["kept"], s["filtered_out"], s["unknown_severity"], s["created"]) == (5, 3, 2, 1, 3)
    stored = {f["rule_id"]: f for f in findings(api, admin, integration_id=iid)}
    assert set(stored) == {"10", "11", "14"}
    assert stored["14"]["severity"] == "unknown" and stored["14"]["severity_source"] == "unmapped"
    assert stored["14"]["vendor_severity"] == "bogus"
    # raising the threshold later: stored findings now below it become "filtered", neither open nor resolved
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"severity_threshold": "critical"}, headers=admin)
    assert r.status_code == 200 and r.json()["severity_threshold"] == "critical"
    s = upload(api, iid, nessus_report(items), admin).json()
    assert (s["kept"], s["filtered_out"], s["resolved"]) == (2, 3, 0)
    assert [f["rule_id"] for f in findings(api, admin, integration_id=iid, status="filtered")] == ["11"]
    bad = api.client.patch(f"/api/v1/integrations/{iid}", json={"severity_threshold": "severe"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "severity_threshold"


def test_cvss_band_when_the_vendor_value_maps_to_nothing(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    s = upload(api, iid, nessus_report([{"plugin": 20, "severity": "weird", "cvss": 9.8},
                                        {"plugin": 21, "severity": "weird", "cvss": 5.0}]), admin).json()
    assert (s["created"], s["unknown_severity"]) == (2, 0)
    got = {f["rule_id"]: (f["severity"], f["severity_source"], f["vendor_severity"]) for f in findings(api, admin)}
    assert got == {"20": ("critical", "cvss", "weird"), "21": ("medium", "cvss", "weird")}


def test_roles_and_ownership(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    viewer = api.token("acme", "viewer")
    assert upload(api, iid, nessus_report(THREE), viewer).status_code == 403
    other = api.token("globex", "admin")
    assert upload(api, iid, nessus_report(THREE), other).status_code == 404
    assert upload(api, iid, nessus_report(THREE), admin).status_code == 200
    assert findings(api, other) == []
    assert len(findings(api, viewer)) == 3
    assert api.client.get(f"/api/v1/integrations/{iid}/imports", headers=other).status_code == 404


def test_request_shape_errors(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    url = f"/api/v1/integrations/{iid}/imports"
    r = api.client.post(url, content=nessus_report(THREE), headers={**admin, "content-type": "application/xml"})
    assert r.status_code == 415
    r = api.client.post(url, data={"format": "nessus"}, files={"other": ("x", b"y")}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "file"
    r = upload(api, iid, nessus_report(THREE), admin, colour="red")
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "colour"
    r = upload(api, iid, nessus_report(THREE), admin, full="maybe")
    assert r.status_code == 422
    assert upload(api, "not-a-uuid", b"x", admin).status_code == 422
    assert list((api.state.settings.data_dir / "imports").iterdir()) == []  # every spooled upload was deleted


def test_one_import_per_stream_at_a_time(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    if api.state.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's advisory lock; SQLite's per-process stream claim is tested in "
                    "test_concurrent_writers.py::test_one_import_per_stream_while_another_scope_imports_alongside")
    with api.state.engine.begin() as conn:  # another import of the same stream holds its lock
        assert lock_stream(conn, uuid.UUID(iid), "default")
        r = upload(api, iid, nessus_report(THREE), admin)
        assert r.status_code == 409 and "scope 'default' is running" in r.json()["error"]["message"]
        assert upload(api, iid, nessus_report(THREE), admin, scope="other").status_code == 200
    assert upload(api, iid, nessus_report(THREE), admin).status_code == 200


def test_a_background_import_waits_a_while_for_the_streams_lock(api: Api, admin: dict[str, str],
                                                                tmp_path: Path) -> None:
    """A job (a sync, a queued upload, a scan's report) waits for another import of its stream to end, as a
    takeover must when the attempt killed a moment ago still holds the lock (until PostgreSQL notices); an upload
    someone waits on gets its 409 at once (above)."""
    iid = create_integration(api, admin)
    if api.state.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's advisory lock")
    report = tmp_path / "scan.nessus"
    report.write_bytes(nessus_report(THREE))
    with api.state.sessions() as session:
        target = target_for(session.get_one(Integration, uuid.UUID(iid)))
    with api.state.engine.connect() as holder:
        held = holder.begin()
        assert lock_stream(holder, uuid.UUID(iid), "default")
        started = time.monotonic()
        with pytest.raises(Conflict, match="scope 'default' is running"):  # it waited, then gave up
            run_import(api.state.engine, target, report, ImportOptions(wait_for_stream=0.5))
        assert time.monotonic() - started >= 0.5
        releasing = threading.Timer(1.0, held.rollback)  # the other import ends a second later
        releasing.start()
        try:
            summary = run_import(api.state.engine, target, report, ImportOptions(wait_for_stream=30))
        finally:
            releasing.join()
    assert summary.created == 3 and len(findings(api, admin, integration_id=iid)) == 3


def test_import_record_is_readable(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    s = upload(api, iid, nessus_report(THREE), admin, scope="dmz").json()
    record = api.client.get(f"/api/v1/imports/{s['import_id']}", headers=admin).json()
    assert record["integration_id"] == iid and record["scope"] == "dmz" and record["format"] == "nessus"
    assert record["summary"]["created"] == 3 and record["size_bytes"] > 0 and record["actor"].startswith("token:")
    assert api.client.get(f"/api/v1/imports/{s['import_id']}", headers=api.token("globex")).status_code == 404


def test_the_reports_own_state_sets_the_status_and_rules_still_win(api: Api, admin: dict[str, str]) -> None:
    """A SARIF suppression in force is stored suppressed; a later report without it reopens the finding."""
    import orjson

    doc = orjson.loads(sarif_report([{"rule": "R1", "line": 3}, {"rule": "R2", "line": 9}]))
    doc["runs"][0]["results"][0]["suppressions"] = [{"kind": "inSource"}]
    iid = create_integration(api, admin, vendor="sarif")
    s = upload(api, iid, orjson.dumps(doc), admin, filename="scan.sarif").json()
    assert (s["parsed"], s["created"]) == (2, 2), s
    statuses = {f["rule_id"]: f["status"] for f in findings(api, admin, integration_id=iid)}
    assert statuses == {"R1": "suppressed", "R2": "open"}
    del doc["runs"][0]["results"][0]["suppressions"]
    upload(api, iid, orjson.dumps(doc), admin, filename="scan.sarif")
    assert {f["rule_id"]: f["status"] for f in findings(api, admin, integration_id=iid)} == {"R1": "open", "R2": "open"}
