"""Hostile and broken inputs: every SAST/SCA format fails with ReportError, quickly, never a hang
or a stray KeyError/TypeError."""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path

import pytest

from pmap.findings.formats.base import HostileReportError, ReportError
from pmap.findings.formats.sast_sca import FORMATS
from tests.findings.sast_sca.sast_sca_samples import SAMPLES, XML_KEYS

BY_KEY = {f.key: f for f in FORMATS}
JSON_KEYS = sorted(k for k in BY_KEY if k not in XML_KEYS or k == "cyclonedx")

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<ROOT>&lol9;</ROOT>
"""
XXE = {
    "checkmarx_xml": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                     b'<CxXMLResults><Query id="1" name="Q"><Result FileName="&x;"/></Query></CxXMLResults>',
    "veracode_xml": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                    b'<detailedreport><flaw categoryname="&x;"/></detailedreport>',
    "dependency_check_xml": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                            b'<analysis><dependency><fileName>&x;</fileName></dependency></analysis>',
    "cyclonedx": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                 b'<bom xmlns="http://cyclonedx.org/schema/bom/1.4"><components/></bom>',
}


def _parse(key: str, data: bytes) -> list:
    return list(BY_KEY[key].parse(io.BytesIO(data)))


@pytest.mark.parametrize("key", XML_KEYS)
def test_billion_laughs_is_refused(key: str) -> None:
    with pytest.raises(HostileReportError):
        _parse(key, BILLION_LAUGHS)


@pytest.mark.parametrize("key", XML_KEYS)
def test_external_entity_is_refused(key: str) -> None:
    with pytest.raises(HostileReportError):
        _parse(key, XXE[key])


@pytest.mark.parametrize("key", XML_KEYS)
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_entities_in_a_utf16_or_utf32_document_are_refused(key: str, codec: str) -> None:
    """UTF-16/32 is read from the first bytes: ``<!ENTITY`` is not those bytes there."""
    with pytest.raises(ReportError):
        _parse(key, BILLION_LAUGHS.replace(b"<ROOT>&lol9;</ROOT>", b'<ROOT a="&lol3;"/>').decode().encode(codec))
    with pytest.raises(ReportError):
        _parse(key, XXE[key].decode().encode(codec))


@pytest.mark.parametrize("key", XML_KEYS)
def test_a_doctype_behind_a_prolog_longer_than_the_checked_head_is_refused(key: str) -> None:
    filler = b"<!--" + b"x" * 70_000 + b"-->\n"
    with pytest.raises(HostileReportError):
        _parse(key, XXE[key].replace(b"<!DOCTYPE", filler + b"<!DOCTYPE", 1))


@pytest.mark.parametrize("key", [k for k in XML_KEYS if SAMPLES[k][1].startswith(b"<")])  # cyclonedx's sample is JSON
def test_a_dtd_named_by_the_report_is_never_loaded(key: str, tmp_path: Path) -> None:
    dtd = tmp_path / "report.dtd"
    dtd.write_text("<!ELEMENT broken")  # loaded, this DTD would fail the parse
    data = SAMPLES[key][1]
    decl_end = data.index(b"?>") + 2 if data.startswith(b"<?xml") else 0
    doctype = f'\n<!DOCTYPE r SYSTEM "{dtd.as_uri()}">\n'.encode()
    assert len(_parse(key, data[:decl_end] + doctype + data[decl_end:])) == len(_parse(key, data))


@pytest.mark.parametrize("key", JSON_KEYS)
def test_json_nested_a_million_levels(key: str) -> None:
    # nested inside the member each format streams, and bare
    for doc in (b"[" * 1_000_000 + b"]" * 1_000_000,
                b'{"results": ' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}",
                b'{"runs": [{"results": [' + b'{"a":' * 500_000 + b"1" + b"}" * 500_000 + b"]}]}"):
        with pytest.raises(ReportError):
            _parse(key, doc)


@pytest.mark.parametrize("key", sorted(BY_KEY))
def test_truncated_report(key: str) -> None:
    data = SAMPLES[key][1]
    cut = data[: len(data) // 2]
    with pytest.raises(ReportError) as err:
        _parse(key, cut)
    assert err.value.location  # the message names where it broke


@pytest.mark.parametrize("key", sorted(BY_KEY))
def test_random_binary_under_the_formats_name(key: str) -> None:
    rng = random.Random(key)
    for _ in range(5):
        blob = bytes(rng.randrange(256) for _ in range(4096))
        with pytest.raises(ReportError):
            _parse(key, blob)
        assert not BY_KEY[key].detect(blob, SAMPLES[key][0]) or key == "sonarqube_json"


@pytest.mark.parametrize("key", sorted(BY_KEY))
def test_empty_file(key: str) -> None:
    with pytest.raises(ReportError):
        _parse(key, b"")
    with pytest.raises(ReportError):
        _parse(key, b"   \n")


@pytest.mark.parametrize("key", JSON_KEYS)
@pytest.mark.parametrize("doc", [{"foo": 1}, [1, 2], "text", 3, {"results": "x", "vulnerabilities": 7}])
def test_wrong_shape_json_is_a_report_error(key: str, doc: object) -> None:
    with pytest.raises(ReportError) as err:
        _parse(key, json.dumps(doc).encode())
    assert "not a" in err.value.message or "JSON" in err.value.message


def test_sonarqube_zip_bomb_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("page.json", b'{"issues": [' + b" " * (20 << 20) + b"]}")
    with pytest.raises(ReportError, match="zip bomb"):
        _parse("sonarqube_json", buf.getvalue())


def test_sonarqube_zip_of_pages() -> None:
    page = SAMPLES["sonarqube_json"][1]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("p1.json", page)
        zf.writestr("p2.json", page.replace(b"AX1", b"AX2").replace(b'"line": 8', b'"line": 9'))
        zf.writestr("readme.txt", b"not a page")
    data = buf.getvalue()
    assert BY_KEY["sonarqube_json"].detect(data[:65536], "export.zip")
    assert [f.line for f in _parse("sonarqube_json", data)] == [8, 9]
    with pytest.raises(ReportError):
        _parse("sonarqube_json", data[: len(data) // 2])


def test_malformed_xml_names_the_line() -> None:
    data = SAMPLES["checkmarx_xml"][1].replace(b"</Query>", b"</Qery>")
    with pytest.raises(ReportError) as err:
        _parse("checkmarx_xml", data)
    assert err.value.location and err.value.location.startswith("line")


def test_xml_of_another_format_is_not_claimed_or_parsed() -> None:
    other = SAMPLES["veracode_xml"][1]
    for key in ("checkmarx_xml", "dependency_check_xml", "cyclonedx"):
        assert not BY_KEY[key].detect(other, "x.xml")
        with pytest.raises(ReportError, match="not a"):
            _parse(key, other)


def test_invalid_utf8_inside_json_strings() -> None:
    data = SAMPLES["semgrep_json"][1].replace(b"Detected", b"\xff\xfeDetected")
    with pytest.raises(ReportError):
        _parse("semgrep_json", data)


def test_detectors_never_raise_on_cut_or_odd_heads() -> None:
    heads = [b"", b"\x00", b"\xef\xbb\xbf", b"PK\x03\x04" + b"\xff" * 40, b"<", b"<?xml", b"{" * 70000, b"[" * 70000]
    for _name, data in SAMPLES.values():
        heads += [data[:n] for n in range(0, len(data), max(1, len(data) // 40))]
    for head in heads:
        for fmt in FORMATS:
            for name in (None, "", "report.json", "x.sarif"):
                fmt.detect(head, name)  # must not raise


# --- sonar-report HTML (sonarqube_html) ---------------------------------------------------------------

def _sonar_html(**swap: bytes) -> bytes:
    data = SAMPLES["sonarqube_html"][1]
    for old, new in swap.items():
        assert old.encode() in data, old
        data = data.replace(old.encode(), new)
    return data


def test_sonar_html_nested_tables_in_cells_are_not_rows() -> None:
    issue = (b"<tr><td>python:S3649</td><td>BLOCKER</td><td>src/other.py</td><td>9</td><td>n</td><td>m</td>"
             b"<td>AX9</td></tr>")
    data = _sonar_html(**{
        "<td>Fix this SQL query</td>": b"<td>Fix this SQL query<table>" + issue + b"</table></td>",
        "<table><tr><td>input</td><td>query</td></tr></table>":
            b"<table><tr><td>python:S3649</td><td>Nested, CWE-79</td></tr>" + issue + b"</table>",
    })
    [f] = _parse("sonarqube_html", data)
    assert (f.file_path, f.line, f.extra) == ("src/db.py", 8, {"key": "AX1"})
    assert f.remediation and f.remediation.startswith("User-provided data reaches a query. python:S3649 Nested")
    assert f.cwe_ids == [79, 89]  # the CWEs of the whole description, nested table included


def test_sonar_html_title_without_detail_table_is_a_report_error() -> None:
    data = SAMPLES["sonarqube_html"][1]
    cut = data[: data.index(b"<div class=detail>")] + b"</body>\n</html>\n"
    assert BY_KEY["sonarqube_html"].detect(cut, "report.html")
    with pytest.raises(ReportError, match="no table of issues"):
        _parse("sonarqube_html", cut)
    heading_only = data.replace(b"<table><thead><tr><th>Rule</th><th>Severity</th><th>Component</th>", b"<p>")
    with pytest.raises(ReportError):
        _parse("sonarqube_html", heading_only)


def test_sonar_html_detail_table_without_required_columns_names_them() -> None:
    data = _sonar_html(**{"<th>Severity</th><th>Component</th><th>Line</th>":
                          b"<th>Sev</th><th>File</th><th>Line</th>"})
    with pytest.raises(ReportError, match="no Severity, Component columns"):
        _parse("sonarqube_html", data)
    no_header = _sonar_html(**{"<thead><tr><th>Rule</th><th>Severity</th>":
                               b"<thead><tr><td>Rule</td><td>Severity</td>"})
    with pytest.raises(ReportError, match="no Rule, Severity, Component columns"):
        _parse("sonarqube_html", no_header)


def test_sonar_html_columns_are_found_by_header_not_position() -> None:
    data = _sonar_html(**{
        "<th>Rule</th><th>Severity</th><th>Component</th>": b"<th>Component</th><th>Rule</th><th>Severity</th>",
        '<td><a href="https://sonarcloud.io/coding_rules#rule_key=python:S3649">python:S3649</a></td><td>CRITICAL</td>\n'
        '<td class="component">src/db.py</td>': b'<td>src/db.py</td><td>python:S3649</td><td>CRITICAL</td>',
    })
    [f] = _parse("sonarqube_html", data)
    assert (f.rule_id, f.vendor_severity, f.file_path, f.cwe_ids) == ("python:S3649", "CRITICAL", "src/db.py", [89])


def test_sonar_html_detail_table_without_rows_is_a_clean_report() -> None:
    data = SAMPLES["sonarqube_html"][1]
    start = data.index(b'<tr><td><a href="https://sonarcloud.io/coding_rules#rule_key=python:S3649">')
    end = data.index(b"</tr>", start) + len(b"</tr>")
    assert _parse("sonarqube_html", data[:start] + data[end:]) == []


def test_sonar_html_truncated_after_a_row_is_refused() -> None:
    data = SAMPLES["sonarqube_html"][1]
    cut = data[: data.index(b"</tr>", data.index(b"AX1")) + len(b"</tr>")]
    with pytest.raises(ReportError, match="truncated") as err:
        _parse("sonarqube_html", cut)
    assert err.value.location == "end of file"


def test_sonar_html_deep_nesting_is_refused_as_hostile() -> None:
    deep = b"<div>" * 100_000 + b"x" + b"</div>" * 100_000
    with pytest.raises(HostileReportError):
        _parse("sonarqube_html", _sonar_html(**{"<h1>": deep + b"<h1>"}))


def test_sonar_html_entities_are_never_expanded() -> None:
    data = (b'<!DOCTYPE html [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>\n'
            + _sonar_html(**{"<!DOCTYPE html>\n": b"", "Fix this SQL query": b"&lol2;"}))
    try:
        found = _parse("sonarqube_html", data)
    except ReportError:
        return
    assert found and "lollol" not in repr(found)


def test_sonar_html_is_not_claimed_without_its_markers() -> None:
    fmt = BY_KEY["sonarqube_html"]
    assert not fmt.detect(b"<html><head><title>ZAP Scanning Report</title></head></html>", "report.html")
    assert not fmt.detect(b'{"title": "<title>SonarQube Vulnerability Report</title>"}', "report.html")
    assert fmt.detect(b"\xef\xbb\xbf\n" + SAMPLES["sonarqube_html"][1], None)
