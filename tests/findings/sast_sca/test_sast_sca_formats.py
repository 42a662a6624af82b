"""Each SAST/SCA format on a hand-written sample: registry shape, detection, fields, severity."""

from __future__ import annotations

import io
from typing import Any

import pytest

from pmap.core.registry import Registry
from pmap.findings.formats.base import ReportFormat, Severity
from pmap.findings.formats.sast_sca import FORMATS
from tests.findings.sast_sca.sast_sca_samples import EXTRA_SAMPLES, SAMPLES

KEYS = {
    "sarif", "semgrep_json", "sonarqube_json", "sonarqube_html", "checkmarx_xml", "checkmarx_json", "bandit_json",
    "gitleaks_json",
    "gitlab_security_report", "veracode_xml", "veracode_json", "trivy_json", "snyk_json", "grype_json",
    "dependency_check_xml", "cyclonedx", "osv_json", "npm_audit_json", "pip_audit_json", "jfrog_xray_json",
    "dependency_track_fpf", "github_vulnerability_json",
}
BY_KEY = {f.key: f for f in FORMATS}

# key -> (expected finding count, fields of the first finding, its PMAP severity)
EXPECT: dict[str, tuple[int, dict[str, Any], Severity]] = {
    "sarif": (1, {"rule_id": "py/sql-injection", "file_path": "app/db.py", "line": 42, "cwe_ids": [89],
                  "tool": "CodeQL", "title": "Query built from {0}."}, Severity.HIGH),
    "semgrep_json": (1, {"rule_id": "python.lang.security.audit.formatted-sql-query", "file_path": "app/a.py",
                         "line": 12, "cwe_ids": [89]}, Severity.HIGH),
    "sonarqube_json": (1, {"rule_id": "python:S3649", "repository": "shop", "file_path": "src/db.py", "line": 8,
                           "title": "Fix this SQL query"}, Severity.HIGH),
    "sonarqube_html": (1, {"rule_id": "python:S3649", "title": "Database queries should not be vulnerable to injection "
                           "attacks", "vendor_severity": "CRITICAL", "description": "Fix this SQL query",
                           "repository": "shop", "file_path": "src/db.py", "line": 8, "extra": {"key": "AX1"},
                           "cwe_ids": [89], "identity": [], "remediation": "User-provided data reaches a query. input "
                           "query See MITRE, CWE-89 - SQL Injection"}, Severity.HIGH),
    "checkmarx_xml": (1, {"rule_id": "594", "title": "SQL Injection", "file_path": "src/Dao.java", "line": 77,
                          "cwe_ids": [89]}, Severity.HIGH),
    "checkmarx_json": (1, {"title": "SQL Injection", "file_path": "/Dao.java", "line": 9, "cwe_ids": [89]},
                       Severity.HIGH),
    "bandit_json": (1, {"rule_id": "B102", "file_path": "app/run.py", "line": 4, "cwe_ids": [78]}, Severity.HIGH),
    "gitleaks_json": (1, {"rule_id": "aws-access-token", "file_path": "infra/main.tf", "line": 2, "cwe_ids": [798]},
                      Severity.HIGH),
    "gitlab_security_report": (1, {"rule_id": "B608", "file_path": "app/db.py", "line": 4, "cwe_ids": [89]},
                               Severity.HIGH),
    "veracode_xml": (2, {"rule_id": "19", "file_path": "com/demo/Dao.java", "line": 55, "cwe_ids": [89]},
                     Severity.HIGH),
    "veracode_json": (1, {"rule_id": "19", "file_path": "com/demo/Dao.java", "line": 55}, Severity.HIGH),
    "trivy_json": (1, {"cve_ids": ["CVE-2023-0286"], "other_ids": ["GHSA-x4qr-2fvf-3mr5"], "package_name": "openssl",
                       "fixed_version": "1.1.1n-0+deb11u4", "cvss_score": 7.4, "repository": "shop:1.0"},
                       Severity.HIGH),
    "snyk_json": (1, {"cve_ids": ["CVE-2020-8203"], "package_name": "lodash", "package_version": "4.17.15",
                      "fixed_version": "4.17.19", "file_path": "package-lock.json", "repository": "shop"},
                      Severity.HIGH),
    "grype_json": (1, {"rule_id": "GHSA-jfh8-c2jp-5v3q", "cve_ids": ["CVE-2021-44228"], "repository": "shop:1.0",
                       "file_path": "/app/lib/log4j-core-2.14.1.jar", "fixed_version": "2.15.0"}, Severity.CRITICAL),
    "dependency_check_xml": (1, {"cve_ids": ["CVE-2021-44228"], "package_name": "org.apache.logging.log4j:log4j-core",
                                 "package_version": "2.14.1", "cwe_ids": [502],
                                 "cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}, Severity.CRITICAL),
    "cyclonedx": (1, {"cve_ids": ["CVE-2021-44228"], "package_name": "log4j-core", "package_version": "2.14.1",
                      "cwe_ids": [502], "cvss_version": "3.1"}, Severity.CRITICAL),
    "osv_json": (1, {"rule_id": "GHSA-rxjp-mfm9-w4wr", "cve_ids": ["CVE-2021-33203"], "fixed_version": "3.2.5",
                     "file_path": "/src/poetry.lock", "cvss_score": 4.9}, Severity.MEDIUM),
    "npm_audit_json": (1, {"rule_id": "GHSA-xvch-5gv4-984h", "package_name": "minimist", "cwe_ids": [1321],
                           "file_path": "node_modules/minimist"}, Severity.CRITICAL),
    "pip_audit_json": (1, {"rule_id": "PYSEC-2021-439", "cve_ids": ["CVE-2021-44420"], "package_name": "django",
                           "fixed_version": "3.2.10"}, Severity.UNKNOWN),
    "jfrog_xray_json": (1, {"rule_id": "XRAY-139239", "cve_ids": ["CVE-2020-28493"], "package_name": "Jinja2",
                            "package_version": "2.11.2", "fixed_version": "2.11.3"}, Severity.MEDIUM),
    "dependency_track_fpf": (1, {"rule_id": "GHSA-f523-2f5j-gfcg", "cve_ids": ["CVE-2017-16115"],
                                 "status": "false_positive",
                                 "repository": "shop 1.0", "package_name": "timespan"}, Severity.HIGH),
    "github_vulnerability_json": (1, {"rule_id": "GHSA-f6jp-j6w3-w9hm", "cve_ids": ["CVE-2021-41303"], "cwe_ids": [287],
                                      "repository": "shop", "file_path": "pom.xml"}, Severity.CRITICAL),
}


def _all_formats() -> list[ReportFormat]:
    try:
        from pmap.findings.formats.vm_dast import FORMATS as INFRA
    except ImportError:
        INFRA = ()
    return [*INFRA, *FORMATS]


def test_exactly_the_assigned_keys_in_a_valid_registry() -> None:
    assert {f.key for f in FORMATS} == KEYS
    assert len(Registry("t", FORMATS, key=lambda f: f.key)) == len(KEYS)
    for f in FORMATS:
        assert f.title and f.what and f.detect.__doc__ and f.read.__doc__


@pytest.mark.parametrize("key", sorted(KEYS))
def test_sample_is_detected_as_its_format(key: str) -> None:
    for name, data in [SAMPLES[key], *([EXTRA_SAMPLES[key]] if key in EXTRA_SAMPLES else [])]:
        claimed = [f.key for f in _all_formats() if f.detect(data[:65536], name)]
        assert claimed[:1] == [key], claimed
        assert [f.key for f in FORMATS if f.detect(data, name)] == [key]


@pytest.mark.parametrize("key", sorted(KEYS))
def test_sample_parses_to_faithful_fields(key: str) -> None:
    count, fields, severity = EXPECT[key]
    fmt = BY_KEY[key]
    findings = list(fmt.parse(io.BytesIO(SAMPLES[key][1])))
    assert len(findings) == count
    first = findings[0]
    for name, value in fields.items():
        assert getattr(first, name) == value, name
    assert fmt.map_severity(first).severity is severity
    assert first.title and first.fingerprint(key) == findings[0].fingerprint(key)


def test_cyclonedx_xml_sample() -> None:
    (f,) = BY_KEY["cyclonedx"].parse(io.BytesIO(EXTRA_SAMPLES["cyclonedx"][1]))
    assert (f.cve_ids, f.package_name, f.package_version, f.cwe_ids) == (["CVE-2021-23337"], "lodash", "4.17.20", [94])
    assert f.cvss_score == 7.2 and BY_KEY["cyclonedx"].map_severity(f).severity is Severity.HIGH


def test_gitleaks_never_copies_the_secret() -> None:
    (f,) = BY_KEY["gitleaks_json"].parse(io.BytesIO(SAMPLES["gitleaks_json"][1]))
    assert "AKIAZZZZSECRETVALUE99" not in repr(f)
    v7 = b'[{"line": "key = AKIAZZZZSECRETVALUE77", "offender": "AKIAZZZZSECRETVALUE77", "rule": "AWS Access Key",' \
         b' "file": "app.py", "lineNumber": 3, "commit": "abc123"}]'
    (old,) = BY_KEY["gitleaks_json"].parse(io.BytesIO(v7))
    assert old.rule_id == "AWS Access Key" and old.line == 3 and "SECRETVALUE77" not in repr(old)


@pytest.mark.parametrize("key", sorted(KEYS))
def test_unknown_vendor_value_is_unmapped_not_info(key: str) -> None:
    from pmap.findings.formats.base import ParsedFinding

    result = BY_KEY[key].map_severity(ParsedFinding(title="t", vendor_severity="no-such-severity"))
    if key == "gitleaks_json":  # no vendor scale at all: a leaked secret is high
        assert result.severity is Severity.HIGH
    else:
        assert (result.severity, result.source) == (Severity.UNKNOWN, "unmapped")


@pytest.mark.parametrize("key", sorted(KEYS - {"gitleaks_json", "pip_audit_json"}))
def test_cvss_band_is_the_fallback(key: str) -> None:
    from pmap.findings.formats.base import ParsedFinding

    result = BY_KEY[key].map_severity(ParsedFinding(title="t", cvss_score=9.1))
    assert result.severity is Severity.CRITICAL


def test_statuses_and_vendor_states() -> None:
    import json

    sarif = json.loads(SAMPLES["sarif"][1])
    result = sarif["runs"][0]["results"][0]
    result["suppressions"] = [{"kind": "inSource"}]
    extra = dict(result, ruleId="py/sql-injection", kind="pass")
    sarif["runs"][0]["results"].append(extra)
    findings = list(BY_KEY["sarif"].parse(io.BytesIO(json.dumps(sarif).encode())))
    assert [f.status for f in findings] == ["suppressed"]  # kind=pass is no finding
    (vc, sca) = BY_KEY["veracode_xml"].parse(io.BytesIO(SAMPLES["veracode_xml"][1]))
    assert sca.package_name == "commons-text" and BY_KEY["veracode_xml"].map_severity(sca).severity is Severity.CRITICAL
