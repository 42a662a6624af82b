"""Hostile and broken uploads through the API: each a clear 4xx naming the format, never a hang or 500,
and a failure half-way through a file leaves nothing behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.requests import Request

from pmap.app import create_app
from pmap.core.errors import BadRequestError
from pmap.core.settings import Settings
from pmap.findings import importer
from pmap.findings.models import Finding, ImportRecord
from pmap.findings.upload import receive_upload
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, sarif_report, upload

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<NessusClientData_v2><Report name="x"><ReportHost name="h"><ReportItem port="1" severity="1" pluginID="1"
pluginName="&lol3;"/></ReportHost></Report></NessusClientData_v2>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<NessusClientData_v2><Report name="x"><ReportHost name="h"><ReportItem port="1" severity="1" pluginID="1"
pluginName="x"><description>&xxe;</description></ReportItem></ReportHost></Report></NessusClientData_v2>"""
SARIF_HEAD = b'{"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": '


def _count(api: Api, model: type) -> int:
    with api.state.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _spool_empty(api: Api) -> bool:
    spool = api.state.settings.data_dir / "imports"
    return not spool.exists() or list(spool.iterdir()) == []


@pytest.mark.parametrize("content", [BOMB, XXE], ids=["billion-laughs", "external-entity"])
def test_xml_entities_are_refused(api: Api, admin: dict[str, str], content: bytes) -> None:
    iid = create_integration(api, admin)
    r = upload(api, iid, content, admin, filename="scan.nessus")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "report_refused" and err["format"] == "nessus" and "line" in (err["location"] or "")
    assert "root:" not in r.text and "lollol" not in r.text
    assert _count(api, Finding) == 0 and _spool_empty(api)


def test_json_nested_a_million_levels_is_refused(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="sarif")
    deep = SARIF_HEAD + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}"
    r = upload(api, iid, deep, admin, filename="deep.sarif")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "report_refused" and err["format"] == "sarif" and "nested" in err["message"]
    bare = upload(api, iid, b"[" * 1_000_000, admin, filename="deep.json", format="sarif")
    assert bare.status_code == 422 and bare.json()["error"]["format"] == "sarif"


def test_binary_empty_and_truncated_files(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    noise = os.urandom(8192)
    r = upload(api, iid, noise, admin, filename="scan.nessus")
    assert r.status_code == 422 and "could not be recognised" in r.json()["error"]["message"]
    r = upload(api, iid, noise, admin, filename="scan.nessus", format="nessus")
    assert r.status_code == 422 and r.json()["error"]["format"] == "nessus"
    for empty in (b"", b"  \n\t"):
        r = upload(api, iid, empty, admin, filename="scan.nessus")
        assert r.status_code == 422 and r.json()["error"]["fields"][0] == {"field": "file", "reason": "is empty"}
    whole = nessus_report([{"plugin": i, "severity": 2} for i in range(5)])
    r = upload(api, iid, whole[: len(whole) * 2 // 3], admin, filename="scan.nessus")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "report_invalid" and err["format"] == "nessus" and err["location"].startswith("line")
    assert "nessus" in err["message"] and "line" in err["message"]
    sarif = create_integration(api, admin, vendor="sarif")
    doc = sarif_report([{"rule": f"R{i}"} for i in range(5)])
    r = upload(api, sarif, doc[:-40], admin, filename="cut.sarif")
    assert r.status_code == 422 and r.json()["error"]["format"] == "sarif" and r.json()["error"]["location"]
    assert _count(api, Finding) == 0 and _count(api, ImportRecord) == 0 and _spool_empty(api)


def test_failure_half_way_leaves_nothing_half_imported(api: Api, admin: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "BATCH_SIZE", 2)  # several batches are written before the failure
    iid = create_integration(api, admin)
    first = [{"plugin": i, "severity": 2} for i in range(3)]
    assert upload(api, iid, nessus_report(first), admin).json()["created"] == 3
    newer = nessus_report([{"plugin": i, "severity": 3, "host": f"10.1.0.{i}"} for i in range(12)])
    cut = newer[: newer.rindex(b"<ReportHost")] + b"<ReportHost name='x'><ReportItem"
    r = upload(api, iid, cut, admin)
    assert r.status_code == 422 and r.json()["error"]["format"] == "nessus"
    assert _count(api, Finding) == 3 and _count(api, ImportRecord) == 1
    assert {f["status"] for f in findings(api, admin)} == {"open"}  # nothing was resolved either


def test_oversized_upload_is_413_and_leaves_no_spool_file(settings: Settings, admin: dict[str, str], api: Api) -> None:
    iid = create_integration(api, admin)
    small = settings.model_copy(update={"max_import_bytes": 4096})
    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        big = nessus_report([{"plugin": i, "description": "x" * 200} for i in range(40)])
        r = client.post(f"/api/v1/integrations/{iid}/imports", files={"file": ("big.nessus", big)}, headers=admin)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

        def chunked() -> Iterator[bytes]:  # no Content-Length: the cap is enforced on the bytes received
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.nessus"\r\n\r\n'
            for _ in range(64):
                yield big[:1024]
        r = client.post(f"/api/v1/integrations/{iid}/imports", content=chunked(),
                        headers={**admin, "content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413
    assert _count(api, Finding) == 0 and _spool_empty(api)


def test_an_upload_cut_off_half_way_leaves_no_spool_file(tmp_path: Path) -> None:
    # the part has started (its spool file exists) when the body stops: a disconnect, or the size cap
    messages: list[dict[str, object]] = [{"type": "http.request", "more_body": True,
                 "body": b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.nessus"\r\n\r\n'
                 + b"x" * 1024},
                {"type": "http.disconnect"}]

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    request = Request({"type": "http", "method": "POST",
                       "headers": [(b"content-type", b"multipart/form-data; boundary=b")]}, receive)
    with pytest.raises(BadRequestError):
        anyio.run(receive_upload, request, tmp_path)
    assert list(tmp_path.iterdir()) == []

