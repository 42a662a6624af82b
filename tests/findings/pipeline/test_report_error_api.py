"""What an uploader reads when a report is cut short: the format, and the line where it broke, said once."""

from __future__ import annotations

import re

from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, nessus_report, upload


def test_a_truncated_xml_upload_names_its_line_once(api: Api, admin: dict[str, str]) -> None:
    whole = nessus_report([{"plugin": i, "severity": 2} for i in range(5)])
    cut = whole[: whole.rindex(b"<ReportItem")]  # ends inside open elements, on a known line
    line = cut.count(b"\n") + 1
    iid = create_integration(api, admin)
    r = upload(api, iid, cut, admin, filename="scan.nessus")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["format"] == "nessus" and err["location"].startswith(f"line {line}, column ")
    # before: "... in tag ReportHost line 3, line 9, column 1 (at line 9)": the line three times
    assert len(re.findall(rf"\bline {line}\b", err["message"])) == 1, err["message"]
    assert err["message"].startswith("the nessus report cannot be imported: malformed or truncated XML: ")
