"""A bug inside a parser (an exception that is not its deliberate ``ReportError``) is logged with its
traceback and counted, and the uploader still gets a clear 4xx naming the format."""

from __future__ import annotations

import gc
import io
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from pmap.findings.formats import registry
from pmap.findings.formats.base import (
    ParsedFinding,
    ParserFault,
    Report,
    ReportFormat,
    Severity,
    SeverityResult,
    parser_faults,
)
from pmap.findings.formats.vm_dast import nessus
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, nessus_report, upload
from tests.observability.conftest import value

pytestmark = pytest.mark.parser_fault


def _faulty(key: str, exc: Exception) -> ReportFormat:
    def read(report: Report) -> Iterator[ParsedFinding]:
        yield ParsedFinding(title="first")
        raise exc

    return ReportFormat(key=key, title=key, detect=lambda h, n: True, read=read,
                        map_severity=lambda f: SeverityResult(Severity.UNKNOWN, "unmapped"))


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pmap.findings.formats" and r.levelno == logging.ERROR]


def test_a_parser_bug_is_a_parser_fault_logged_with_its_traceback_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    fmt = _faulty("fault_unit", TypeError("'NoneType' object is not subscriptable"))
    before = parser_faults().get("fault_unit", 0)
    with caplog.at_level(logging.ERROR, logger="pmap.findings.formats"), pytest.raises(ParserFault) as err:
        list(fmt.parse(io.BytesIO(b"{}")))
    assert err.value.format_key == "fault_unit" and "parser fault is logged" in err.value.message
    assert isinstance(err.value.__cause__, TypeError)
    assert parser_faults()["fault_unit"] == before + 1
    (record,) = _errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is TypeError and "fault_unit" in record.getMessage()


@pytest.mark.parametrize("exc", [RecursionError(), MemoryError(), OSError("disk")])
def test_absurd_nesting_and_machine_faults_are_not_parser_faults(exc: Exception) -> None:
    fmt = _faulty("fault_passthrough", exc)
    with pytest.raises(type(exc)):
        list(fmt.parse(io.BytesIO(b"{}")))
    assert "fault_passthrough" not in parser_faults()


def test_a_detector_bug_is_counted_and_logged_and_detection_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    def broken(head: bytes, filename: str | None) -> bool:
        raise KeyError("root")

    formats = registry.report_formats()
    faulty = ReportFormat(key="fault_detect", title="t", detect=broken, read=lambda r: iter(()),
                          map_severity=lambda f: SeverityResult(Severity.UNKNOWN, "unmapped"))
    monkeypatch.setattr(registry, "report_formats", lambda: {"fault_detect": faulty, **dict(formats.items())})
    before = parser_faults().get("fault_detect", 0)
    with caplog.at_level(logging.ERROR, logger="pmap.findings.formats"):
        found = registry.detect_format(nessus_report([{"plugin": 1, "severity": 2}])[:65536], "scan.nessus")
    assert found is not None and found.key == "nessus"
    assert parser_faults()["fault_detect"] == before + 1
    (record,) = _errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_an_upload_that_trips_a_parser_bug_is_a_4xx_naming_the_format(api: Api, admin: dict[str, str],
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    def boom(item: Any, host: dict[str, Any]) -> ParsedFinding:
        raise KeyError("pluginName")

    monkeypatch.setattr(nessus, "_finding", boom)
    iid = create_integration(api, admin)
    before = parser_faults().get("nessus", 0)
    counted = value(api.client.get("/metrics").text, "pmap_report_parser_faults_total", format="nessus")
    with caplog.at_level(logging.ERROR, logger="pmap.findings.formats"):
        r = upload(api, iid, nessus_report([{"plugin": 1, "severity": 2}]), admin, filename="scan.nessus")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "report_invalid" and err["format"] == "nessus"
    assert err["message"].startswith("the nessus report cannot be imported") and "KeyError" not in r.text
    assert parser_faults()["nessus"] == before + 1
    (record,) = _errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is KeyError and "nessus" in record.getMessage()
    # and the fault is a metric of its format, for an alert rather than a log search
    metrics = api.client.get("/metrics").text
    assert value(metrics, "pmap_report_parser_faults_total", format="nessus") == counted + 1


def test_a_database_error_while_streaming_is_not_a_parser_fault(api: Api, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    # seen by the fault suite: PostgreSQL restarted under an import, the bulk COPY's psycopg error (raw, not through
    # SQLAlchemy) was logged as a parser fault and answered as an unreadable report
    import psycopg

    from pmap.findings import importer, staging, storage

    def dropped(*_a: Any, **_kw: Any) -> None:
        raise psycopg.OperationalError("the connection was closed by the server")

    monkeypatch.setattr(storage.FindingWriter, "write", dropped)
    monkeypatch.setattr(staging.StagedWriter, "write", dropped)
    monkeypatch.setattr(importer, "BATCH_SIZE", 1)  # written while the report is read, as a large one is
    h = api.token()
    iid = create_integration(api, h)
    report = nessus_report([{"plugin": 1000 + i, "name": f"f{i}", "severity": 2} for i in range(20)])
    with caplog.at_level(logging.INFO):
        r = upload(api, iid, report, h)
    assert r.status_code >= 500, r.text  # the service's fault, worth a retry: never "the report could not be read"
    assert "could not be read" not in r.text
    assert not [rec for rec in caplog.records if "parser failed unexpectedly" in rec.getMessage()]


def test_each_live_apps_metrics_count_a_fault_and_a_dropped_one_is_forgotten() -> None:
    from pmap.app import new_metrics
    from pmap.findings.formats.base import _fault_listeners, count_parser_fault

    first, second = new_metrics(), new_metrics()
    count_parser_fault("sarif")
    count_parser_fault("no-such-format")  # a key this build does not know: "other"
    for text in (first.render().decode(), second.render().decode()):
        assert value(text, "pmap_report_parser_faults_total", format="sarif") == 1
        assert value(text, "pmap_report_parser_faults_total", format="other") == 1
        assert value(text, "pmap_report_parser_faults_total", format="nessus") == 0  # every format's series exists
    held = weakref.ref(second)
    del second
    gc.collect()
    assert held() is None  # the formats' listener does not keep an app's metrics alive
    count_parser_fault("sarif")  # and the listeners of metrics nobody holds any more are dropped, not called
    assert all(ref() is not None for ref in _fault_listeners)
    assert value(first.render().decode(), "pmap_report_parser_faults_total", format="sarif") == 2
