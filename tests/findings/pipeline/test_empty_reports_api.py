"""Empty results are results: a tool's clean-scan output imports as 0 findings; an empty upload of a
format whose tool never writes an empty file stays a 422 naming the format (issue 13, item 4).

Which tools write what for a clean scan: nuclei writes an empty JSON-lines file (or none at all,
projectdiscovery/nuclei#618), masscan ``-oJ`` an empty file (rackerlabs/scantron#177 handles its
0-byte JSON files); gitleaks writes ``[]`` and osv-scanner ``{"results": []}``, which their parsers
read as 0 findings like any other report.
"""

from __future__ import annotations

import uuid

import orjson
import pytest

from pmap.core.errors import ValidationFailed
from pmap.findings.formats.registry import report_formats
from pmap.findings.importer import ImportTarget, resolve_format
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, upload

NUCLEI_LINE = orjson.dumps({
    "template-id": "exposed-panel", "info": {"name": "Exposed panel", "severity": "medium"},
    "host": "https://app.example.test", "matched-at": "https://app.example.test/admin", "type": "http",
}) + b"\n"


def test_only_tools_that_write_empty_files_accept_them() -> None:
    assert {k for k, f in report_formats().items() if f.accepts_empty()} == {"nuclei_json", "masscan"}


@pytest.mark.parametrize(("vendor", "fmt", "filename"), [("nuclei", "nuclei_json", "nuclei.jsonl"),
                                                         ("masscan", "masscan", "masscan.json")])
@pytest.mark.parametrize("body", [b"", b"\n", b"  \r\n"])
def test_empty_file_of_a_clean_scan_imports_as_no_findings(api: Api, admin: dict[str, str], vendor: str, fmt: str,
                                                           filename: str, body: bytes) -> None:
    iid = create_integration(api, admin, vendor=vendor)
    for fields in ({"format": fmt}, {}):  # without `format` too: the integration's one format accepts it
        r = upload(api, iid, body, admin, filename=filename, **fields)
        assert r.status_code == 200, r.text
        s = r.json()
        assert (s["format"], s["parsed"], s["kept"], s["created"]) == (fmt, 0, 0, 0)


@pytest.mark.parametrize(("vendor", "fmt", "body"), [
    ("nuclei", "nuclei_json", b"[]"),  # -je (JSON export) with no results
    ("masscan", "masscan", b"[]"),
    ("gitleaks", "gitleaks_json", b"[]"),
    ("osv_scanner", "osv_json", b'{"results": []}'),
])
def test_non_empty_clean_output_imports_as_no_findings(api: Api, admin: dict[str, str], vendor: str, fmt: str,
                                                       body: bytes) -> None:
    iid = create_integration(api, admin, vendor=vendor)
    r = upload(api, iid, body, admin, filename="clean.json", format=fmt)
    assert r.status_code == 200, r.text
    assert (r.json()["format"], r.json()["parsed"]) == (fmt, 0)


@pytest.mark.parametrize(("vendor", "fmt"), [("tenable_vm", "nessus"), ("sarif", "sarif"),
                                             ("gitleaks", "gitleaks_json"), ("osv_scanner", "osv_json")])
def test_empty_file_of_a_format_never_empty_is_refused_naming_it(api: Api, admin: dict[str, str], vendor: str,
                                                                 fmt: str) -> None:
    iid = create_integration(api, admin, vendor=vendor)
    r = upload(api, iid, b"", admin, filename="report", format=fmt)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["fields"][0] == {"field": "file", "reason": "is empty"}
    assert f"({fmt}) is never empty" in err["message"]
    r = upload(api, iid, b" \n", admin, filename="report")  # and without `format`
    assert r.status_code == 422 and r.json()["error"]["fields"][0] == {"field": "file", "reason": "is empty"}
    if vendor != "tenable_vm":  # the integration's one format is named; tenable_vm imports several
        assert f"({fmt}) is never empty" in r.json()["error"]["message"]
    assert findings(api, admin, integration_id=iid) == []


def test_empty_file_without_format_where_several_formats_are_accepted() -> None:
    # nothing can be detected in an empty file: with several accepted formats the uploader must say which
    target = ImportTarget(uuid.uuid4(), uuid.uuid4(), "custom", ("nessus", "nuclei_json", "masscan"))
    with pytest.raises(ValidationFailed, match=r"pass `format`.*nuclei_json, masscan"):
        resolve_format(b"", "scan.json", None, target)
    assert resolve_format(b"\xef\xbb\xbf\n", "scan.json", "masscan", target).key == "masscan"
    with pytest.raises(ValidationFailed, match=r"\(nessus\) is never empty"):
        resolve_format(b"", "scan.nessus", "nessus", target)


def test_clean_scan_after_a_finding_is_accepted(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="nuclei")
    first = upload(api, iid, NUCLEI_LINE, admin, filename="nuclei.jsonl")
    assert first.status_code == 200 and first.json()["created"] == 1
    clean = upload(api, iid, b"", admin, filename="nuclei.jsonl")
    assert clean.status_code == 200, clean.text
    assert clean.json()["parsed"] == 0
