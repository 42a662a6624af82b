"""With PMAP_IMPORT_OVERLAP=1, large reports on PostgreSQL import with a parsing process (pmap.findings.overlap): the
same findings, counts and refusals as an import in one process, atomic, cancellable. Here every report takes that
path (the tests that compare set the variable for each import)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from pmap.core.settings import get_settings
from pmap.findings import overlap
from pmap.findings.importer import ImportOptions, ReportRefused, ReportRejected, run_import, target_for
from pmap.findings.jobs import JobCancelled
from pmap.findings.models import Finding
from pmap.integrations.models import Integration
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, sarif_report, upload, wait_job

ITEMS = [{"plugin": n, "host": f"10.0.{n // 50}.{n % 50}", "severity": n % 5, "cve": f"CVE-2024-{1000 + n}",
          "cvss": (n % 100) / 10, "description": "caf\u00e9 \u2603 " * (n % 7)} for n in range(2400)]
# a repeat, and a finding the threshold drops, so every counter moves
ITEMS.append(dict(ITEMS[3]))
ITEMS.append({"plugin": 99999, "host": "10.9.9.9", "severity": 0})
VOLATILE = {"id", "first_import_id", "last_import_id", "integration_id", "created_at", "updated_at", "first_seen",
            "last_seen"}


def _overlap(monkeypatch: pytest.MonkeyPatch, flag: str | None) -> None:
    """PMAP_IMPORT_OVERLAP as ``flag`` (None: unset), read afresh; the settings are read afresh after the test too."""
    if flag is None:
        monkeypatch.delenv("PMAP_IMPORT_OVERLAP", raising=False)
    else:
        monkeypatch.setenv("PMAP_IMPORT_OVERLAP", flag)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _settings_read_afresh() -> Iterator[None]:
    yield
    get_settings.cache_clear()


@pytest.fixture
def child_always(monkeypatch: pytest.MonkeyPatch) -> None:
    _overlap(monkeypatch, "1")
    monkeypatch.setattr(overlap, "OVERLAP_MIN_BYTES", 0)


def _rules(api: Api, h: dict[str, str]) -> None:
    for body in ({"name": "crit", "condition": 'cve_ids.exists(c, c.endsWith("7"))', "action": "set_severity",
                  "value": "critical"},
                 {"name": "hush", "condition": 'host.startsWith("10.0.3.")', "action": "suppress"},
                 {"name": "tag", "condition": "port == 443", "action": "tag", "value": "web"},
                 {"name": "undef", "condition": "cvss_score > 5.0", "action": "tag", "value": "hi"}):
        assert api.client.post("/api/v1/rules", json=body, headers=h).status_code == 201


def _stored(api: Api, h: dict[str, str], iid: str) -> list[dict[str, Any]]:
    rows = [{k: v for k, v in f.items() if k not in VOLATILE} for f in findings(api, h, integration_id=iid)]
    return sorted(rows, key=lambda f: f["fingerprint"])


def _import(api: Api, h: dict[str, str], iid: str, content: bytes, filename: str = "scan.nessus") -> dict[str, Any]:
    r = upload(api, iid, content, h, filename=filename)
    assert r.status_code in (200, 201), r.text
    summary = dict(r.json()["summary"] if "summary" in r.json() else r.json())
    for key in ("import_id",):
        summary.pop(key, None)
    return summary


@pytest.mark.parametrize("report,filename,vendor", [(nessus_report(ITEMS), "scan.nessus", "tenable_vm"),
                                                    (sarif_report([{"rule": f"r{n}", "line": n} for n in range(900)]),
                                                     "scan.sarif", "sarif")], ids=["nessus", "sarif"])
def test_the_parsing_process_imports_what_one_process_does(api: Api, admin: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch, report: bytes,
                                                           filename: str, vendor: str) -> None:
    _rules(api, admin)
    one, two = (create_integration(api, admin, vendor=vendor, severity_threshold="low") for _ in range(2))
    _overlap(monkeypatch, "0")
    alone = [_import(api, admin, one, report, filename), _import(api, admin, one, report, filename)]
    _overlap(monkeypatch, "1")
    monkeypatch.setattr(overlap, "OVERLAP_MIN_BYTES", 0)
    split = [_import(api, admin, two, report, filename), _import(api, admin, two, report, filename)]
    assert alone == split  # counts, warnings, undefined rules and skipped entries alike, first import and re-import
    assert split[0]["created"] > 0 and split[1]["updated"] == split[0]["created"]
    assert _stored(api, admin, one) == _stored(api, admin, two)


def _target(api: Api, iid: str) -> Any:
    with api.state.sessions() as s:
        return target_for(s.get(Integration, uuid.UUID(iid)))


def _count(api: Api) -> int:
    with api.state.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Finding)) or 0)


@pytest.mark.usefixtures("child_always")
def test_a_refusal_in_the_parsing_process_is_the_same_refusal(api: Api, admin: dict[str, str], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    iid = create_integration(api, admin)
    truncated = nessus_report(ITEMS)[:-4000]
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            b"<NessusClientData_v2><Report><ReportHost name='a'>&lol2;</ReportHost></Report></NessusClientData_v2>")
    for content, kind in ((truncated, ReportRejected), (bomb, ReportRefused)):
        messages = []
        for flag in ("0", "1"):
            _overlap(monkeypatch, flag)
            path = tmp_path / "scan.nessus"
            path.write_bytes(content)
            with pytest.raises(ReportRejected) as err:
                run_import(api.state.engine, _target(api, iid), path, ImportOptions(filename="scan.nessus"))
            assert type(err.value) is kind
            messages.append((str(err.value), err.value.details))
        assert messages[0] == messages[1]
    assert _count(api) == 0


@pytest.mark.usefixtures("child_always")
def test_a_cancelled_import_in_the_parsing_process_keeps_nothing(api: Api, admin: dict[str, str],
                                                                  tmp_path: Path) -> None:
    iid = create_integration(api, admin)
    path = tmp_path / "scan.nessus"
    path.write_bytes(nessus_report(ITEMS))
    seen: list[dict[str, Any]] = []

    def progress(p: dict[str, Any]) -> None:
        seen.append(p)
        if p["findings"] >= 2000:
            raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        run_import(api.state.engine, _target(api, iid), path, ImportOptions(), progress, batch_size=500)
    assert [p["findings"] for p in seen] == [1000, 2000] and 0 < seen[0]["bytes_read"] <= seen[1]["bytes_read"]
    assert _count(api) == 0
    summary = run_import(api.state.engine, _target(api, iid), path, ImportOptions(), batch_size=500)
    assert summary.created == _count(api) > 0


@pytest.mark.usefixtures("child_always")
def test_a_queued_import_starts_its_parsing_process_early_and_uses_it(make_api: Any, monkeypatch: pytest.MonkeyPatch
                                                                       ) -> None:
    api = make_api(import_background_bytes=0)
    h = api.token(role="operator")
    iid = create_integration(api, h)
    started: list[overlap.ParsingProcess] = []
    original = overlap.ParsingProcess.__init__

    def counting(self: overlap.ParsingProcess) -> None:
        original(self)
        started.append(self)

    monkeypatch.setattr(overlap.ParsingProcess, "__init__", counting)
    r = upload(api, iid, nessus_report(ITEMS), h, filename="scan.nessus")
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["job"]["id"], h)
    assert job["status"] == "succeeded" and job["result"]["created"] == len(ITEMS) - 1, job
    expected = 1 if api.state.engine.dialect.name == "postgresql" else 0
    assert len(started) == expected and not any(p.running() for p in started)


def test_one_process_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    _overlap(monkeypatch, None)
    big = overlap.OVERLAP_MIN_BYTES
    assert not overlap.wanted("postgresql", Path("r"), big)
    _overlap(monkeypatch, "1")
    assert overlap.wanted("postgresql", Path("r"), big)
    assert not overlap.wanted("postgresql", Path("r"), big - 1) and not overlap.wanted("sqlite", Path("r"), big)
    assert not overlap.wanted("postgresql", None, big)
