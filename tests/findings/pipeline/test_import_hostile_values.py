"""Values PostgreSQL cannot store or a calendar cannot hold, arriving by upload or query: no 500."""

from __future__ import annotations

import json

from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, upload

ONE = [{"plugin": 1, "host": "10.0.0.1", "severity": 3}]



def _stored_name(api: Api, admin: dict[str, str], iid: str, filename: bytes) -> str:
    """Upload a one-finding report under the raw ``filename`` bytes; the name its import record shows."""
    # written by hand: HTTP clients percent-encode such a name, a hostile one sends the raw bytes
    body = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + nessus_report(ONE) + b"\r\n--b0undary--\r\n")
    r = api.client.post(f"/api/v1/integrations/{iid}/imports", content=body,
                        headers={**admin, "Content-Type": "multipart/form-data; boundary=b0undary"})
    assert r.status_code == 200, r.text
    [record] = api.client.get(f"/api/v1/integrations/{iid}/imports", headers=admin).json()["items"]
    return record["filename"]

def test_a_nul_in_the_uploaded_file_name_is_dropped(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    assert _stored_name(api, admin, iid, b"a\x00b\x01.nessus") == "ab.nessus"


def test_a_finding_dated_at_the_edge_of_the_calendar_is_kept(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="gitleaks")
    report = [{"Description": "AWS key", "StartLine": 3 + i, "EndLine": 3 + i, "File": "app/config.py", "RuleID": "aws",
               "Commit": "abc", "Date": date, "Fingerprint": f"abc:app/config.py:aws:{i}", "Secret": "x", "Match": "x"}
              for i, date in enumerate(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])]
    r = upload(api, iid, json.dumps(report).encode(), admin, filename="gitleaks.json")
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    rows = sorted(findings(api, admin, integration_id=iid), key=lambda f: f["first_seen"])
    assert rows[0]["first_seen"][:4] == "0001"
    # a first sighting in year 9999 is after this import's: it is clamped, never after the last sighting
    assert rows[1]["first_seen"] == rows[1]["last_seen"] and rows[1]["first_seen"][:4] != "9999"


def test_a_nul_in_any_query_or_path_is_a_400(api: Api, admin: dict[str, str]) -> None:
    for url in ("/api/v1/findings?host=a%00b", "/api/v1/findings?vuln_id=%00", "/api/v1/audit-events?action=x%00",
                "/api/v1/integrations?vendor=nessus%00", "/api/v1/integrations/%00"):
        r = api.client.get(url, headers=admin)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"]["code"] == "bad_request" and "NUL" in r.json()["error"]["message"]


def test_direction_controls_in_the_uploaded_file_name_are_dropped(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    # U+202E would show "report\u202etxt.nessus" as "reportsussen.txt"; marks, isolates and U+061C hide too
    name = "report\u202etxt\u2066\u2069\u200e\u200f\u061c\u200b\ufeff\u2028.nessus"
    assert _stored_name(api, admin, iid, name.encode()) == "reporttxt.nessus"


def test_a_stored_file_name_with_direction_controls_is_shown_without_them(api: Api, admin: dict[str, str]) -> None:
    from sqlalchemy import update

    from pmap.core.db import transaction
    from pmap.findings.models import ImportRecord

    iid = create_integration(api, admin)
    assert upload(api, iid, nessus_report(ONE), admin).status_code == 200
    with transaction(api.state.sessions) as session:  # a row kept before names were cleaned on the way in
        session.execute(update(ImportRecord).values(filename="invoice\u202efdp.nessus"))
    [record] = api.client.get(f"/api/v1/integrations/{iid}/imports", headers=admin).json()["items"]
    assert record["filename"] == "invoicefdp.nessus"
