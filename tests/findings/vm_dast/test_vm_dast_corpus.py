"""Corpus test: every DefectDojo sample of this package's formats, read in place.

For each expectations record: the file's format key is detected, the file parses, the number
of distinct fingerprints equals DefectDojo's count (or the documented deviation), error cases
raise ReportError, and the asserted field values hold (or the field deviation is documented).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from pmap.findings.formats.base import ParsedFinding, ReportError, ReportFormat
from pmap.findings.formats.vm_dast import FORMATS
from tests.findings.vm_dast.vmdast_corpus_support import (
    corpus_dir,
    evaluate,
    load_records,
    pmap_key,
)

CORPUS = corpus_dir()
pytestmark = pytest.mark.skipif(
    not (CORPUS / "expectations.jsonl").is_file(),
    reason=f"scanner corpus not found at {CORPUS} (set PMAP_CORPUS_DIR)",
)
BY_KEY = {f.key: f for f in FORMATS}

_PER_RESOURCE = "PMAP keeps one finding per resource; DefectDojo merges"
# {file: (PMAP distinct fingerprints, why PMAP differs from DefectDojo's count)}
DEVIATIONS: dict[str, tuple[int, str]] = {
    "tenable/issue_11102.csv": (3, f"{_PER_RESOURCE} the rows of one plugin on 1.2.3.4:443 and 2.3.4.5:443 (its key "
                                   "ignores the IP column)"),
    "tenable/nessus_many_vuln.xml": (7, f"{_PER_RESOURCE} 'Nessus SYN scanner' on ports 443 and 264 into one finding"),
    "tenable/nessus_v_unknown.xml": (296, f"{_PER_RESOURCE} each plugin across 7 hosts and all ports "
                                          "(key: severity + title)"),
    "nexpose/dns.xml": (5,
                        "DefectDojo adds synthetic 'Host Up'/open-service findings; PMAP reports the 5 vulnerable"
                        " tests (2 on tcp/53, 3 on udp/53)"),
    "burp/one_finding.xml": (3, f"{_PER_RESOURCE} the three SQL injection issues (3 URLs/parameters) by issue type"),
    "zap/0_zap_sample.xml": (10, f"{_PER_RESOURCE} alert instances (URL + parameter) per alert"),
    "zap/1_zap_sample_0_and_new_absent.xml": (10, f"{_PER_RESOURCE} alert instances (URL + parameter) per alert"),
    "zap/3_zap_sampl_0_and_different_severities.xml": (10,
                                                       f"{_PER_RESOURCE} alert instances (URL + parameter) per alert"),
    "zap/5_zap_sample_one.xml": (3, f"{_PER_RESOURCE} alert instances; the two alert items of plugin 10011 repeat "
                                    "the same 3 instances"),
    "zap/dvwa_baseline_dojo.xml": (95,
                                   f"{_PER_RESOURCE} 124 alert instances (95 distinct URL + parameter) into 19 alerts"),
    "zap/zap-results-first-scan.xml": (129, f"{_PER_RESOURCE} 130 alert instances (129 distinct) into 15 alerts"),
    "zap/zap_2.16.1_with_req_resp.xml": (13, f"{_PER_RESOURCE} 13 alert instances into 4 alerts"),
    "acunetix/XML_http_example_co_id_.xml": (8, f"{_PER_RESOURCE} by title; PMAP keeps the CSRF form on /h/search "
                                                "and on /m/zmain apart"),
    "nuclei/many_findings.json": (18,
                                  "the tech-detect template matched several technologies (matcher names); PMAP keeps"
                                  " one finding per template:matcher"),
    "nmap/issue12411.xml": (4, f"{_PER_RESOURCE} open ports by port number across hosts (google.com and amazon.com "
                               "both have 80 and 443)"),
    "mobsf/allsafe.json": (55,
                           "PMAP skips the 44 checks that hold (42 binary protections in place, which MobSF rates"
                           " info, and 2 code rules rated good: counted as 'secure check'), which DefectDojo imports,"
                           " and also reports the open Firebase database, the cleartext network config and 4"
                           " possible hardcoded secrets (names only): 93 - 44 + 6"),
    "mobsf/issue_9132.json": (38,
                              "PMAP also reports the possible hardcoded secret; manifest findings are per component"),
    "mobsf/report1.json": (52,
                           "PMAP keeps each failed binary check per shared object (DefectDojo merges equal"
                           " descriptions), skips the 24 binary protections in place (MobSF rates them info; counted"
                           " as 'secure check') and reports 3 possible hardcoded secrets"),
    "mobsf/report2.json": (996,
                           "list export: PMAP dedupes by issue name + file + first line (DefectDojo by severity + name"
                           " + description + file)"),
}

_LOCATION_SCHEME = ("DefectDojo normalises endpoints to URLs (scheme 'dns', '#tcp' fragment); PMAP keeps "
                    "host/port/protocol fields")
# {format key or file: {DefectDojo field: why PMAP's value differs on purpose}}
FIELD_DEVIATIONS: dict[str, dict[str, str]] = {
    "nessus": {
        "cwe": "PMAP reads CWE ids from <cwe> and xref 'CWE:n' (WAS reports CWE:79); DefectDojo only from <cwe>",
    },
    "tenable/issue_6992.nessus": {
        "severity": "PMAP keeps Nessus's own severity (2 = Medium); DefectDojo re-rates by cvss3_base_score 7.5",
    },
    "tenable/nessus_v_unknown.xml": {
        "vulnerability_ids_count": "DefectDojo appends the plugin's CVE once per merged host (7 copies of"
                                   " CVE-2005-1794); PMAP lists distinct CVEs",
    },
    "tenable/nessus-template.csv": {
        "epss_score": "the export lost the decimal point ('3833'); PMAP drops out-of-range scores instead of guessing",
        "cwe": "PMAP reads the XREF column (CWE:16, CWE:200); DefectDojo ignores it",
    },
    "tenable/nessus_new.csv": {
        "title": "DefectDojo titles Tenable VM rows with asset.name ('Blah1'); PMAP uses definition.name, the plugin"
                 " name",
    },
    "qualys/Qualys_Sample_Report.xml": {
        "severity:value_counts": "PMAP maps Qualys levels 1-5 to Info..Critical and information-gathered detections to"
                                 " Info; "
        "DefectDojo folds 1-2 to Low and 4-5 to High (legacy: CVSS band first)",
        "cvssv3": "PMAP keeps the knowledge-base CVSS v3 base vector for every host; DefectDojo uses the host's "
        "CVSS3_FINAL when present (demo14: 8.2, no vector), which PMAP keeps as extra.cvss3_final",
        "cvssv3_score": "as cvssv3: base score 9.0 rather than the host's final score 8.2",
    },
    "nexpose/dns.xml": {"locations[]": _LOCATION_SCHEME},
    "nexpose/no_vuln.xml": {
        "title": "DefectDojo emits a synthetic 'Host Up' finding; PMAP reports the node's vulnerable test, "
        "titled by its id because the file has no definition for it",
        "severity": "no definition for the test, so no severity: Unknown (DefectDojo's 'Host Up' is Info)",
    },
    "qualys_vmdr_csv": {
        "vuln_id_from_tool": "PMAP's rule id is the QID in QID- and CVE-based exports alike (the CVE is in cve_ids)",
        "component_name": "DefectDojo stores the asset name as component; PMAP stores it as host",
    },
    "nmap/nmap_multiple_port.xml": {
        "locations[].host": "PMAP names the host as given on the command line (joaquinlp.me); DefectDojo uses the PTR"
                            " record",
    },
}


def _records() -> list[Any]:
    if not (CORPUS / "expectations.jsonl").is_file():
        return []
    return [pytest.param(r,
                         id=f"{r['file'] or 'inline'}::{r['test'].rsplit('::', 1)[-1]}") for r in load_records(CORPUS)]


def _parse(fmt: ReportFormat, data: bytes) -> list[ParsedFinding]:
    return list(fmt.parse(io.BytesIO(data)))


def _unique(findings: list[ParsedFinding], key: str) -> list[ParsedFinding]:
    seen: dict[str, ParsedFinding] = {}
    for f in findings:
        seen.setdefault(f.fingerprint(key), f)
    return list(seen.values())


def _detected(data: bytes, name: str) -> list[str]:
    return [f.key for f in FORMATS if f.detect(data[:65536], name)]


@pytest.mark.parametrize("record", _records())
def test_corpus_record(record: dict[str, Any]) -> None:
    key = pmap_key(record["format"], record["file"], record.get("parser_args"))
    assert key in BY_KEY, f"no PMAP format for {record['format']} {record['file']}"
    fmt = BY_KEY[key]
    if record["file"] is None:
        data, name = record["inline_input"].encode(), "inline.json"
    else:
        path: Path = CORPUS / record["file"]
        data, name = path.read_bytes(), path.name
        if data.strip():  # an empty file carries nothing to detect
            assert _detected(data, name)[:1] == [key]
    if record.get("expect_error"):
        with pytest.raises(ReportError):
            _parse(fmt, data)
        return
    findings = _unique(_parse(fmt, data), key)
    expected = DEVIATIONS.get(record["file"], (record["expected_findings"], ""))[0]
    assert len(findings) == expected
    skipped = {**FIELD_DEVIATIONS.get(key, {}), **FIELD_DEVIATIONS.get(record["file"] or "", {})}
    assert evaluate(record, findings, fmt, skipped) == []


def test_deviations_are_real_and_known() -> None:
    """Every deviation names a corpus file of this package whose DefectDojo count differs."""
    records = {r["file"]: r for r in load_records(CORPUS) if r["file"]}
    for file, (count, reason) in DEVIATIONS.items():
        assert file in records, file
        assert count != records[file]["expected_findings"], f"{file} is not a deviation"
        assert reason


def test_field_deviations_are_needed() -> None:
    """Each field deviation hides at least one assert that fails without it (none is stale)."""
    records = load_records(CORPUS)
    for scope, fields in FIELD_DEVIATIONS.items():
        in_scope = [r for r in records if r["file"] and (r["file"] == scope or pmap_key(r["format"], r["file"],
                                                                                        r.get("parser_args")) == scope)]
        assert in_scope, scope
        for field in fields:
            failing = 0
            for r in in_scope:
                key = pmap_key(r["format"], r["file"], r.get("parser_args"))
                assert key is not None
                fmt = BY_KEY[key]
                skipped = {**FIELD_DEVIATIONS.get(key, {}), **FIELD_DEVIATIONS.get(r["file"], {})}
                skipped.pop(field)
                findings = _unique(_parse(fmt, (CORPUS / r["file"]).read_bytes()), key)
                failing += bool(evaluate(r, findings, fmt, skipped))
            assert failing, f"{scope}: deviation for {field!r} is not needed"
