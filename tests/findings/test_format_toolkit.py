"""The format toolkit's documented behaviours: one test per promise in a converter's or reader's docstring.

Where the two helper families the toolkit replaced disagreed, the test names the case and the
choice (no data lost, none invented).
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import Report, ReportError, ReportFormat, Severity, SeverityResult
from pmap.findings.formats.convert import (
    as_dict,
    as_list,
    as_str,
    clean,
    compact,
    cvss_score,
    epoch_dt,
    evidence,
    only_list,
    parse_dt,
    port_of,
    probability,
    text,
    to_float,
    to_int,
    uniq,
)
from pmap.findings.formats.errors import HostileReportError
from pmap.findings.formats.identifiers import cve_ids, cvss_version, cwe_ids, cwes_in_text, ghsa_ids
from pmap.findings.formats.readers import rewindable
from pmap.findings.formats.xml_reader import iter_xml


class OneWay(io.RawIOBase):
    """A non-seekable upload body."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        chunk = self._data.read(min(len(buf), 7))
        buf[: len(chunk)] = chunk
        return len(chunk)


# --- text -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("  \t\n", None), ("  a b  ", "a b"), (7, "7"), (7.5, "7.5"),
    # the families disagreed on bools (one said None, losing the value; one "True", Python's spelling)
    (True, "true"), (False, "false"),
    # and on containers (one said None, one wrote the Python repr: invented formatting)
    ([1, 2], None), ({"a": 1}, None), (("a",), None),
    ("-", "-"), ("N/A", "N/A"),  # placeholders are data to text(); clean() drops them
])
def test_text(value: Any, expected: str | None) -> None:
    assert text(value) == expected


def test_text_limit_cuts() -> None:
    assert text("abcdef", 3) == "abc" and text("abc", None) == "abc"


@pytest.mark.parametrize("value", ["-", "'-", "N/A", "n/a", " N/A ", None, "", "  "])
def test_clean_drops_placeholders(value: Any) -> None:
    assert clean(value) is None


def test_clean_keeps_everything_else() -> None:
    assert clean(" 0 ") == "0" and clean("--") == "--" and clean(False) == "false"


def test_as_str_joins_lists() -> None:
    assert as_str(["a", None, 2]) == "a, 2" and as_str([]) is None and as_str({"a": 1}) is None


def test_evidence_is_cut_and_marked() -> None:
    out = evidence("x" * 5000)
    assert out is not None and out.startswith("x" * 4000) and out.endswith("…[truncated]") and len(out) < 4100
    assert evidence("short") == "short" and evidence("N/A") is None


# --- numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (True, None), (False, None), ("", None), ("   ", None),
    (3, 3.0), (7.5, 7.5), (" 7.5 ", 7.5), ("-1", -1.0), (".5", 0.5), ("1e3", 1000.0), ("+2", 2.0),
    # NaN and infinities are not numbers (one family passed float NaN through)
    (math.nan, None), (math.inf, None), (-math.inf, None), ("nan", None), ("inf", None), ("1e999", None),
    # a leading number with its annotation (the VM family's reading, kept)
    ("6.5 (AV:N/AC:L)", 6.5), ("7.5/10", 7.5), ("9 (high)", 9.0),
    # the VM family read "7,5" as 7.0 (invented) and "-1" as None (lost the sign): commas are refused
    ("7,5", None), ("1,000", None), ("1_000", None), ("7.5abc", None), ("abc", None), ("CVSS 7.5", None),
    (Decimal("2.5"), None), ([1], None), ({"a": 1}, None),
])
def test_to_float(value: Any, expected: float | None) -> None:
    assert to_float(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (True, None), (False, None), ("", None), ("  ", None),
    (42, 42), (-1, -1), (" 42 ", 42), ("-1", -1), ("+7", 7),
    # integral floats and float strings: the SAST family refused "42.0" (lost); the VM family read it
    (3.0, 3), ("42.0", 42), ("1e3", 1000),
    # fractions are never rounded or truncated (invented)
    (3.5, None), ("3.5", None), ("0.1", None),
    (math.nan, None), (math.inf, None), ("nan", None), ("inf", None),
    ("1,000", None), ("1_000", None), ("12a", None), ("٣", None), ([1], None),
])
def test_to_int(value: Any, expected: int | None) -> None:
    assert to_int(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("443", 443), (1, 1), (65535, 65535), (0, None), (65536, None), (-1, None), ("http", None), ("80.0", 80),
])
def test_port_of(value: Any, expected: int | None) -> None:
    assert port_of(value) == expected


def test_cvss_score_and_probability_bound_their_range() -> None:
    assert cvss_score("9.8") == 9.8 and cvss_score(0) == 0.0 and cvss_score(10) == 10.0
    assert cvss_score("75") is None and cvss_score(-0.1) is None and cvss_score("n/a") is None
    assert probability("0.97") == 0.97 and probability(1.5) is None and probability(-0.1) is None


# --- dates ------------------------------------------------------------------------------------

_T = datetime(2024, 3, 1, 12, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("  ", None), ("-", None), ("N/A", None), (True, None), ("garbage", None),
    ("2024-03-01T12:30:15Z", _T), ("2024-03-01T12:30:15z", _T), ("2024-03-01T12:30:15+00:00", _T),
    ("2024-03-01 12:30:15", _T),  # no zone: UTC
    ("2024-03-01T14:30:15+02:00", _T.astimezone(timezone(timedelta(hours=2)))),
    ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),  # a date alone is midnight UTC
    ("2024-03-01T12:30:15.123456789Z", _T.replace(microsecond=123456)),  # nanoseconds: kept to microseconds
    # numbers are epoch times (the SAST family's reading; the VM family said None)
    (1709296215, _T), (1709296215.0, _T), (1709296215000, _T),  # seconds, or milliseconds above 10^11
    # a numeric string is not an epoch time here ("20240301" is a compact ISO date)
    ("1709296215", None), ("20240301", datetime(2024, 3, 1, tzinfo=UTC)),
    # epoch 0 means "not set" (the SAST family said 1970-01-01: invented)
    (0, None), (-5, None), (math.nan, None), (1e20, None),
])
def test_parse_dt(value: Any, expected: datetime | None) -> None:
    got = parse_dt(value)
    assert got == expected
    assert got is None or got.tzinfo is not None


def test_parse_dt_strptime_formats_and_zone() -> None:
    assert parse_dt("Fri Mar  1 12:30:15 2024", "%a %b %d %H:%M:%S %Y") == _T
    assert parse_dt("Fri Mar  1 12:30:15 2024") is None  # only with the format given


@pytest.mark.parametrize(("value", "expected"), [
    ("1709296215", _T), (1709296215, _T), ("1709296215000", _T), (" 1709296215 ", _T),
    (0, None), ("0", None), (-1, None), ("", None), (None, None), (True, None), ("6.5 (x)", None), ("1e30", None),
])
def test_epoch_dt(value: Any, expected: datetime | None) -> None:
    assert epoch_dt(value) == expected


# --- containers -------------------------------------------------------------------------------

def test_containers() -> None:
    assert as_list(None) == [] and as_list([1]) == [1] and as_list("a") == ["a"] and as_list({"a": 1}) == [{"a": 1}]
    assert only_list(None) == [] and only_list("a") == [] and only_list([1]) == [1]
    assert as_dict(None) == {} and as_dict("") == {} and as_dict([1]) == {} and as_dict({"a": 1}) == {"a": 1}
    assert uniq(["b", None, "a", "", "b"]) == ["b", "a"]
    everything: dict[str, Any] = {"a": None, "b": "", "c": [], "d": {}, "e": 0, "f": False, "g": "x"}
    assert compact(everything) == {"e": 0, "f": False, "g": "x"}


# --- identifiers ------------------------------------------------------------------------------

def test_cve_ids() -> None:
    assert cve_ids("see cve-2021-44228 and CVE-2021-44228", ["CVE-2022-1", ["CVE-2014-0160"]], ("CVE-2020-0001",),
                   None, 7) == ["CVE-2021-44228", "CVE-2014-0160", "CVE-2020-0001"]


def test_ghsa_ids() -> None:
    assert ghsa_ids("https://github.com/advisories/GHSA-JFH8-C2JP-5V3Q x") == ["GHSA-jfh8-c2jp-5v3q"]


@pytest.mark.parametrize(("values", "expected"), [
    ((79,), [79]), ((79.0,), [79]), ((True,), []), ((None,), []), ((0, -3), []),
    (("CWE-79",), [79]), (("cwe 79",), [79]), (("CWE:79",), [79]), (("CWE# 79",), [79]),
    (("79",), [79]), (("79: Improper Neutralization",), [79]),
    # the SAST family kept only the first of these (lost data); every mention counts
    (("XSS (CWE-79), CWE-80",), [79, 80]), (("CWE-79, CWE-89",), [79, 89]), (("79, 89",), [79, 89]),
    (("7.5",), []), (("1,5a",), []), (("no cwe here",), []),
    ((["CWE-79", ["CWE-89"]], ("CWE-20",)), [79, 89, 20]), (("CWE-79", 79),  [79]),
])
def test_cwe_ids(values: tuple[Any, ...], expected: list[int]) -> None:
    assert cwe_ids(*values) == expected


def test_cwes_in_text_needs_the_prefix() -> None:
    assert cwes_in_text("fixed in 2 releases; see CWE-79 and cwe-89") == [79, 89]
    assert cwes_in_text("79") == []


@pytest.mark.parametrize(("vector", "expected"), [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.1"), ("(CVSS:4.0/AV:N)", "4.0"),
    ("AV:N/AC:L/Au:N/C:P/I:P/A:P", "2.0"),
    # Nessus writes v2 vectors as "CVSS2#AV:N/...": the SAST family said None (lost)
    ("CVSS2#AV:N/AC:L/Au:N/C:N/I:N/A:P", "2.0"),
    ("AV:N/AC:L", None), ("", None), (None, None),
])
def test_cvss_version(vector: str | None, expected: str | None) -> None:
    assert cvss_version(vector) == expected


# --- readers ----------------------------------------------------------------------------------

def test_rewindable_returns_a_seekable_stream_itself_and_copies_a_one_way_one() -> None:
    seekable = io.BytesIO(b"abc")
    assert rewindable(seekable) is seekable
    copy = rewindable(OneWay(b"x" * 100))  # type: ignore[arg-type]
    assert copy.read() == b"x" * 100 and copy.seek(0) == 0 and copy.read(3) == b"xxx"
    copy.close()


def test_load_json_refuses_empty_and_trailing_documents() -> None:
    # the two families disagreed: one ignored what followed the document (silently dropped data)
    assert json_reader.load_json(io.BytesIO(b'{"a": 1}'), "t") == {"a": 1}
    with pytest.raises(ReportError, match="empty file"):
        json_reader.load_json(io.BytesIO(b""), "t")
    with pytest.raises(ReportError, match="trailing garbage"):
        json_reader.load_json(io.BytesIO(b'{"a": 1}{"b": 2}'), "t")


def test_json_lines_keep_the_error_class_and_name_the_line() -> None:
    lines = io.BytesIO(b'{"a": 1}\n\n' + b"[" * 300 + b"]" * 300 + b"\n")
    with pytest.raises(HostileReportError) as err:
        list(json_reader.iter_json_lines(lines, "t"))
    assert err.value.location == "line 3"


def _xml_error(data: bytes) -> ReportError:
    with pytest.raises(ReportError) as err:
        list(iter_xml(io.BytesIO(data), "t"))
    return err.value


def test_a_truncated_xml_error_names_its_line_once() -> None:
    err = _xml_error(b'<?xml version="1.0"?>\n<a>\n<b>x</b>\n<c>\n<d>')
    assert err.location == "line 5, column 4"
    assert str(err).count("line 5") == 1, str(err)
    assert str(err) == "t: malformed or truncated XML: Premature end of data in tag d (at line 5, column 4)"


def test_an_xml_error_names_another_line_only_as_where_a_tag_opened() -> None:
    err = _xml_error(b"<a>\n<b>x</b>\n\n\n")
    assert err.location == "line 5, column 1" and str(err).count("line 5") == 1
    assert "tag a (opened on line 1)" in err.message


def test_an_empty_xml_file_is_a_report_error_at_line_1() -> None:
    assert _xml_error(b"  \n").location == "line 1"


def test_an_undefined_entity_behind_a_harmless_doctype_is_refused_where_it_is() -> None:
    # an element-only DOCTYPE is read past; the entity it does not define is not silently dropped,
    # and the error says where it is (lxml's own message was a bare "no element found")
    data = b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ELEMENT r ANY>]>\n<r>\n<a>&xxe;</a></r>\n'
    err = _xml_error(data)
    assert isinstance(err, HostileReportError) and err.location == "line 4, column 9"


# --- the base class's preamble ----------------------------------------------------------------

def _fmt(**kw: Any) -> ReportFormat:
    def read(report: Report) -> Any:
        yield report

    return ReportFormat(key="t", title="T", detect=lambda h, n: False, read=read,
                        map_severity=lambda f: SeverityResult(Severity.UNKNOWN, "unmapped"), what="a T report", **kw)


def test_the_preamble_gives_the_parser_a_seekable_report_with_its_head() -> None:
    data = b'{"a": [1, 2]}'
    seen: list[tuple[bytes, str, bytes, bytes]] = []

    def read(report: Report) -> Any:
        seen.append((report.head, report.json.root, report.stream.read(), report.rewind().read(2)))
        yield from ()

    fmt = ReportFormat(key="t", title="T", detect=lambda h, n: False, read=read, syntax="json",
                       map_severity=lambda f: SeverityResult(Severity.UNKNOWN, "unmapped"))
    assert list(fmt.parse(OneWay(data))) == []  # type: ignore[arg-type]
    assert seen == [(data, "object", data, b'{"')]


@pytest.mark.parametrize(("kw", "data", "message"), [
    ({"syntax": "json"}, b"", "empty file: no JSON document"),
    ({"syntax": "json"}, b"\xef\xbb\xbf \n", "empty file: no JSON document"),
    ({"syntax": "json"}, b"hello", "not a T report: the file is not JSON"),
    ({"syntax": "json", "json_root": "object"}, b"[1]", "not a T report: the file is not a JSON object"),
    ({"syntax": "json", "json_root": "array"}, b"{}", "not a T report: the file is not a JSON array"),
    ({"syntax": "json", "json_root": "array"}, b"null", "not a T report: the file is not JSON"),
    ({"syntax": "json"}, b"null", "not a T report: the file is not JSON"),  # a null report only where declared
    ({"syntax": "json"}, b"7", "not a T report: the file is not JSON"),
    ({"syntax": "xml"}, b" ", "empty file"),
    ({"syntax": "xml", "xml_roots": ("r",)}, b"<x/>", "not a T report: root element is <x>"),
])
def test_the_preamble_refuses_empty_and_foreign_files(kw: dict[str, Any], data: bytes, message: str) -> None:
    with pytest.raises(ReportError) as err:
        list(_fmt(**kw).parse(io.BytesIO(data)))
    assert err.value.message == message and err.value.format_key == "t"


def test_null_is_an_empty_report_where_declared() -> None:
    assert list(_fmt(syntax="json", null_is_empty=True).parse(io.BytesIO(b" null \n"))) == []
