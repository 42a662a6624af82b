"""Units of the pipeline: severity stages, row caps and cleaning, the background writer, the schema."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from pmap.core.db import Base
from pmap.findings.batching import BackgroundWriter
from pmap.findings.formats.base import ParsedFinding, ReportFormat, Severity, SeverityResult, cvss_band, map_by_table
from pmap.findings.rows import (
    DESCRIPTION_MAX,
    EXTRA_MAX_BYTES,
    ROW_COLUMNS,
    RowBuilder,
    Stream,
    TimeOrderedIds,
    clean_text,
    dump_json,
)
from pmap.findings.rules_engine import RuleSet, RuleSpec, compile_rule
from pmap.findings.severity import Decision, SeverityPipeline

TABLE = {"1": Severity.LOW, "2": Severity.MEDIUM, "3": Severity.HIGH, "4": Severity.CRITICAL, "0": Severity.INFO}


BY_TABLE = map_by_table(TABLE)


def _format(mapper=BY_TABLE) -> ReportFormat:
    return ReportFormat(key="t", title="t", detect=lambda h, n: False, read=lambda r: iter(()), map_severity=mapper)


def _stages(pipe: SeverityPipeline, finding: ParsedFinding) -> tuple[str, str, bool]:
    mapped, source = pipe.normalize(finding)
    return mapped, source, pipe.passes_threshold(mapped)


def test_threshold_ranks_known_severities_and_always_keeps_unknown() -> None:
    pipe = SeverityPipeline(_format(), "high", None, vendor="v", integration_id="i")
    assert _stages(pipe, ParsedFinding("a", vendor_severity="2")) == ("medium", "vendor", False)
    assert _stages(pipe, ParsedFinding("a", vendor_severity="3")) == ("high", "vendor", True)
    assert _stages(pipe, ParsedFinding("a", vendor_severity="?", cvss_score=9.1)) == ("critical", "cvss", True)
    assert _stages(pipe, ParsedFinding("a", vendor_severity="?")) == ("unknown", "unmapped", True)
    keep_all = SeverityPipeline(_format(), "unknown", None, vendor="v", integration_id="i")
    assert _stages(keep_all, ParsedFinding("a", vendor_severity="0"))[2] is True
    with pytest.raises(ValueError):
        SeverityPipeline(_format(), "severe", None, vendor="v", integration_id="i")


def test_cvss_bands_are_the_specification_bands_at_every_edge() -> None:
    bands = {0.0: "info", 0.1: "low", 3.9: "low", 4.0: "medium", 6.9: "medium", 7.0: "high", 8.9: "high",
             9.0: "critical", 10.0: "critical"}
    assert {score: cvss_band(score).value for score in bands} == bands  # type: ignore[union-attr]
    assert cvss_band(None) is None and cvss_band(-0.1) is None and cvss_band(10.1) is None


def test_a_failing_mapper_yields_unknown_not_info() -> None:
    def broken(_f: ParsedFinding) -> SeverityResult:
        raise KeyError("bug")

    pipe = SeverityPipeline(_format(broken), "info", None, vendor="v", integration_id="i")
    assert _stages(pipe, ParsedFinding("a", vendor_severity="3")) == ("unknown", "unmapped", True)


def test_rules_see_the_normalized_severity_and_record_the_rule() -> None:
    rules = RuleSet([compile_rule(RuleSpec("r1", "n", 'severity == "medium" && vendor == "v"', "set_severity", "high",
                                           0)),
                     compile_rule(RuleSpec("r2", "n", 'format == "t" && port == 22', "suppress", None, 1))])
    pipe = SeverityPipeline(_format(), "info", rules, vendor="v", integration_id="i")
    finding = ParsedFinding("a", vendor_severity="2", port=22)
    mapped, source = pipe.normalize(finding)
    decision = pipe.decide(finding, mapped, source)
    assert decision == Decision("medium", "high", "rule", "r1", "r2", [])
    plain = pipe.decide(ParsedFinding("b", vendor_severity="1"), "low", "vendor")
    assert plain == Decision("low", "low", "vendor", None, None, [])


def _stream() -> Stream:
    return Stream(uuid.uuid4(), uuid.uuid4(), "t", "default", uuid.uuid4(), dt.datetime.now(dt.UTC))


def test_rows_are_capped_and_cleaned_for_postgresql() -> None:
    finding = ParsedFinding(
        title="t\x00itle" + "x" * 600, description="d" * (DESCRIPTION_MAX + 500), host="h\ud800st",
        cve_ids=["CVE-2020-1"] * 300, references=["https://a.example/" + "r" * 3000] * 80,
        extra={"plugin_output": "o" * 20_000, "nul": "a\x00b", "n": 1}, cwe_ids=[79, "x", True],  # type: ignore[list-item]
        first_seen=dt.datetime(2024, 1, 2, 3, 4, 5),
    )
    row = RowBuilder.as_dict(RowBuilder(_stream())("f" * 64, finding, Decision("low", "low", "vendor", None, None, [])))
    assert row["title"].startswith("titlex") and len(row["title"]) <= 500 and "\x00" not in row["title"]
    assert len(row["description"]) == DESCRIPTION_MAX
    assert row["host"] == "h?st"  # a lone surrogate cannot be stored as UTF-8
    assert len(orjson.loads(row["cve_ids"])) == 200 and orjson.loads(row["cwe_ids"]) == [79]
    refs = orjson.loads(row["references"])
    assert len(refs) == 50 and all(len(r) == 2048 for r in refs)
    assert len(row["extra"]) <= EXTRA_MAX_BYTES
    extra = orjson.loads(row["extra"])
    assert extra["n"] == 1 and extra["plugin_output"].endswith("[truncated]") and "\\u0000" not in row["extra"]
    assert row["first_seen"] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert row["status"] == "open" and row["severity_rule_id"] is None


def test_a_first_sighting_is_never_after_the_last() -> None:
    stream, decision = _stream(), Decision("low", "low", "vendor", None, None, [])
    build = RowBuilder(stream)
    utc = dt.UTC
    scan_end = dt.datetime(2013, 6, 25, 10, 39, 42, tzinfo=utc)
    dated_scan = RowBuilder.as_dict(build("a" * 64, ParsedFinding("t", last_seen=scan_end), decision))
    assert dated_scan["first_seen"] == dated_scan["last_seen"] == scan_end  # not the import's time, years later
    undated = RowBuilder.as_dict(build("b" * 64, ParsedFinding("t"), decision))
    assert undated["first_seen"] == undated["last_seen"] == stream.now
    future = RowBuilder.as_dict(build("c" * 64, ParsedFinding("t", first_seen=dt.datetime(2999, 1, 1, tzinfo=utc),
                                                                last_seen=scan_end), decision))
    assert future["first_seen"] == future["last_seen"] == scan_end
    both = RowBuilder.as_dict(build("d" * 64,
                                    ParsedFinding("t", first_seen=dt.datetime(2010, 1, 1), last_seen=scan_end),
                                    decision))
    assert both["first_seen"] == dt.datetime(2010, 1, 1, tzinfo=utc) and both["last_seen"] == scan_end


def test_text_helpers() -> None:
    assert clean_text(None, 5) is None and clean_text("", 5) is None and clean_text("abcdefg", 3) == "abc"
    assert clean_text("\x00\x00", 5) is None
    assert orjson.loads(dump_json({"a": "x\x00y", "b": dt.date(2024, 1, 1)})) == {"a": "xy", "b": "2024-01-01"}
    binary = RowBuilder.as_dict(RowBuilder(_stream(), binary=True)(
        "f" * 64, ParsedFinding("t", cve_ids=["CVE-1"]), Decision("low", "low", "vendor", None, None, [])))
    assert binary["cve_ids"] == b'\x01["CVE-1"]' and binary["tags"] == b"\x01[]"  # JSONB's binary wire format


def test_row_ids_are_uuid7_increasing_within_an_import_and_distinct_across_imports() -> None:
    first, second = TimeOrderedIds(), TimeOrderedIds()
    ids = [first.next_uuid() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    ms = int.from_bytes(ids[0].bytes[:6], "big")
    assert abs(ms - dt.datetime.now(dt.UTC).timestamp() * 1000) < 60_000  # the time prefix is now
    assert not set(ids) & {second.next_uuid() for _ in range(1000)}
    assert uuid.UUID(bytes=first.next_bytes()) > ids[-1]  # the binary form continues the same sequence


def test_binary_rows_carry_wire_formats_for_postgresql() -> None:
    stream = _stream()
    finding = ParsedFinding("t", port=443, line=7, cve_ids=["CVE-2024-1"])
    decision = Decision("low", "low", "rule", str(stream.import_id), None, [])
    row = RowBuilder(stream, binary=True)("f" * 64, finding, decision)
    values = RowBuilder.as_dict(row)
    assert list(values) == list(ROW_COLUMNS) and len(row) == len(ROW_COLUMNS)
    assert values["port"] == (443).to_bytes(4, "big") and values["line"] == (7).to_bytes(4, "big")  # int4_recv
    assert values["organization_id"] == stream.organization_id.bytes and len(values["id"]) == 16  # uuid_recv
    assert values["severity_rule_id"] == stream.import_id.bytes
    plain = RowBuilder.as_dict(RowBuilder(stream)("f" * 64, finding, Decision("low", "low", "vendor", None, None, [])))
    assert plain["port"] == 443 and plain["organization_id"] == stream.organization_id and plain["id"].version == 7


def test_background_writer_keeps_order_and_surfaces_errors() -> None:
    seen: list[int] = []
    with BackgroundWriter() as bg:
        for i in range(20):
            bg.submit(seen.append, i)
    assert seen == list(range(20))

    def fail(_x: int) -> None:
        raise RuntimeError("database gone")

    bg = BackgroundWriter(depth=1)
    bg.submit(fail, 1)
    with pytest.raises(RuntimeError, match="database gone"):
        for i in range(10):  # the producer learns of the failure instead of blocking forever
            bg.submit(seen.append, i)
    with pytest.raises(RuntimeError):
        bg.close()


def test_producer_error_stops_the_writer_before_returning() -> None:
    gate, ran = threading.Event(), []

    def first() -> None:
        gate.wait()
        ran.append("first")

    with pytest.raises(ValueError), BackgroundWriter(depth=1) as bg:
        bg.submit(first)
        bg.submit(ran.append, "skipped")
        gate.set()
        raise ValueError("parser failed")
    assert "skipped" not in ran  # queued work is dropped; the writer has stopped when the block exits


def test_migration_matches_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    mine = {"findings", "imports", "jobs", "rules"}

    def touches(d: object) -> bool:
        text = repr(d)
        return any(f"'{t}'" in text or f"name='{t}'" in text for t in mine) or "severity_threshold" in text

    assert [d for d in diff if touches(d)] == []
